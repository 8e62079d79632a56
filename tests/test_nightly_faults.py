"""`keytrail nightly` killed with SIGKILL at each step of the second night, then rerun: the lake ends identical
to a clean run (same rows, no event lost or twice), nothing half-written left, the stale lock reported.
Also: a trail object deleted between listing and reading."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ingest.cloudtrail.sources import S3Trail
from ingest.lake.store import Lake
from keytrail.jobs.config import load_config
from keytrail.jobs.nightly import read_runs, run_nightly
from tests.test_nightly import aws, first_night, second_night, table_rows, write_config  # noqa: F401 - fixture

KEYTRAIL = [sys.executable, "-m", "keytrail"]


def run(config: Path, kill_at: str = "") -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "KEYTRAIL_KILL_AT": kill_at}
    return subprocess.run([*KEYTRAIL, "nightly", "--config", str(config)], env=env, capture_output=True, timeout=300)


def lake_state(lake: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {t: table_rows(lake, t) for t in ("kms_events", "hsm_events")}


_CLEAN: dict[str, dict[str, list[tuple[Any, ...]]]] = {}


def clean_lake_state(endpoint: str, tmp_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The lake of one clean run over everything (the same inputs in every test: computed once)."""
    if "rows" not in _CLEAN:
        clean = write_config(tmp_path, "clean", endpoint)
        assert run(clean).returncode == 0
        _CLEAN["rows"] = lake_state(tmp_path / "clean-lake")
    return _CLEAN["rows"]


@pytest.mark.parametrize(
    "point",
    [
        "download:2",  # while fetching trail files
        "publish:1",  # renaming the new Parquet files in
        "written:1",  # after writing, before the quarantine and the state
        "before-state:1",  # trail files written, their state not yet
        "hsm-before-state:1",  # CloudHSM batch written, its checkpoint not yet
        "compact-journaled:1",  # compaction journaled, nothing published
        "compact-published:1",  # first compacted file in, old files still there (duplicates visible)
        "compact-delete:1",  # compacted file in, old files half removed
        "nightly-record:1",  # everything done but the run record
    ],
)
def test_killed_on_the_second_night_then_rerun(aws: dict[str, Any], tmp_path: Path, point: str) -> None:  # noqa: F811
    config = write_config(tmp_path, "night", aws["endpoint"])
    first_night(aws)
    assert run(config).returncode == 0
    second_night(aws)

    killed = run(config, kill_at=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    rerun = run(config)
    assert rerun.returncode == 0, rerun.stderr.decode()[-3000:]

    lake = tmp_path / "night-lake"
    assert lake_state(lake) == clean_lake_state(aws["endpoint"], tmp_path)
    ids = [r[1] for r in table_rows(lake, "kms_events")]
    assert len(ids) == len(set(ids))
    assert not list(lake.rglob("*.tmp")) and not list((lake / "_staging").rglob("*.parquet"))
    record = read_runs(Lake(lake))[0]
    assert record["status"] == "ok"
    assert record["stale_lock"] and "(nightly)" in record["stale_lock"]


def test_an_object_deleted_between_listing_and_reading(
    aws: dict[str, Any],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first_night(aws)
    cfg = load_config(write_config(tmp_path, "vanish", aws["endpoint"]))
    fetch = S3Trail.fetch
    gone: list[str] = []

    def vanishing(self: S3Trail, key_uri: str) -> bytes:
        if not gone:  # the first object read was deleted after the listing
            gone.append(key_uri)
            self.client.delete_object(Bucket=self.bucket, Key=key_uri.removeprefix(f"s3://{self.bucket}/"))
        return fetch(self, key_uri)

    with monkeypatch.context() as patch:
        patch.setattr(S3Trail, "fetch", vanishing)
        result = run_nightly(cfg)
    assert result.exit_code == 0, result.errors
    counts = result.sources[0].counts
    assert (counts["files_seen"], counts["files_new"], counts["vanished"]) == (3, 3, 1)
    again = run_nightly(cfg)  # it is gone: nothing is retried, nothing fails
    assert again.exit_code == 0 and again.sources[0].counts["files_seen"] == 2
