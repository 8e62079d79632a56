"""The quarantine holds each bad record once: a rerun after a kill and a re-copied file add nothing; and it keeps
the record's original bytes (valid UTF-8 in `raw`, anything else base64 in `raw_base64`)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import ROOT
from tests.test_cloudhsm import CLUSTER, entry, write_jsonl

KEYTRAIL = [sys.executable, "-m", "keytrail"]
EXIT_QUARANTINED = 3


def keytrail(*args: str, kill_at: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEYTRAIL_KILL_AT": kill_at}
    return subprocess.run([*KEYTRAIL, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def quarantine(lake: Path) -> list[tuple[str, int | None, str]]:
    rows = duckdb.sql(f"SELECT source_object, record_index, reason FROM read_parquet('{lake}/_quarantine/*.parquet')")
    return sorted(rows.fetchall(), key=str)


def hsm_source(folder: Path) -> Path:
    t = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    good = [("hsm-one", entry(n, t + dt.timedelta(seconds=n))) for n in range(1, 4)]
    write_jsonl(folder / CLUSTER / "hsm-one" / "a.jsonl", [*good, ("hsm-one", "garbage")])
    write_jsonl(folder / CLUSTER / "hsm-one" / "b.jsonl", [("hsm-one", "Sequence No : 0x9")])
    return folder


SOURCES = {
    # the malformed trail files of the sample: truncated gzip, invalid JSON, missing fields, a bad account, empty
    "cloudtrail": (lambda folder: Path(shutil.copytree(ROOT / "sample_logs" / "bad", folder)), "before-state"),
    "cloudhsm": (hsm_source, "hsm-before-state"),
}


@pytest.mark.parametrize("kind", SOURCES)
def test_a_rerun_after_a_kill_and_recopied_files_add_no_quarantine_rows(tmp_path: Path, kind: str) -> None:
    make, kill_point = SOURCES[kind]
    source = make(tmp_path / "source")
    clean, lake = tmp_path / "clean", tmp_path / "lake"
    assert keytrail("ingest", kind, str(source), "--lake", str(clean)).returncode == EXIT_QUARANTINED
    expected = quarantine(clean)
    assert len(expected) >= 2

    killed = keytrail("ingest", kind, str(source), "--lake", str(lake), kill_at=kill_point)
    assert killed.returncode == -signal.SIGKILL  # after the lake and quarantine writes, before the state
    assert keytrail("ingest", kind, str(source), "--lake", str(lake)).returncode == EXIT_QUARANTINED
    assert quarantine(lake) == expected

    later = dt.datetime.now().timestamp() + 3600
    for path in source.rglob("*"):
        if path.is_file():
            os.utime(path, (later, later))  # copied again: new modification times, same bytes
    again = keytrail("ingest", kind, str(source), "--lake", str(lake))
    assert again.returncode == EXIT_QUARANTINED, again.stderr
    assert quarantine(lake) == expected
