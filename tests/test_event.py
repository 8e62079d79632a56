"""`keytrail event ID` shows a lake row; `--raw` fetches the original record from its trail file (a folder or S3),
and says so when the file is gone or is no longer the one ingested."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from keytrail.cli import cli
from tests.trailfiles import fresh_records, trail_key, trail_text, write_trail

BUCKET = "trail-bucket"


def keytrail(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def minified(record: dict[str, object]) -> str:
    return json.dumps(record, separators=(",", ":"))


def test_event_prints_the_typed_row_and_the_original_record_from_its_folder(tmp_path: Path) -> None:
    records = fresh_records(5, seed=41)
    trail = write_trail(tmp_path / "src" / "a.json.gz", records)
    lake = str(tmp_path / "lake")
    assert keytrail("ingest", "cloudtrail", str(tmp_path / "src"), "--lake", lake)[0] == 0
    code, out = keytrail("event", records[3]["eventID"], "--lake", lake)
    assert code == 0, out
    fields = dict(line.split(None, 1) for line in out.splitlines() if len(line.split(None, 1)) == 2)
    assert fields["event_name"] == records[3]["eventName"]
    assert fields["source_object"] == str(trail) and fields["record_index"] == "3"
    assert fields["raw"].startswith("not kept")
    code, out = keytrail("event", records[3]["eventID"], "--lake", lake, "--raw")
    assert code == 0, out
    assert out == minified(records[3]) + "\n"  # byte for byte as the trail file holds it


def test_a_relative_source_is_found_from_another_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ingested as `keytrail ingest cloudtrail src` in one folder, looked up from another: the relative path is
    read from the folder the ingest ran in."""
    records = fresh_records(3, seed=45)
    write_trail(tmp_path / "src" / "a.json.gz", records)
    lake = str(tmp_path / "lake")
    monkeypatch.chdir(tmp_path)
    assert keytrail("ingest", "cloudtrail", "src", "--lake", lake)[0] == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, out = keytrail("event", records[1]["eventID"], "--lake", lake, "--raw")
    assert code == 0, out
    assert out == minified(records[1]) + "\n"


def test_a_changed_or_deleted_trail_file_is_named_not_read(tmp_path: Path) -> None:
    records = fresh_records(3, seed=42)
    trail = write_trail(tmp_path / "src" / "a.json.gz", records)
    lake = str(tmp_path / "lake")
    assert keytrail("ingest", "cloudtrail", str(tmp_path / "src"), "--lake", lake)[0] == 0
    # Someone rewrites the file: record 1 now claims another caller. Same records, same count, other bytes.
    write_trail(trail, [records[0], {**records[1], "sourceIPAddress": "198.51.100.7"}, records[2]])
    code, out = keytrail("event", records[1]["eventID"], "--lake", lake, "--raw")
    assert code == 1 and f"Error: {trail} changed since it was ingested:" in out
    assert "198.51.100.7" not in out
    trail.unlink()
    code, out = keytrail("event", records[1]["eventID"], "--lake", lake, "--raw")
    assert code == 1 and f"Error: {trail} is gone" in out and "--keep-raw" in out
    code, out = keytrail("event", records[1]["eventID"], "--lake", lake)
    assert code == 0 and records[1]["eventID"] in out  # the typed row stays in the lake


def test_keep_raw_answers_after_the_source_is_gone(tmp_path: Path) -> None:
    records = fresh_records(3, seed=43)
    trail = write_trail(tmp_path / "src" / "a.json.gz", records)
    lake = str(tmp_path / "lake")
    assert keytrail("ingest", "cloudtrail", str(tmp_path / "src"), "--lake", lake, "--keep-raw")[0] == 0
    trail.unlink()
    code, out = keytrail("event", records[2]["eventID"], "--lake", lake, "--raw")
    assert code == 0 and out == minified(records[2]) + "\n"


def test_event_raw_from_s3_checks_the_etag(moto_endpoint: str, tmp_path: Path) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    records = fresh_records(4, seed=44)
    key = trail_key("111122223333", "us-east-1", "2026-11-20", 1)
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(trail_text(records).encode()))
    lake = str(tmp_path / "lake")
    where = ("--lake", lake, "--endpoint-url", moto_endpoint)
    assert keytrail("ingest", "cloudtrail", f"s3://{BUCKET}", *where)[0] == 0
    code, out = keytrail("event", records[2]["eventID"], *where, "--raw")
    assert code == 0, out
    assert out == minified(records[2]) + "\n"
    # The object is overwritten with other content under the same key.
    forged = [records[0], records[1], {**records[2], "eventName": "ScheduleKeyDeletion"}, records[3]]
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(trail_text(forged).encode()))
    code, out = keytrail("event", records[2]["eventID"], *where, "--raw")
    assert code == 1 and f"Error: s3://{BUCKET}/{key} changed since it was ingested: ETag " in out
    s3.delete_object(Bucket=BUCKET, Key=key)
    code, out = keytrail("event", records[2]["eventID"], *where, "--raw")
    assert code == 1 and f"Error: s3://{BUCKET}/{key} is gone from S3" in out


def test_an_unknown_event_id_is_an_error_naming_the_lake(tmp_path: Path) -> None:
    write_trail(tmp_path / "src" / "a.json.gz", fresh_records(2, seed=45))
    lake = str(tmp_path / "lake")
    assert keytrail("ingest", "cloudtrail", str(tmp_path / "src"), "--lake", lake)[0] == 0
    code, out = keytrail("event", "no-such-id", "--lake", lake)
    assert code == 1 and f"no KMS event no-such-id in {lake}" in out
