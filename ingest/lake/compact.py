"""Compaction: rewrite a day partition's many small files as few large ones, crash-safely.

Why a journal. A partition's files cannot be swapped in one atomic step (not on disk, not on S3), so a
reader may briefly see the old files and the compacted one side by side. What must never happen is that
this state survives: a crash at any point must leave, after the next run, each event exactly once.

Each compaction is journaled in the ingest state (table `compactions`) before anything reaches the lake: the
partition, the names of the files it will publish and the names of the files they replace. In order:

1. DuckDB writes the deduplicated, time-sorted rows to local scratch files (`FILE_SIZE_BYTES` caps each),
   and only then is the journal entry written, with the exact list of new files;
2. each is published into the partition (rename on disk, one upload on S3 — both all-or-nothing);
3. the replaced files are deleted, then the journal entry.

`recover()` runs at the start of every nightly run, under the lock: for each journal entry left by a killed
run, if *all* the new files are in the lake the old ones are deleted (roll forward); otherwise the new
files that did land are deleted (roll back: the old files are still all there). Either way the entry goes.

Compaction also drops repeated event ids inside the partition (keep one), as a last line of defence.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingest.faults import crash_point
from ingest.lake.schema import TABLES
from ingest.lake.state import IngestState, utcnow
from ingest.lake.store import Lake

JOURNAL = """
CREATE TABLE IF NOT EXISTS compactions (
    table_name TEXT NOT NULL,
    day TEXT NOT NULL,
    run_id TEXT NOT NULL,
    targets TEXT NOT NULL,         -- JSON list of lake paths the compaction writes
    replaces TEXT NOT NULL,        -- JSON list of lake paths it replaces
    started_at TEXT NOT NULL,
    PRIMARY KEY (table_name, day)
);
"""
# The identity of a row inside a partition (what a duplicate means).
ROW_KEY = {"kms_events": "event_id", "hsm_events": "event_id, event_time", "access_events": "event_id"}
ORDER = {
    "kms_events": "event_time, event_id",
    "hsm_events": "hsm_id, event_time, sequence_no",
    "access_events": "event_time, event_id",
}
TARGET_FILE_BYTES = 256 * 1024 * 1024


@dataclass
class Compaction:
    """What compacting one partition did."""

    table: str
    day: dt.date
    files_before: int
    files_after: int
    rows: int

    def as_dict(self) -> dict[str, object]:
        return {
            "table": self.table,
            "day": self.day.isoformat(),
            "files_before": self.files_before,
            "files_after": self.files_after,
            "rows": self.rows,
        }


def journal(state: IngestState) -> None:
    state.db.executescript(JOURNAL)


def recover(lake: Lake, state: IngestState) -> list[str]:
    """Finish or undo compactions a killed run left half done; returns what was done, one line each."""
    journal(state)
    done = []
    rows = state.db.execute("SELECT table_name, day, targets, replaces FROM compactions").fetchall()
    for table, day, targets_json, replaces_json in rows:
        targets = [Path(p) for p in json.loads(targets_json)]
        replaced = [Path(p) for p in json.loads(replaces_json)]
        landed = [t for t in targets if lake.exists(t)]
        # The journal names exactly the files the compaction had written to scratch before publishing.
        if targets and len(landed) == len(targets):
            for path in replaced:
                lake.delete(path)
            done.append(f"finished compaction of {table} {day}: removed {len(replaced)} replaced files")
        else:
            for path in landed:
                lake.delete(path)
            done.append(f"undid compaction of {table} {day}: removed {len(landed)} partial files")
        state.db.execute("DELETE FROM compactions WHERE table_name = ? AND day = ?", (table, day))
    return done


def compact_lake(
    lake: Lake, state: IngestState, run_id: str, min_files: int = 2, memory_limit: str = "1GB"
) -> list[Compaction]:
    """Compact every day partition (of every table) that has at least `min_files` files."""
    journal(state)
    results = []
    for table in TABLES:
        for day, files in lake.partitions(table).items():
            if len(files) >= min_files:
                results.append(compact_partition(lake, state, run_id, table, day, files, memory_limit))
    return results


def compact_partition(
    lake: Lake, state: IngestState, run_id: str, table: str, day: dt.date, files: list[Path], memory_limit: str
) -> Compaction:
    """Rewrite one partition's files as few files (see the module docstring for the crash-safe order)."""
    scratch = lake.work_dir / "_staging" / f"{run_id}-compact-{table}-{day.isoformat()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    rows = _write_compacted(lake, table, files, scratch, memory_limit)
    outputs = sorted(scratch.glob("*.parquet"))
    partition = lake.partition_dir(table, day)
    targets = [partition / f"part-c{run_id}-{n}.parquet" for n in range(len(outputs))]
    with state.db:
        state.db.execute("BEGIN")
        state.db.execute(
            "INSERT OR REPLACE INTO compactions VALUES (?,?,?,?,?,?)",
            (table, day.isoformat(), run_id, _paths(targets), _paths(files), utcnow()),
        )
    crash_point("compact-journaled")
    for output, target in zip(outputs, targets, strict=True):
        lake.put_file(output, target)
        crash_point("compact-published")
    for path in files:
        lake.delete(path)
        crash_point("compact-delete")
    state.db.execute("DELETE FROM compactions WHERE table_name = ? AND day = ?", (table, day.isoformat()))
    shutil.rmtree(scratch, ignore_errors=True)
    return Compaction(table, day, len(files), len(targets), rows)


def _write_compacted(lake: Lake, table: str, files: list[Path], scratch: Path, memory_limit: str) -> int:
    """Deduplicated, sorted rows of the files into scratch Parquet files; returns the row count."""
    con = duckdb.connect(config={"memory_limit": memory_limit})
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET temp_directory = '{scratch / 'spill'}'")
        con.execute("SET preserve_insertion_order = true")
        con.register("part", lake.dataset(files, TABLES[table]))
        columns = ", ".join(f'"{c}"' for c in TABLES[table].names)
        query = (
            f"SELECT {columns} FROM part "
            f"QUALIFY row_number() OVER (PARTITION BY {ROW_KEY[table]} ORDER BY source_object) = 1 "
            f"ORDER BY {ORDER[table]}"
        )
        rows = int(con.execute(f"SELECT count(*) FROM ({query})").fetchone()[0])  # type: ignore[index]
        out = scratch / "out"
        con.execute(
            f"""COPY ({query}) TO '{out}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880,
                FILE_SIZE_BYTES {TARGET_FILE_BYTES}, FILENAME_PATTERN 'part-{{i}}', PER_THREAD_OUTPUT false)"""
        )
    finally:
        con.close()
    for n, path in enumerate(sorted(out.glob("*.parquet"))):
        path.rename(scratch / f"{n:04d}.parquet")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(scratch / "spill", ignore_errors=True)
    return rows


def _paths(paths: list[Path]) -> str:
    return json.dumps([p.as_posix() for p in paths])
