"""`keytrail attribute`: attribute every lake day whose stored files are missing or stale and store the result
in `<lake>/_attribution/` (the layout is analytics/attribution_store.py)."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from analytics.attribution_store import (
    STORED,
    LakeDays,
    basis,
    day_filter,
    register_stored,
    split_days,
    store_dir,
    stored_file,
)
from analytics.connection import connect
from analytics.queries import literal
from analytics.tenants import remember_tenants
from ingest.faults import crash_point
from ingest.lake.state import RunLock
from ingest.lake.store import Lake
from ingest.progress import Progress, no_progress

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
    tenants_file: str | None = None  # the tenants file it attributed with, and how that was chosen
    tenants_origin: str = "none"

    def describe(self) -> str:
        """One line for a person."""
        if not self.written and not self.removed:
            return f"Stored attribution in {self.folder} is up to date ({len(self.kept)} days)"
        removed = f"; removed {len(self.removed)} day(s) no longer in the lake" if self.removed else ""
        return (
            f"Attributed {len(self.written)} day(s) ({self.operations:,} operations) into {self.folder} in "
            f"{self.seconds:.1f} s; {len(self.kept)} day(s) were already stored{removed}"
        )


def scratch_dir(lake: Lake) -> Path:
    """Where one batch of days is written before its files are renamed into place (not named *.tmp: the
    lake's orphan sweep removes files, not folders)."""
    return store_dir(lake) / "_batch"


def refresh_attribution(
    lake: str | os.PathLike[str] | Lake,
    tenants: str | os.PathLike[str] | None = None,
    memory_limit: str = "2GB",
    threads: int | None = None,
    progress: Progress = no_progress,
) -> AttributionReport:
    """Attribute and store every lake day whose stored files are missing or stale; drop days the lake lost
    (`progress` is told of the day files written, of all to write).

    Each file appears by rename, and only a file named by its day's current signature is ever read, so an
    interrupted refresh leaves at worst some days to compute again.
    """
    started = time.perf_counter()
    lake = (lake if isinstance(lake, Lake) else Lake(lake)).require()
    report = AttributionReport(store_dir(lake))
    if lake.remote:
        return report
    # under the lake's lock (the nightly job already holds it): no ingest or prune changes days meanwhile, and
    # no second refresh shares the scratch folder
    with RunLock(lake.state_dir / "ingest.lock", command="attribute"):
        shutil.rmtree(scratch_dir(lake), ignore_errors=True)  # what a killed refresh left
        con = connect(lake, tenants, memory_limit=memory_limit, threads=threads, read_only=False)  # it writes with COPY
        try:
            _store(con, lake, report, progress)
            report.tenants_file, report.tenants_origin = con.sql(
                "SELECT tenants_file, tenants_origin FROM settings"
            ).fetchall()[0]
            remember_tenants(lake.state_dir, report.tenants_file)
        finally:
            con.close()
    report.seconds = time.perf_counter() - started
    return report


def _store(con: duckdb.DuckDBPyConnection, lake: Lake, report: AttributionReport, progress: Progress) -> None:
    """Write every stale day of every stored result, then drop the files no signature names any more."""
    days = LakeDays.of(lake)
    signatures = {name: days.signatures(basis(con, name)) for name in STORED}
    fresh, stale = split_days(lake, "attributed_usage", signatures["attributed_usage"])
    report.kept, report.written = sorted(fresh), stale
    work = {name: split_days(lake, name, signatures[name])[1] for name in STORED}
    total = sum(len(days) for days in work.values())
    for name, to_write in work.items():
        for first in range(0, len(to_write), DAYS_PER_QUERY):
            chunk = to_write[first : first + DAYS_PER_QUERY]
            _write_days(con, lake, name, chunk, signatures[name])
            progress(len(chunk), total)
        if name == "primary_copies":  # attributed_usage reads the days just stored instead of grouping them again
            register_stored(con, days, name)
    report.operations = stored_operations(con, lake, stale, signatures["attributed_usage"])
    report.removed = remove_stale_files(lake, signatures)


def _write_days(
    con: duckdb.DuckDBPyConnection, lake: Lake, name: str, days: list[str], signatures: dict[str, str]
) -> None:
    """Write `name` (as registered at connect: a stale day's rows are computed) for `days` in one query, and
    publish one Parquet file per day."""
    scratch = scratch_dir(lake)
    scratch.mkdir(parents=True)
    con.execute(
        f"COPY (SELECT * FROM {name}{day_filter(days)}) TO {literal(str(scratch))} "
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
        source = "SELECT * FROM read_parquet([" + ", ".join(literal(str(p)) for p in parts) + "])"
    con.execute(f"COPY ({source}) TO {literal(str(target))} (FORMAT parquet, COMPRESSION zstd)")
    return target


def stored_operations(con: duckdb.DuckDBPyConnection, lake: Lake, days: list[str], signatures: dict[str, str]) -> int:
    """The operations the stored usage files of `days` count."""
    if not days:
        return 0
    files = ", ".join(literal(str(stored_file(lake, "attributed_usage", d, signatures[d]))) for d in days)
    return int(con.sql(f"SELECT coalesce(sum(operations), 0) FROM read_parquet([{files}])").fetchall()[0][0])


def remove_stale_files(lake: Lake, signatures: dict[str, dict[str, str]]) -> list[str]:
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
