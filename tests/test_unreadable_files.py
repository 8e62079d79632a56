"""One trail file that cannot be read never blocks its source: it is quarantined with the error and what to grant,
remembered in the ingest state, the rest lands, the run exits 3, and the next run tries it again; `verify cloudtrail`
gives it its own verdict and checks the rest."""

from __future__ import annotations

import gzip
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pytest
from click.testing import CliRunner

import keytrail.commands.verify_cloudtrail as command
from ingest.aws import make_client
from keytrail.cli import cli
from tests.digestfiles import KeyService, build_trail, rsa_key
from tests.trailfiles import fresh_records, trail_key, trail_text, write_trail

EXIT_QUARANTINED = 3
# Root reads a file whatever its mode: the run drops the two capabilities that let it, so that a chmod 000 file
# refuses it with a real PermissionError, as it refuses any other user.
WITHOUT_ROOT_OVERRIDES = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def ingest(source: Path, lake: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "keytrail", "ingest", "cloudtrail", str(source), "--lake", str(lake)]
    prefix = WITHOUT_ROOT_OVERRIDES if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120, check=False)


def event_ids(lake: Path) -> set[str]:
    rows = duckdb.sql(f"SELECT event_id FROM read_parquet('{lake}/kms_events/*/*.parquet')").fetchall()
    return {r[0] for r in rows}


def quarantine(lake: Path) -> list[tuple[str, str]]:
    return duckdb.sql(f"SELECT source_object, reason FROM read_parquet('{lake}/_quarantine/*.parquet')").fetchall()


def unreadable(lake: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(lake / "_state" / "ingest.sqlite") as db:
        return db.execute("SELECT object_key, attempts FROM unreadable_objects").fetchall()


def test_an_unreadable_local_file_is_set_apart_and_retried(tmp_path: Path) -> None:
    source, lake = tmp_path / "trail", tmp_path / "lake"
    records = [fresh_records(5, seed=n) for n in range(3)]
    paths = [write_trail(source / f"f{n}.json.gz", recs) for n, recs in enumerate(records)]
    locked = paths[1]
    locked.chmod(0)
    readable_ids = {r["eventID"] for recs in (records[0], records[2]) for r in recs}

    first = ingest(source, lake)
    assert first.returncode == EXIT_QUARANTINED, first.stderr
    assert "Traceback" not in first.stderr
    assert "1 files could not be read (the quarantine says why and what to grant)" in first.stdout
    assert event_ids(lake) == readable_ids
    ((where, reason),) = quarantine(lake)
    assert where == str(locked)
    assert "cannot read the file: Permission denied (PermissionError, errno 13)" in reason
    assert "give the user keytrail runs as read permission on it" in reason
    assert unreadable(lake) == [(str(locked), 1)]

    second = ingest(source, lake)  # still locked: tried again, nothing added twice
    assert second.returncode == EXIT_QUARANTINED
    assert event_ids(lake) == readable_ids and len(quarantine(lake)) == 1
    assert unreadable(lake) == [(str(locked), 2)]

    locked.chmod(0o644)
    third = ingest(source, lake)
    assert third.returncode == 0, third.stdout + third.stderr
    assert event_ids(lake) == {r["eventID"] for recs in records for r in recs}
    assert unreadable(lake) == []


def test_an_archived_s3_object_is_set_apart_and_retried_once_restored(moto_endpoint: str, tmp_path: Path) -> None:
    s3: Any = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="trail")
    records = [fresh_records(4, seed=20 + n) for n in range(3)]
    keys = [trail_key("111122223333", "us-east-1", "2026-11-20", n) for n in range(3)]
    for n, (key, recs) in enumerate(zip(keys, records, strict=True)):
        # A lifecycle rule moved one file to Glacier: GetObject refuses it with InvalidObjectState.
        storage = {"StorageClass": "GLACIER"} if n == 1 else {}
        s3.put_object(Bucket="trail", Key=key, Body=gzip.compress(trail_text(recs).encode()), **storage)
    lake = tmp_path / "lake"
    args = ["ingest", "cloudtrail", "s3://trail", "--lake", str(lake), "--endpoint-url", moto_endpoint]

    first = CliRunner().invoke(cli, args)
    assert first.exit_code == EXIT_QUARANTINED, first.output
    assert event_ids(lake) == {r["eventID"] for recs in (records[0], records[2]) for r in recs}
    ((where, reason),) = quarantine(lake)
    assert where == f"s3://trail/{keys[1]}"
    assert "is archived (InvalidObjectState on GetObject): restore it from its Glacier storage class" in reason
    assert unreadable(lake) == [(where, 1)]

    s3.restore_object(Bucket="trail", Key=keys[1], RestoreRequest={"Days": 1})
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert event_ids(lake) == {r["eventID"] for recs in records for r in recs}
    assert unreadable(lake) == []


def keytrail_verify(source: Path, lake: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "keytrail", "verify", "cloudtrail", str(source), "--lake", str(lake)]
    prefix = WITHOUT_ROOT_OVERRIDES if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120, check=False)


def verdicts(lake: Path) -> dict[str, tuple[str, str]]:
    rows = duckdb.sql(f"SELECT object_key, status, detail FROM read_parquet('{lake}/trail_verification/*.parquet')")
    return {key: (status, detail) for key, status, detail in rows.fetchall()}


def test_verify_gives_an_unreadable_log_file_its_verdict_and_checks_the_rest(tmp_path: Path) -> None:
    trail = build_trail(hours=2)
    trail.copy_to(tmp_path / "copy")
    locked = tmp_path / "copy" / trail.hours[0].logs[0]
    locked.chmod(0)
    result = keytrail_verify(tmp_path / "copy", tmp_path / "lake")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "4 log files listed (3 valid); 1 log_file_unreadable." in result.stdout
    found = verdicts(tmp_path / "lake")
    status, detail = found.pop(str(locked))
    assert status == "log_file_unreadable"
    assert detail.startswith("cannot read the file: Permission denied (PermissionError, errno 13): give the user")
    assert {s for s, _ in found.values()} == {"valid", "signature_unchecked"}


def test_verify_gives_an_archived_s3_log_file_its_verdict(moto_endpoint: str, tmp_path: Path) -> None:
    s3: Any = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    trail = build_trail(hours=2)
    trail.upload(s3)
    archived = trail.hours[1].logs[0]
    s3.copy_object(Bucket=trail.bucket, Key=archived, CopySource={"Bucket": trail.bucket, "Key": archived},
                   StorageClass="GLACIER")  # fmt: skip
    args = ["verify", "cloudtrail", f"s3://{trail.bucket}", "--lake", str(tmp_path / "lake")]
    keys = KeyService()
    keys.publish("us-east-1", (rsa_key(0), "pkcs1"))

    def clients(service: str, region: str | None, endpoint: str | None, profile: str | None) -> Any:
        return keys.client(region or "") if service == "cloudtrail" else make_client(service, region, endpoint, profile)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(command, "make_client", clients)
        result = CliRunner().invoke(cli, [*args, "--endpoint-url", moto_endpoint])
    assert result.exit_code == 1, result.output
    status, detail = verdicts(tmp_path / "lake")[f"s3://{trail.bucket}/{archived}"]
    assert status == "log_file_unreadable" and "is archived (InvalidObjectState on GetObject)" in detail
