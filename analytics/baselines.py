"""Detector baselines stored beside the lake: what the costly detectors aggregate from every event, kept per day.

volume_spike, error_burst, first_seen and kms_logging_gap compare each new hour with weeks of history, and
unattributed_operation needs every key the lake has seen resolved.
Aggregating that history from every event on every run costs a scan of the whole lake, so each lake day is
aggregated once and written beside the lake (the nightly job does it, after attributing the day; `keytrail
anomalies` only reads):

    _baselines/event_date=2026-11-02/spike_hourly-<signature>.parquet       (volume_spike)
                                     error_hourly-<signature>.parquet       (error_burst)
                                     first_seen_combos-<signature>.parquet  (first_seen)
                                     logging_shared-<signature>.parquet     (kms_logging_gap)
                                     logging_hourly-<signature>.parquet     (kms_logging_gap)
                                     outside_calls-<signature>.parquet      (use_outside_access_window)
                                     owned_keys-<signature>.parquet         (unattributed_operation)

- `spike_hourly` (sql/baselines/spike_hourly.sql): successful calls per hour, tenant, key and operation.
- `error_hourly` (sql/baselines/error_hourly.sql): refused calls per hour, caller's tenant and principal.
- `first_seen_combos` (sql/baselines/first_seen_combos.sql): each tenant's principal, region, source IP and user
  agent combinations with their first time.
- `logging_shared` and `logging_hourly` (sql/baselines/): the cross-account calls a day delivered to one trail
  only, and the hours each trail delivered KMS events per region.
- `outside_calls` (sql/baselines/outside_calls.sql): the tenants' own calls outside their access windows.
- `owned_keys` (sql/baselines/owned_keys.sql): the key ARNs the day's successful calls resolved (their accounts
  own keys: the provider's own work is not unclaimed use).

A file is named by the signature of everything its rows depend on: the day's Parquet files (names and sizes:
lake files are immutable, so a late event delivered for an old day is a new file there), the analytics code,
the tenants file and the lake's attribution maps (as for `_attribution/`), the detector settings the SQL reads,
and, for error_hourly, the lake's key state changes. A detector reads the days whose file still matches and
aggregates the other days from the events on the fly, so a stale or missing day is slower, never wrong; the
days `refresh_baselines` had to write are the days whose detector results may have changed.

The folder is derived: it is rebuilt from the lake at any time (delete it, or pass `--full`), never edited by
users, and the lake itself is only read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from analytics.attribution_store import LakeDays, basis
from analytics.queries import literal
from ingest.faults import crash_point
from ingest.lake.store import Lake

STORE_DIR = "_baselines"
SQL_DIR = Path(__file__).parent / "sql" / "baselines"
# Events attributed together when baselines are aggregated from the events (`_plan`), and how many a day holds
# (from the Parquet footers: no event is read).
BATCH_EVENTS = 1_000_000
EVENTS_PER_DAY = """
    SELECT event_date::VARCHAR, count(*) FROM (
        SELECT event_date FROM kms_events UNION ALL SELECT event_date FROM hsm_events
    ) GROUP BY ALL
"""
# The stored baselines each detector reads.
NEEDS: dict[str, tuple[str, ...]] = {
    "volume_spike": ("spike_hourly",),
    "error_burst": ("error_hourly",),
    "first_seen": ("first_seen_combos",),
    "kms_logging_gap": ("logging_shared", "logging_hourly"),
    "use_outside_access_window": ("outside_calls",),
    "unattributed_operation": ("owned_keys",),
}
STORED = tuple(name for names in NEEDS.values() for name in names)


@dataclass
class BaselineReport:
    """What store_baselines did: per stored baseline, the days it wrote; the days already stored."""

    folder: Path
    written: dict[str, list[str]] = field(default_factory=dict)
    kept: int = 0

    def changed_days(self) -> list[str]:
        """The days (ISO dates) some baseline was written for: their detector results may have changed."""
        return sorted({day for days in self.written.values() for day in days})


def store_dir(lake: Lake) -> Path:
    return lake.root / STORE_DIR


def baseline_sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text()


def merge_sql(name: str) -> str:
    """How the days of `name` make one relation (most are simply all their rows)."""
    path = SQL_DIR / f"{name}_merge.sql"
    return path.read_text() if path.is_file() else "SELECT * EXCLUDE (event_date) FROM baseline_days"


def signatures(con: duckdb.DuckDBPyConnection, days: LakeDays, name: str, params: Mapping[str, Any]) -> dict[str, str]:
    """Per day, the signature its stored `name` file must be named by."""
    digest = hashlib.sha256(f"{name}\0{basis(con, 'attributed_usage')}\0".encode())
    digest.update(json.dumps(params, sort_keys=True, default=str).encode())
    sigs = days.signatures(digest.hexdigest())
    return _with_state_changes(con, sigs) if name == "error_hourly" else sigs


def _with_state_changes(con: duckdb.DuckDBPyConnection, sigs: dict[str, str]) -> dict[str, str]:
    """Each day's signature with the key state changes up to its end: a change explains that day's later errors,
    so a change delivered today leaves the days before it as they were."""
    _register_state_changes(con)
    changes = con.sql("SELECT event_time::DATE::VARCHAR, * FROM error_state_changes ORDER BY ALL").fetchall()
    return {
        day: hashlib.sha256(f"{sig}{[c for c in changes if c[0] <= day]!r}".encode()).hexdigest()[:32]
        for day, sig in sigs.items()
    }


def stored_file(lake: Lake, name: str, day: str, signature: str) -> Path:
    return store_dir(lake) / f"event_date={day}" / f"{name}-{signature}.parquet"


def split_days(lake: Lake, name: str, sigs: dict[str, str]) -> tuple[list[Path], list[str]]:
    """The stored files that match, and the days to aggregate from the events."""
    files = {day: stored_file(lake, name, day, sig) for day, sig in sigs.items()}
    return [p for p in files.values() if p.is_file()], [day for day, p in files.items() if not p.is_file()]


def _register_state_changes(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE OR REPLACE TEMP VIEW error_state_changes AS {baseline_sql('error_state_changes')}")


def _operations_of(con: duckdb.DuckDBPyConnection, days: list[str] | None, names: list[str]) -> None:
    """The relations the baselines `names` read: `baseline_operations` (key_operations) and, when one reads it,
    `baseline_kms_events` (kms_events); of a run of consecutive days (attributed once for all of them, as a table
    of the columns they name) or of every day (None: views, since a notebook's operations may come without
    kms_events). A range, not a list of days: through key_operations DuckDB skips the other days' files for a
    range, not for an IN list (2.8 s instead of 0.24 s for one day of a 20M-event lake)."""
    text = "\n".join(baseline_sql(name) for name in names)
    where = "" if days is None else f" WHERE event_date BETWEEN DATE {literal(days[0])} AND DATE {literal(days[-1])}"
    if "baseline_kms_events" in text:
        con.execute(f"CREATE OR REPLACE TEMP VIEW baseline_kms_events AS SELECT * FROM kms_events{where}")
    if days is None:
        con.execute("CREATE OR REPLACE TEMP VIEW baseline_operations AS SELECT * FROM key_operations")
        return
    columns = [c for (c,) in con.sql("SELECT name FROM pragma_table_info('key_operations')").fetchall()]
    named = ", ".join(c for c in columns if re.search(rf"\b{c}\b", text))  # a word in a comment costs a column
    con.execute(f"CREATE OR REPLACE TEMP TABLE baseline_operations AS SELECT {named} FROM key_operations{where}")


def _drop_operations(con: duckdb.DuckDBPyConnection, days: list[str] | None) -> None:
    con.execute("DROP VIEW IF EXISTS baseline_kms_events")
    con.execute(f"DROP {'VIEW' if days is None else 'TABLE'} IF EXISTS baseline_operations")


def _lake_days(con: duckdb.DuckDBPyConnection) -> LakeDays | None:
    """The connection's lake and its days, or None for an S3 lake (nothing is stored there) or a connection
    without a lake (tables of operations made by a test or notebook)."""
    if not con.sql("SELECT 1 FROM information_schema.tables WHERE table_name = 'lake_info'").fetchall():
        return None
    uri = con.sql("SELECT uri FROM lake_info").fetchall()[0][0]
    return None if Lake.is_remote(uri) else LakeDays.of(Lake(uri))


def _day_batches(
    con: duckdb.DuckDBPyConnection,
    days: list[str] | None,
    names: Iterable[str],
    params: Mapping[str, Mapping[str, Any]],
) -> Iterator[str]:
    """Aggregate each of `names` for some days (or every day at once: None) into the table `baseline_batch`,
    yielding its name while the table holds it."""
    names = list(names)
    _operations_of(con, days, names)
    try:
        for name in names:
            con.execute(f"CREATE OR REPLACE TEMP TABLE baseline_batch AS {baseline_sql(name)}", dict(params[name]))
            yield name
    finally:
        con.execute("DROP TABLE IF EXISTS baseline_batch")
        _drop_operations(con, days)


def _aggregate(
    con: duckdb.DuckDBPyConnection, todo: Mapping[str, list[str] | None], params: Mapping[str, Mapping[str, Any]]
) -> None:
    """The table `<name>_fresh` for each name in `todo`: its days (None: all at once) aggregated from the events,
    a batch of days at a time (`_plan`) so that each day is attributed once for all the baselines it needs."""
    for name in todo:
        con.execute(f"DROP TABLE IF EXISTS {name}_fresh")
    made: set[str] = set()
    for days, names in _plan(con, todo):
        for name in _day_batches(con, days, names, params) if names else ():
            verb = "INSERT INTO {}_fresh BY NAME" if name in made else "CREATE TEMP TABLE {}_fresh AS"
            con.execute(f"{verb.format(name)} SELECT * FROM baseline_batch")
            made.add(name)


def _plan(
    con: duckdb.DuckDBPyConnection, todo: Mapping[str, list[str] | None]
) -> list[tuple[list[str] | None, list[str]]]:
    """The batches `_aggregate` and `store_baselines` attribute: the names wanting every day at once, then runs of
    consecutive calendar days that the same names need, each closed once it holds BATCH_EVENTS events (one day at
    least). A batch is one attribution of its days, held in memory: days one by one cost a small lake more in
    per-query work than its events, all days at once a large lake more memory than it has."""
    plan: list[tuple[list[str] | None, list[str]]] = [(None, [n for n, ds in todo.items() if ds is None])]
    days = sorted({d for ds in todo.values() if ds is not None for d in ds})
    events = dict(con.sql(EVENTS_PER_DAY).fetchall()) if days else {}
    batch: list[str] = []
    total = 0
    for day in days:
        names = [n for n, ds in todo.items() if ds is not None and day in ds]
        if batch and (names != plan[-1][1] or total >= BATCH_EVENTS or not _next_day(batch[-1], day)):
            batch, total = [], 0
        if not batch:
            plan.append((batch, names))
        batch.append(day)
        total += events.get(day, 0)
    return plan


def _next_day(day: str, following: str) -> bool:
    return dt.date.fromisoformat(following) - dt.date.fromisoformat(day) == dt.timedelta(days=1)


def register_baselines(
    con: duckdb.DuckDBPyConnection, params: Mapping[str, Mapping[str, Any]], stored: bool = True
) -> None:
    """The tables the detectors read, one per baseline in `params` (name → the settings its SQL reads): the days
    stored beside the lake read from their files where `stored` and still current, the other days aggregated from
    the events; every day at once for a connection without a local lake (S3, or a notebook's tables)."""
    if any("error_state_changes" in baseline_sql(name) for name in params):
        _register_state_changes(con)
    days = _lake_days(con)
    files: dict[str, list[Path]] = {name: [] for name in params}
    todo: dict[str, list[str] | None] = dict.fromkeys(params)
    if days is not None and days.files:
        for name in params:
            if stored:
                files[name], todo[name] = split_days(days.lake, name, signatures(con, days, name, params[name]))
            else:
                todo[name] = list(days.files)
    _aggregate(con, {name: ds for name, ds in todo.items() if ds != []}, params)
    for name in params:
        _merge(con, name, files[name], fresh=todo[name] != [])


def _merge(con: duckdb.DuckDBPyConnection, name: str, files: list[Path], fresh: bool) -> None:
    """The table `name` from its stored files and the days aggregated into `<name>_fresh`."""
    parts = ["SELECT * FROM read_parquet([" + ", ".join(literal(str(p)) for p in files) + "])"] if files else []
    if fresh:
        parts.append(f"SELECT * FROM {name}_fresh")
    con.execute(f"CREATE OR REPLACE TEMP TABLE baseline_days AS {' UNION ALL BY NAME '.join(parts)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {merge_sql(name)}")
    con.execute("DROP TABLE baseline_days")
    con.execute(f"DROP TABLE IF EXISTS {name}_fresh")


def store_baselines(con: duckdb.DuckDBPyConnection, params: Mapping[str, Mapping[str, Any]]) -> BaselineReport | None:
    """Aggregate and store every day of the connection's lake whose stored baseline is missing or stale, for the
    settings in `params` (baseline name → the settings its SQL reads: anomalies.baseline_params); drop the files
    no current signature names. None for a lake where nothing is stored (S3). `con` must be writable
    (`connect(read_only=False)`: keytrail's own writer, never a user's SQL) and the caller must hold the lake's
    lock. Each file appears by rename, so an interrupted store leaves at worst some days to aggregate again."""
    days = _lake_days(con)
    if days is None:
        return None
    report = BaselineReport(store_dir(days.lake))
    _register_state_changes(con)
    sigs = {name: signatures(con, days, name, params[name]) for name in STORED}
    for name in STORED:
        files, report.written[name] = split_days(days.lake, name, sigs[name])
        report.kept += len(files)
    for batch, names in _plan(con, report.written):
        if names:
            _write_days(con, days.lake, batch or [], {name: sigs[name] for name in names}, params)
    _remove_others(days.lake, {stored_file(days.lake, n, d, sig) for n in STORED for d, sig in sigs[n].items()})
    return report


def _write_days(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    days: list[str],
    sigs: Mapping[str, Mapping[str, str]],
    params: Mapping[str, Mapping[str, Any]],
) -> None:
    """Aggregate the baselines in `sigs` (name → signature per day) for a run of days (`_plan`: each of them stale
    for exactly these baselines) from one attribution of their operations, and publish one Parquet file per
    baseline and day (an empty one when the day has no rows, so that it counts as stored). Every stored baseline
    keeps its rows' event_date, so one aggregation of the run splits into its days."""
    scratch = store_dir(lake) / "_batch"
    shutil.rmtree(scratch, ignore_errors=True)  # what a killed store left
    scratch.mkdir(parents=True)
    try:
        for name in _day_batches(con, days, sigs, params):
            for day in days:
                part = scratch / f"{name}-{day}.parquet"
                con.execute(
                    f"""COPY (SELECT * FROM baseline_batch WHERE event_date = DATE {literal(day)})
                        TO {literal(str(part))} (FORMAT parquet, COMPRESSION zstd)"""
                )
                crash_point("baselines_publish")
                lake.put_file(part, stored_file(lake, name, day, sigs[name][day]))
    finally:
        shutil.rmtree(scratch)


def _remove_others(lake: Lake, keep: set[Path]) -> None:
    """Delete stored files no current signature names (stale days, days the lake lost, other settings)."""
    for path in store_dir(lake).glob("event_date=*/*.parquet"):
        if path not in keep:
            path.unlink()
    for folder in store_dir(lake).glob("event_date=*"):
        if not any(folder.iterdir()):
            folder.rmdir()


def needed(detectors: Iterable[str]) -> list[str]:
    """The stored baselines the named detectors read."""
    return [name for detector in detectors for name in NEEDS.get(detector, ())]
