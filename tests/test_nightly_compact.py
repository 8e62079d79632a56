"""Compaction: a day's files become one, repeated event ids go, and the journal finishes or undoes a
compaction a killed run left half done."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb

from ingest.cloudtrail.load import ingest_local
from ingest.cloudtrail.sources import TrailFilter
from ingest.lake.compact import compact_lake, journal, recover
from ingest.lake.state import IngestState
from ingest.lake.store import Lake
from tests.trailfiles import fresh_records, write_trail


def ids(lake: Lake, table: str = "kms_events") -> list[str]:
    files = [str(f) for f in lake.files(table)]
    rows = duckdb.connect().execute("SELECT event_id FROM read_parquet($f)", {"f": files}).fetchall()
    return sorted(r[0] for r in rows)


def three_files(tmp_path: Path) -> tuple[Lake, IngestState, list[str]]:
    for n in range(3):
        write_trail(tmp_path / "trails" / f"{n}.json.gz", fresh_records(10, seed=n, day="2026-11-20"))
    lake = Lake(tmp_path / "lake")
    ingest_local(lake, tmp_path / "trails", TrailFilter(), batch_files=1)
    assert len(lake.files("kms_events")) == 3
    return lake, IngestState(lake.state_dir / "ingest.sqlite"), ids(lake)


def test_a_partition_becomes_one_file_without_repeats(tmp_path: Path) -> None:
    lake, state, before = three_files(tmp_path)
    first = lake.files("kms_events")[0]
    shutil.copy(first, first.with_name("part-copy.parquet"))  # the same events twice
    assert len(ids(lake)) == 40
    access = ids(lake, "access_events")  # the documentation's grants and key policies among the records
    found = compact_lake(lake, state, "r1")
    [done] = [c for c in found if c.table == "kms_events"]
    assert (done.files_before, done.files_after, done.rows) == (4, 1, 30)
    assert {c.table for c in found} == {"kms_events", "access_events"} and ids(lake, "access_events") == access
    assert len(lake.files("access_events")) == 1
    assert ids(lake) == before and lake.files("kms_events")[0].name == "part-cr1-0.parquet"
    assert state.db.execute("SELECT count(*) FROM compactions").fetchone() == (0,)
    assert compact_lake(lake, state, "r2") == []  # one file: nothing to do


def journal_entry(state: IngestState, targets: list[Path], replaces: list[Path]) -> None:
    journal(state)
    state.db.execute(
        "INSERT INTO compactions VALUES ('kms_events', '2026-11-20', 'rX', ?, ?, 'now')",
        (json.dumps([str(t) for t in targets]), json.dumps([str(p) for p in replaces])),
    )


def test_recover_undoes_a_compaction_whose_files_did_not_all_land(tmp_path: Path) -> None:
    lake, state, before = three_files(tmp_path)
    old = lake.files("kms_events")
    landed = old[0].with_name("part-crX-0.parquet")
    shutil.copy(old[0], landed)  # the first of two new files made it, the second did not
    journal_entry(state, [landed, old[0].with_name("part-crX-1.parquet")], old)
    assert recover(lake, state) == ["undid compaction of kms_events 2026-11-20: removed 1 partial files"]
    assert lake.files("kms_events") == old and ids(lake) == before


def test_recover_finishes_a_compaction_whose_files_all_landed(tmp_path: Path) -> None:
    lake, state, before = three_files(tmp_path)
    old = lake.files("kms_events")
    saved = tmp_path / "saved"
    saved.mkdir()
    for path in old:
        shutil.copy(path, saved / path.name)
    [done] = [c for c in compact_lake(lake, state, "r1") if c.table == "kms_events"]
    new = lake.files("kms_events")
    # The crash state: the compacted file is in, two of the three old files are not deleted yet.
    for path in old[:2]:
        shutil.copy(saved / path.name, path)
    journal_entry(state, new, old)
    assert len(ids(lake)) == 50
    assert recover(lake, state) == [f"finished compaction of kms_events {done.day}: removed 3 replaced files"]
    assert lake.files("kms_events") == new and ids(lake) == before
