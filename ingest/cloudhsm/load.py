"""Load parsed CloudHSM audit entries into the lake: deduplicate, attribute sessions, write, then record state.

A run holds the lake's lock. Each batch is written (atomic temp+rename per day partition) before the state
that says it was read (stream checkpoint or source objects), so a kill -9 at any point is safe to rerun:
the rerun fetches the batch again and the deduplication drops what the lake already holds.

Deduplication key: `(event_id, event_time)`. The same entry fetched twice (export plus CloudWatch, or a
rerun) has both equal and is dropped; an entry that reuses a sequence number at another time is kept, so
`verify hsm-sequence` can report it as a duplicate or reset instead of the ingest hiding it.

Session attribution needs the login, which may have landed in an earlier run: before attributing a batch,
the login/logout rows of the batch's HSMs and clusters are read back from the lake (a few columns of a
small fraction of rows) and replayed with the batch. A login that arrives *after* its commands (out-of-order
sources) leaves those commands with no `session_user_name`; re-ingesting in time order fixes that.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from ingest.cloudhsm.parse import (
    CLOSES_SESSION,
    OPENS_SESSION,
    TABLE,
    attribute_sessions,
    link_cluster_logins,
    parse_hsm_messages,
    to_arrow,
)
from ingest.faults import crash_point
from ingest.lake.schema import HSM_EVENTS, QUARANTINE
from ingest.lake.state import IngestState, RunLock
from ingest.lake.store import Lake, new_run_id
from ingest.progress import Progress, no_progress


@dataclass
class Batch:
    """Messages to load, quarantine found while reading them, and the state to record once written."""

    frame: pl.DataFrame
    quarantine: pa.Table = field(default_factory=QUARANTINE.empty_table)
    commit: Callable[[IngestState, str, dict[str, dict[str, int]]], None] = lambda state, run_id, counts: None


@dataclass
class RunStats:
    """What one ingest run did."""

    run_id: str
    entries: int = 0
    written: int = 0
    duplicates: int = 0
    quarantined: int = 0
    pruned: int = 0  # entries older than the lake's retention floor (keytrail prune): not landed again
    files: list[str] = field(default_factory=list)

    def paragraph(self, lake: str) -> str:
        """One readable line about the run."""
        text = (
            f"Read {self.entries} CloudHSM entries: wrote {self.written}, dropped {self.duplicates} duplicate "
            f"entries (already in the lake or read twice), quarantined {self.quarantined} (run {self.run_id}, "
            f"lake {lake})."
        )
        if self.pruned:
            text += f" {self.pruned} entries older than the lake's retention floor (keytrail prune) were left out."
        return text

    def add(self, other: RunStats) -> None:
        self.entries += other.entries
        self.written += other.written
        self.duplicates += other.duplicates
        self.pruned += other.pruned
        self.quarantined += other.quarantined
        self.files += other.files


def _lake_query(lake: Lake, files: list[Path], sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
    """Run `sql` over a view `t` of the given Parquet files (no hive columns), times as UTC."""
    con = duckdb.connect()
    try:
        con.execute("SET memory_limit = '1GB'")
        con.execute("SET TimeZone = 'UTC'")
        if lake.remote:
            con.register("t", lake.dataset(files, HSM_EVENTS))
        else:
            paths = [str(p) for p in files]
            con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet({paths!r}, hive_partitioning = false)")
        frame = pl.from_arrow(con.sql(sql, params=params or {}).to_arrow_table())
    finally:
        con.close()
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.col("event_time").dt.convert_time_zone("UTC"))


def existing_keys(lake: Lake, days: Iterable[dt.date]) -> pl.DataFrame:
    """(event_id, event_time) already in the lake partitions of the given days."""
    files = [p for d in days for p in lake.files(TABLE, d)]
    if not files:
        return pl.DataFrame(schema={"event_id": pl.String, "event_time": pl.Datetime("us", "UTC")})
    return _lake_query(lake, files, "SELECT event_id, event_time FROM t")


def prior_sessions(lake: Lake, hsm_ids: list[str], clusters: list[str]) -> pl.DataFrame | None:
    """Login/logout rows already in the lake for these HSMs or clusters (raw text left out)."""
    files = lake.files(TABLE)
    if not files:
        return None
    sql = (
        "SELECT * EXCLUDE (raw), '' AS raw FROM t WHERE opcode IN (SELECT unnest($ops)) "
        "AND (hsm_id IN (SELECT unnest($hsms)) OR cluster_id IN (SELECT unnest($clusters)))"
    )
    params = {"ops": [*OPENS_SESSION, *CLOSES_SESSION], "hsms": hsm_ids, "clusters": clusters}
    return _lake_query(lake, files, sql, params)


def drop_known(rows: pl.DataFrame, lake: Lake) -> pl.DataFrame:
    """Drop entries repeated within the batch or already in the lake (same event_id and time)."""
    rows = rows.unique(subset=["event_id", "event_time"], keep="first", maintain_order=True)
    days = rows.get_column("event_time").dt.date().unique().to_list()
    known = existing_keys(lake, days)
    return rows.join(known, on=["event_id", "event_time"], how="anti") if known.height else rows


def write_rows(lake: Lake, rows: pl.DataFrame, run_id: str) -> list[str]:
    """Write rows as one new file per UTC event day; returns the file paths."""
    paths = []
    with_day = rows.with_columns(pl.col("event_time").dt.date().alias("_day"))
    for (day,), part in with_day.group_by("_day", maintain_order=True):
        ordered = part.sort("hsm_id", "event_time", "sequence_no")
        paths.append(str(lake.write_partition(TABLE, day, to_arrow(ordered), run_id)))  # type: ignore[arg-type]
    return paths


def load_batch(
    lake: Lake, batch: Batch, run_id: str, floor: dt.date | None = None
) -> tuple[RunStats, dict[str, dict[str, int]]]:
    """Parse, deduplicate, attribute and write one batch (nothing older than the retention `floor`); returns
    stats and counts per source object."""
    parsed = parse_hsm_messages(batch.frame)
    kept = parsed.rows.filter(pl.col("event_time").dt.date() >= floor) if floor else parsed.rows
    rows = drop_known(kept, lake)
    prior = prior_sessions(lake, _distinct(rows, "hsm_id"), _distinct(rows, "cluster_id"))
    rows = link_cluster_logins(attribute_sessions(rows, prior), prior)
    files = write_rows(lake, rows, run_id) if rows.height else []
    quarantine = pa.concat_tables([batch.quarantine, parsed.quarantine.cast(QUARANTINE)])
    lake.write_quarantine(quarantine, run_id)
    stats = RunStats(
        run_id,
        entries=batch.frame.height,
        written=rows.height,
        duplicates=kept.height - rows.height,
        pruned=parsed.rows.height - kept.height,
        quarantined=quarantine.num_rows,
        files=files,
    )
    return stats, _counts(batch.frame, rows, quarantine)


def _distinct(rows: pl.DataFrame, col: str) -> list[str]:
    return [v for v in rows.get_column(col).unique().to_list() if v is not None]


def _counts(frame: pl.DataFrame, rows: pl.DataFrame, quarantine: pa.Table) -> dict[str, dict[str, int]]:
    """records / kept / quarantined per source object, as the ingest state records them."""
    records = frame.group_by("source_object").len("records")
    kept = rows.group_by("source_object").len("kept")
    bad = pl.from_arrow(quarantine.select(["source_object"]))
    assert isinstance(bad, pl.DataFrame)
    bad_counts = bad.group_by("source_object").len("quarantined")
    joined = records.join(kept, on="source_object", how="full", coalesce=True)
    joined = joined.join(bad_counts, on="source_object", how="full", coalesce=True).fill_null(0)
    return {r["source_object"]: {k: int(r[k]) for k in ("records", "kept", "quarantined")} for r in joined.to_dicts()}


def run_ingest(
    lake: Lake, source: str, batches: Callable[[IngestState], Iterator[Batch]], progress: Progress = no_progress
) -> RunStats:
    """One locked ingest run: load every batch the source yields, recording state after each write (and telling
    `progress` how many entries each batch read)."""
    with RunLock(lake.state_dir / "ingest.lock"):
        lake.remove_orphans()
        state = IngestState(lake.state_dir / "ingest.sqlite")
        total = RunStats(new_run_id())
        state.start_run(total.run_id, "ingest cloudhsm", source)
        try:
            for batch in batches(state):
                stats, counts = load_batch(lake, batch, total.run_id, state.retention_floor())
                crash_point("hsm-before-state")
                batch.commit(state, total.run_id, counts)
                total.add(stats)
                progress(stats.entries, 0)
        except BaseException as err:
            state.end_run(total.run_id, "failed", {**vars(total), "error": str(err)})
            raise
        else:
            state.end_run(total.run_id, "quarantined" if total.quarantined else "ok", vars(total))
        finally:
            state.close()
    return total
