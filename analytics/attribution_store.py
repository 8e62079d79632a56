"""Attribution stored once: per lake day, the attributed hourly usage and the references the maps resolve.

Attributing every event again for every question costs a scan of the whole lake with its joins. So each UTC day
of events is attributed once, after the ingest that brought it, and two small results are written beside the
lake (`keytrail attribute`, the nightly job and `keytrail dashboard` do it):

    _attribution/event_date=2026-11-02/lake_refs-<signature>.parquet
                                       attributed_usage-<signature>.parquet

- `lake_refs` (analytics/sql/lake_refs.sql): the day's distinct identities, accounts, keys and key stores; a
  session resolves its attribution maps from these rows instead of scanning every event.
- `attributed_usage` (analytics/sql/attributed_usage.sql): the day's usage per hour, tenant, rule, source, key,
  operation and outcome; usage_hourly, usage_daily, tenant_cost and `keytrail usage` sum it.

A file's name is the signature of what its rows depend on: the day's Parquet files in kms_events and
hsm_events (names and sizes: lake files are immutable) and the analytics code and SQL; for attributed_usage
also the tenants file and the attribution maps the lake itself feeds (aliases and custom key stores in
`key_map`, `hsm_orphan_sessions`). A new file in the day, an edited tenants.toml, a new alias or an upgrade
changes the name, and the day is computed again. `register_stored` makes each view from the files whose name
still matches and computes the other days on the fly, so a stale or missing day is slower, never wrong.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from analytics.queries import load_sql
from ingest.faults import crash_point
from ingest.lake import Lake
from ingest.schema import TABLES
from ingest.state import RunLock

STORE_DIR = "_attribution"
# What is stored per day, in the order it is computed (attributed_usage needs the maps lake_refs feeds).
STORED = ("lake_refs", "attributed_usage")
# Lake-derived maps whose content changes the attribution of days already stored.
LAKE_MAPS = ("key_map", "hsm_orphan_sessions")
# Days computed per query when refreshing: bounds the memory of one COPY on a large lake.
DAYS_PER_QUERY = 7


@dataclass
class AttributionReport:
    """What refresh_attribution did: the days it attributed and stored, and those already stored."""

    folder: Path
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    operations: int = 0
    seconds: float = 0.0

    def describe(self) -> str:
        """One line for a person."""
        if not self.written and not self.removed:
            return f"Stored attribution in {self.folder} is up to date ({len(self.kept)} days)"
        removed = f"; removed {len(self.removed)} day(s) no longer in the lake" if self.removed else ""
        return (
            f"Attributed {len(self.written)} day(s) ({self.operations:,} operations) into {self.folder} in "
            f"{self.seconds:.1f} s; {len(self.kept)} day(s) were already stored{removed}"
        )


def store_dir(lake: Lake) -> Path:
    """The stored-attribution folder of a (local) lake."""
    return lake.root / STORE_DIR


def scratch_dir(lake: Lake) -> Path:
    """Where one batch of days is written before its files are renamed into place (not named *.tmp: the
    lake's orphan sweep removes files, not folders)."""
    return store_dir(lake) / "_batch"


@functools.cache
def code_digest() -> str:
    """A hash of the analytics code and SQL: a new attribution rule or detector makes stored results stale."""
    digest = hashlib.sha256()
    base = Path(__file__).resolve().parent
    for f in sorted([*base.rglob("*.sql"), *base.glob("*.py")]):
        digest.update(f"{f.relative_to(base)}\0".encode() + f.read_bytes())
    return digest.hexdigest()


def basis(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """The signature of what every day of `name` depends on besides the day's own files."""
    digest = hashlib.sha256(f"{name}\0{code_digest()}".encode())
    if name == "attributed_usage":
        path = con.sql("SELECT tenants_file FROM settings").fetchall()[0][0]
        digest.update(b"tenants\0" + (Path(path).read_bytes() if path else b""))
        for table in LAKE_MAPS:
            rows = con.sql(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
            digest.update(f"{table}\0{rows!r}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class LakeDays:
    """A local lake and, per event day (ISO date), its Parquet files as `table/name\0size`: listed once, and
    what every stored file's signature is made of."""

    lake: Lake
    files: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, lake: Lake) -> LakeDays:
        files: dict[str, list[str]] = {}
        for table in TABLES:
            for day, paths in lake.partitions(table).items():
                files.setdefault(day.isoformat(), []).extend(f"{table}/{p.name}\0{p.stat().st_size}" for p in paths)
        return cls(lake, {day: tuple(sorted(names)) for day, names in sorted(files.items())})

    def signatures(self, basis_signature: str) -> dict[str, str]:
        """Per day, the signature its stored file must be named by."""
        return {
            day: hashlib.sha256("\n".join([basis_signature, *names]).encode()).hexdigest()[:32]
            for day, names in self.files.items()
        }


def stored_file(lake: Lake, name: str, day: str, signature: str) -> Path:
    return store_dir(lake) / f"event_date={day}" / f"{name}-{signature}.parquet"


def split_days(lake: Lake, name: str, signatures: dict[str, str]) -> tuple[dict[str, Path], list[str]]:
    """The days whose stored file matches (day → file), and the days to compute."""
    stored = {day: stored_file(lake, name, day, sig) for day, sig in signatures.items()}
    fresh = {day: path for day, path in stored.items() if path.is_file()}
    return fresh, [day for day in signatures if day not in fresh]


def register_stored(con: duckdb.DuckDBPyConnection, days: LakeDays | None, name: str, kind: str = "VIEW") -> None:
    """The view (or table, read once) `name`: its stored days read from their files, the other days computed by
    its SQL (all of them for an S3 lake, `days` None, where nothing is stored). The view `computed_<name>` always
    computes."""
    con.execute(f"CREATE OR REPLACE VIEW computed_{name} AS {load_sql(name)}")
    if days is None:
        con.execute(f"CREATE OR REPLACE {kind} {name} AS SELECT * FROM computed_{name}")
        return
    fresh, stale = split_days(days.lake, name, days.signatures(basis(con, name)))
    columns = ", ".join(f'"{c}"' for c in con.sql(f"SELECT * FROM computed_{name}").columns)
    parts = []
    if fresh:
        files = ", ".join(_literal(str(p)) for p in fresh.values())
        parts.append(f"SELECT {columns} FROM read_parquet([{files}])")
    if stale or not fresh:
        parts.append(f"SELECT {columns} FROM computed_{name}{_day_filter(stale) if fresh else ''}")
    con.execute(f"CREATE OR REPLACE {kind} {name} AS {' UNION ALL '.join(parts)}")


def refresh_attribution(
    lake: str | os.PathLike[str] | Lake,
    tenants: str | os.PathLike[str] | None = None,
    memory_limit: str = "2GB",
    threads: int | None = None,
) -> AttributionReport:
    """Attribute and store every lake day whose stored files are missing or stale; drop days the lake lost.

    Each file appears by rename, and only a file named by its day's current signature is ever read, so an
    interrupted refresh leaves at worst some days to compute again.
    """
    from analytics.connection import connect

    started = time.perf_counter()
    lake = lake if isinstance(lake, Lake) else Lake(lake)
    report = AttributionReport(store_dir(lake))
    if lake.remote:
        return report
    # under the lake's lock (the nightly job already holds it): no ingest or prune changes days meanwhile, and
    # no second refresh shares the scratch folder
    with RunLock(lake.state_dir / "ingest.lock", command="attribute"):
        shutil.rmtree(scratch_dir(lake), ignore_errors=True)  # what a killed refresh left
        con = connect(lake, tenants, memory_limit=memory_limit, threads=threads)
        try:
            _store(con, lake, report)
        finally:
            con.close()
    report.seconds = time.perf_counter() - started
    return report


def _store(con: duckdb.DuckDBPyConnection, lake: Lake, report: AttributionReport) -> None:
    """Write every stale day of every stored result, then drop the files no signature names any more."""
    days = LakeDays.of(lake)
    signatures = {name: days.signatures(basis(con, name)) for name in STORED}
    fresh, stale = split_days(lake, "attributed_usage", signatures["attributed_usage"])
    report.kept, report.written = sorted(fresh), stale
    for name in STORED:
        _write_stale(con, lake, name, signatures[name])
    report.operations = _operations(con, lake, stale, signatures["attributed_usage"])
    report.removed = _remove_stale_files(lake, signatures)


def _write_stale(con: duckdb.DuckDBPyConnection, lake: Lake, name: str, signatures: dict[str, str]) -> None:
    """Compute and store `name` for every day without a current file, DAYS_PER_QUERY days per query."""
    stale = split_days(lake, name, signatures)[1]
    for first in range(0, len(stale), DAYS_PER_QUERY):
        _write_days(con, lake, name, stale[first : first + DAYS_PER_QUERY], signatures)


def _write_days(
    con: duckdb.DuckDBPyConnection, lake: Lake, name: str, days: list[str], signatures: dict[str, str]
) -> None:
    """Write `name` (as registered at connect: a stale day's rows are computed) for `days` in one query, and
    publish one Parquet file per day."""
    scratch = scratch_dir(lake)
    scratch.mkdir(parents=True)
    con.execute(
        f"COPY (SELECT * FROM {name}{_day_filter(days)}) TO {_literal(str(scratch))} "
        "(FORMAT parquet, PARTITION_BY (day), WRITE_PARTITION_COLUMNS true, COMPRESSION zstd)"
    )
    for day in days:
        written = sorted((scratch / f"day={day}").glob("*.parquet"))
        if len(written) != 1:  # nothing that day (e.g. no KMS events for lake_refs), or DuckDB split the partition
            written = [_single_file(con, name, written, scratch / f"{day}.parquet")]
        crash_point("attribution_publish")
        lake.put_file(written[0], stored_file(lake, name, day, signatures[day]))
    shutil.rmtree(scratch)


def _single_file(con: duckdb.DuckDBPyConnection, name: str, parts: list[Path], target: Path) -> Path:
    """One file with the rows of `parts` (none: an empty file with the columns of `name`)."""
    source = f"SELECT * FROM computed_{name} LIMIT 0"
    if parts:
        source = "SELECT * FROM read_parquet([" + ", ".join(_literal(str(p)) for p in parts) + "])"
    con.execute(f"COPY ({source}) TO {_literal(str(target))} (FORMAT parquet, COMPRESSION zstd)")
    return target


def _operations(con: duckdb.DuckDBPyConnection, lake: Lake, days: list[str], signatures: dict[str, str]) -> int:
    """The operations the stored usage files of `days` count."""
    if not days:
        return 0
    files = ", ".join(_literal(str(stored_file(lake, "attributed_usage", d, signatures[d]))) for d in days)
    return int(con.sql(f"SELECT coalesce(sum(operations), 0) FROM read_parquet([{files}])").fetchall()[0][0])


def _remove_stale_files(lake: Lake, signatures: dict[str, dict[str, str]]) -> list[str]:
    """Delete stored files no current signature names (older versions of a day, days pruned from the lake);
    returns the days removed altogether."""
    current = {stored_file(lake, name, day, sig) for name, days in signatures.items() for day, sig in days.items()}
    for path in store_dir(lake).glob("event_date=*/*.parquet"):
        if path not in current:
            path.unlink()
    removed = []
    for folder in store_dir(lake).glob("event_date=*"):
        if not any(folder.iterdir()):
            folder.rmdir()
            removed.append(folder.name.removeprefix("event_date="))
    return sorted(removed)


def _day_filter(days: list[str]) -> str:
    """A WHERE clause on `day` for DuckDB to prune the lake's date partitions with (dates from file names)."""
    return " WHERE day IN (" + ", ".join(f"DATE {_literal(d)}" for d in days) + ")"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
