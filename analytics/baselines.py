"""Detector baselines stored beside the lake: what the costly detectors aggregate from every event, kept per day.

volume_spike, error_burst, first_seen and kms_logging_gap compare each new hour with weeks of history.
Aggregating that history from every event on every run costs a scan of the whole lake, so each lake day is
aggregated once and written beside the lake (the nightly job does it, after attributing the day; `keytrail
anomalies` only reads):

    _baselines/event_date=2026-11-02/spike_hourly-<signature>.parquet       (volume_spike)
                                     error_hourly-<signature>.parquet       (error_burst)
                                     first_seen_combos-<signature>.parquet  (first_seen)
                                     logging_shared-<signature>.parquet     (kms_logging_gap)
                                     logging_hourly-<signature>.parquet     (kms_logging_gap)
                                     outside_calls-<signature>.parquet      (use_outside_access_window)

- `spike_hourly` (sql/baselines/spike_hourly.sql): successful calls per hour, tenant, key and operation.
- `error_hourly` (sql/baselines/error_hourly.sql): refused calls per hour, caller's tenant and principal.
- `first_seen_combos` (sql/baselines/first_seen_combos.sql): each tenant's principal, region, source IP and user
  agent combinations with their first time.
- `logging_shared` and `logging_hourly` (sql/baselines/): the cross-account calls a day delivered to one trail
  only, and the hours each trail delivered KMS events per region.
- `outside_calls` (sql/baselines/outside_calls.sql): the tenants' own calls outside their access windows.

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

import hashlib
import json
import shutil
from collections.abc import Iterable, Mapping
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
# The stored baselines each detector reads.
NEEDS: dict[str, tuple[str, ...]] = {
    "volume_spike": ("spike_hourly",),
    "error_burst": ("error_hourly",),
    "first_seen": ("first_seen_combos",),
    "kms_logging_gap": ("logging_shared", "logging_hourly"),
    "use_outside_access_window": ("outside_calls",),
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


def _operations_of(con: duckdb.DuckDBPyConnection, days: list[str] | None, events: bool = True) -> None:
    """The views `baseline_operations` and (with `events`) `baseline_kms_events`: key_operations and kms_events of
    `days` (of every day when None)."""
    where = "" if days is None else " WHERE event_date IN (" + ", ".join(f"DATE {literal(d)}" for d in days) + ")"
    con.execute(f"CREATE OR REPLACE TEMP VIEW baseline_operations AS SELECT * FROM key_operations{where}")
    if events:
        con.execute(f"CREATE OR REPLACE TEMP VIEW baseline_kms_events AS SELECT * FROM kms_events{where}")


def _lake_days(con: duckdb.DuckDBPyConnection) -> LakeDays | None:
    """The connection's lake and its days, or None for an S3 lake (nothing is stored there) or a connection
    without a lake (tables of operations made by a test or notebook)."""
    if not con.sql("SELECT 1 FROM information_schema.tables WHERE table_name = 'lake_info'").fetchall():
        return None
    uri = con.sql("SELECT uri FROM lake_info").fetchall()[0][0]
    return None if Lake.is_remote(uri) else LakeDays.of(Lake(uri))


def register_baseline(
    con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, Any], stored: bool = True
) -> None:
    """The table `name` for a detector: its stored days read from their files, the other days aggregated from the
    events (all of them without `stored`, or for an S3 lake)."""
    if "error_state_changes" in baseline_sql(name):  # the others need no kms_events (a notebook's operations)
        _register_state_changes(con)
    days = _lake_days(con) if stored else None
    files, stale = split_days(days.lake, name, signatures(con, days, name, params)) if days else ([], None)
    parts = []
    if files:
        parts.append("SELECT * FROM read_parquet([" + ", ".join(literal(str(p)) for p in files) + "])")
    computed = stale is None or bool(stale)
    if computed:
        _operations_of(con, stale, events="baseline_kms_events" in baseline_sql(name))
        parts.append(baseline_sql(name))
    union = " UNION ALL BY NAME ".join(parts)
    con.execute(f"CREATE OR REPLACE TEMP TABLE baseline_days AS {union}", dict(params) if computed else None)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {merge_sql(name)}")
    con.execute("DROP TABLE baseline_days")


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
    sigs = {name: signatures(con, days, name, params[name]) for name in STORED}
    for name in STORED:
        files, report.written[name] = split_days(days.lake, name, sigs[name])
        report.kept += len(files)
    for day in report.changed_days():
        _write_day(
            con, days.lake, day, {name: sigs[name][day] for name in STORED if day in report.written[name]}, params
        )
    _remove_others(days.lake, {stored_file(days.lake, n, d, sig) for n in STORED for d, sig in sigs[n].items()})
    return report


def _write_day(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    day: str,
    stale: Mapping[str, str],
    params: Mapping[str, Mapping[str, Any]],
) -> None:
    """Aggregate the day's stale baselines (name → signature) from one copy of its attributed operations, and
    publish one Parquet file each (an empty one when the day has no rows, so that it counts as stored)."""
    _register_state_changes(con)
    _operations_of(con, [day])
    con.execute("DROP VIEW baseline_operations")
    con.execute(  # attributed once for all baselines (the encryption contexts are not read)
        "CREATE TEMP TABLE baseline_operations AS SELECT * EXCLUDE (encryption_context) FROM key_operations"
        f" WHERE event_date = DATE {literal(day)}"
    )
    scratch = store_dir(lake) / "_batch"
    shutil.rmtree(scratch, ignore_errors=True)  # what a killed store left
    scratch.mkdir(parents=True)
    try:
        for name, signature in stale.items():
            con.execute(f"CREATE OR REPLACE TEMP TABLE baseline_batch AS {baseline_sql(name)}", dict(params[name]))
            part = scratch / f"{name}.parquet"
            con.execute(f"COPY baseline_batch TO {literal(str(part))} (FORMAT parquet, COMPRESSION zstd)")
            crash_point("baselines_publish")
            lake.put_file(part, stored_file(lake, name, day, signature))
    finally:
        shutil.rmtree(scratch)
        con.execute("DROP TABLE IF EXISTS baseline_batch")
        con.execute("DROP TABLE baseline_operations")


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
