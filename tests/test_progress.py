"""Progress on long work: a bar on a terminal, and elsewhere (cron, systemd, a pipe) a line every few seconds and
one at the end, for the ingests, verification and attribution alike; the nightly job logs it per source."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from keytrail.cli import cli
from keytrail.jobs.config import load_config
from keytrail.jobs.nightly import run_nightly
from keytrail.progress import Reporter
from tests.trailfiles import fresh_records, trail_key, trail_text, write_trail


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_every_interval_without_a_terminal() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Reporter("trail files", "files", stream=out, interval=10, clock=clock)
    for _ in range(4):
        clock.now += 4
        progress(100, 400)
    progress.close()
    assert out.getvalue().splitlines() == [
        "trail files: 300 of 400 files (75%), 25 files/s",
        "trail files: 400 of 400 files (100%), 25 files/s (done)",
    ]


def test_unknown_totals_count_what_came() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Reporter("LookupEvents", "events", stream=out, interval=0, clock=clock)
    clock.now = 2
    progress(50, 0)
    assert out.getvalue() == "LookupEvents: 50 events, 25 events/s\n"


def trail_folder(tmp_path: Path) -> Path:
    for n in range(3):
        day = f"2026-11-2{n}"
        write_trail(tmp_path / "trail" / trail_key("111122223333", "us-east-1", day, n), fresh_records(20, n, day))
    return tmp_path / "trail"


def test_every_long_command_reports_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYTRAIL_PROGRESS_SECONDS", "0")  # a line for every piece, as a slow run would log
    lake = str(tmp_path / "lake")
    runs = {
        "ingest cloudtrail": ["ingest", "cloudtrail", str(trail_folder(tmp_path)), "--batch-files", "1"],
        "attribute": ["attribute"],
        "verify cloudtrail": ["verify", "cloudtrail", str(tmp_path / "trail")],
    }
    err = {name: CliRunner().invoke(cli, [*args, "--lake", lake]).stderr for name, args in runs.items()}
    assert "trail files: 1 of 3 files (33%)" in err["ingest cloudtrail"]
    assert "trail files: 3 of 3 files (100%)" in err["ingest cloudtrail"]
    # lake_refs, primary_copies and attributed_usage of 3 days
    assert "days attributed: 9 of 9 day files (100%)" in err["attribute"]


def test_nightly_logs_progress_per_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYTRAIL_PROGRESS_SECONDS", "0")
    config = tmp_path / "keytrail.toml"
    config.write_text(
        f'[lake]\npath = "lake"\n[ingest]\nfirst_run = "all"\nlog_format = "json"\n[anomalies]\nenabled = false\n'
        f'[[cloudtrail]]\nname = "local"\npath = "{trail_folder(tmp_path)}"\n'
    )
    result = CliRunner().invoke(cli, ["nightly", "--config", str(config)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    progress = [line for line in lines if line.get("event") == "progress"]
    assert progress and all(line["source"] == "local" for line in progress)
    assert progress[-1]["message"].startswith("local: 3 of 3 trail files (100%)")
    assert run_nightly(load_config(config)).exit_code == 0


def test_the_s3_listing_reports_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> None:
    monkeypatch.setenv("KEYTRAIL_PROGRESS_SECONDS", "0")
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="trail")
    for n in range(3):
        key = "logs/" + trail_key("111122223333", "us-east-1", "2026-11-20", n)
        s3.put_object(Bucket="trail", Key=key, Body=gzip.compress(trail_text(fresh_records(2, n)).encode()))
    args = ["ingest", "cloudtrail", "s3://trail/logs", "--endpoint-url", moto_endpoint, "--lake", str(tmp_path / "l")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "listing s3://trail/logs: 3 objects" in result.stderr and "trail files: 3 of 3 files" in result.stderr
