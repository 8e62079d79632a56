"""A run killed with SIGKILL at any point, then rerun, ends with exactly the events of a clean run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from ingest.lake.store import Lake
from tests.trailfiles import fresh_records, write_trail

KEYTRAIL = [sys.executable, "-m", "keytrail"]


def run(src: Path, lake: Path, kill_at: str = "") -> subprocess.Popen[bytes]:
    cmd = [*KEYTRAIL, "ingest", "cloudtrail", str(src), "--lake", str(lake), "--batch-files", "3"]
    env = {**os.environ, "KEYTRAIL_KILL_AT": kill_at}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def event_ids(lake: Path, table: str = "kms_events") -> list[str]:
    files = [str(f) for f in Lake(lake).files(table)]
    if not files:
        return []
    return sorted(r[0] for r in duckdb.sql("SELECT event_id FROM read_parquet($f)", params={"f": files}).fetchall())


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("trails")
    for n in range(40):
        recs = fresh_records(150, seed=n, day=f"2026-11-{10 + n % 5:02d}")
        if n:  # repeated deliveries: the first 10 records of the previous file, identical
            recs[:10] = fresh_records(10, seed=n - 1, day=f"2026-11-{10 + (n - 1) % 5:02d}")
        write_trail(src / f"f{n:03d}.json.gz", recs)
    return src


@pytest.fixture(scope="module")
def clean_run(source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The event ids of each table after a run nobody killed."""
    clean = tmp_path_factory.mktemp("clean")
    assert run(source, clean).wait(timeout=120) == 0
    ids = {table: event_ids(clean, table) for table in ("kms_events", "access_events")}
    # the documentation's grants, key policies and key store calls are access events too (docs/access.md)
    assert all(len(found) == len(set(found)) > 0 for found in ids.values())
    return ids


def assert_rerun_completes(source: Path, lake: Path, clean_run: dict[str, list[str]]) -> None:
    rerun = run(source, lake)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err.decode()
    assert {table: event_ids(lake, table) for table in clean_run} == clean_run
    assert not list(lake.rglob("*.tmp")) and not (lake / "_staging").exists()


@pytest.mark.parametrize("point", ["publish:3", "written:2", "before-state:4"])
def test_killed_at_each_step(source: Path, tmp_path: Path, clean_run: dict[str, list[str]], point: str) -> None:
    """Killed between renaming files in, after writing a batch, and before recording it in the state."""
    lake = tmp_path / "lake"
    assert run(source, lake, kill_at=point).wait(timeout=120) == -signal.SIGKILL
    assert 0 < len(event_ids(lake)) < len(clean_run["kms_events"])
    assert_rerun_completes(source, lake, clean_run)


@pytest.mark.parametrize("delays", [(0.9,), (1.3, 0.7, 2.0)])
def test_killed_at_random_moments(
    source: Path, tmp_path: Path, clean_run: dict[str, list[str]], delays: tuple[float, ...]
) -> None:
    lake = tmp_path / "lake"
    for delay in delays:
        proc = run(source, lake)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert_rerun_completes(source, lake, clean_run)
