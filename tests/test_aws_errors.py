"""Errors a person can act on: every AWS failure class and Ctrl+C end in one line naming the fix (no traceback)
unless $KEYTRAIL_DEBUG is set, and keytrail retries with botocore's one policy, not a second loop of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from analytics import connect
from ingest.aws import call_aws, explain_client_error, make_client
from ingest.errors import SourceError
from keytrail.cli import cli
from tests.conftest import ROOT, _free_port
from tests.trailfiles import fresh_records, trail_key, write_trail


class Throttling(BaseHTTPRequestHandler):
    """A CloudWatch Logs endpoint on 127.0.0.1 that throttles the first `throttle` requests."""

    throttle = 2
    seen: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
        self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(self.headers["X-Amz-Target"])
        throttled = len(self.seen) <= self.throttle
        body = {"__type": "ThrottlingException", "message": "Rate exceeded"} if throttled else {"logGroups": []}
        self.send_response(400 if throttled else 200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def throttling_endpoint() -> Iterator[str]:
    Throttling.seen = []
    server = HTTPServer(("127.0.0.1", 0), Throttling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_throttling_is_retried_by_botocore_once(throttling_endpoint: str) -> None:
    client = make_client("logs", "us-east-1", throttling_endpoint)
    answer = call_aws(client.describe_log_groups, "log groups")
    assert (answer["logGroups"], answer["ResponseMetadata"]["RetryAttempts"]) == ([], 2)
    assert Throttling.seen == ["Logs_20140328.DescribeLogGroups"] * 3, "two throttled, the third answered"


def test_throttled_past_the_retries_names_the_fix() -> None:
    err = ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "FilterLogEvents")
    assert str(explain_client_error(err, "log stream g/s")) == (
        "AWS throttled FilterLogEvents for log stream g/s past botocore's retries: rerun later (a rerun resumes "
        "where this one stopped), or run fewer keytrail jobs at once against this account"
    )
    with pytest.raises(SourceError, match="AWS throttled FilterLogEvents"):
        call_aws(lambda **kw: (_ for _ in ()).throw(err), "log stream g/s")


def one_line_error(result: object) -> str:
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output  # type: ignore[attr-defined]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    return lines[0]


def test_an_unreachable_endpoint_is_one_line(lake_dir: Path) -> None:
    closed = f"http://127.0.0.1:{_free_port()}"
    args = ["ingest", "cloudhsm", "cloudwatch", "--endpoint-url", closed, "--lake", str(lake_dir)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "cannot reach AWS (Could not connect to the endpoint URL" in one_line_error(result)
    assert "check --endpoint-url, --region and the network" in result.stderr


def test_no_credentials_is_one_line(monkeypatch: pytest.MonkeyPatch, lake_dir: Path, moto_endpoint: str) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask the instance metadata address
    args = ["ingest", "cloudtrail", "s3://trail/x", "--endpoint-url", moto_endpoint, "--lake", str(lake_dir)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert one_line_error(result).startswith("Error: no usable AWS credentials: configure credentials (aws configure")


def test_an_unknown_profile_is_one_line(lake_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["ingest", "cloudtrail", "s3://trail/x", "--profile", "nosuch", "--lake", str(lake_dir)])  # fmt: skip  # noqa: E501
    assert result.exit_code == 2
    assert one_line_error(result) == (
        "Error: The config profile (nosuch) could not be found: check --profile or $AWS_PROFILE against "
        "`aws configure list-profiles`"
    )


def test_debug_shows_the_traceback(lake_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYTRAIL_DEBUG", "1")
    result = CliRunner().invoke(cli, ["ingest", "cloudtrail", "s3://trail/x", "--profile", "nosuch", "--lake", str(lake_dir)])  # fmt: skip  # noqa: E501
    assert type(result.exception).__name__ == "ProfileNotFound"


def test_ctrl_c_exits_130_and_a_rerun_resumes(tmp_path: Path) -> None:
    for n in range(3):
        day = f"2026-11-2{n}"
        write_trail(
            tmp_path / "trail" / trail_key("111122223333", "us-east-1", day, n), fresh_records(50, seed=n, day=day)
        )
    command = [sys.executable, "-m", "keytrail", "ingest", "cloudtrail", str(tmp_path / "trail"), "--lake", str(tmp_path / "lake"), "--batch-files", "1"]  # fmt: skip  # noqa: E501
    env = {**os.environ, "KEYTRAIL_KILL_AT": "before-state:2", "KEYTRAIL_KILL_SIGNAL": "INT"}
    stopped = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, check=False)
    assert stopped.returncode == 130, stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1].startswith("Interrupted: every file that landed before it is kept")
    assert "Traceback" not in stopped.stderr
    resumed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    assert resumed.returncode == 0, resumed.stderr
    con = connect(tmp_path / "lake")
    assert con.sql("SELECT count(*), count(DISTINCT event_id) FROM kms_events").fetchall() == [(150, 150)]
