"""Trail files in S3, through boto3 talking HTTP to a moto server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import boto3
import duckdb
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

import ingest.cloudtrail.sources as trail_sources
from ingest.cloudtrail.sources import S3Trail, TrailFilter
from ingest.errors import SourceError
from ingest.lake.store import Lake
from keytrail.cli import cli
from tests.trailfiles import fresh_records, trail_key, trail_text

BUCKET = "org-trail-bucket"


@pytest.fixture
def bucket(moto_endpoint: str) -> dict[str, list[str]]:
    """A trail bucket: an account trail and an organization trail, two regions, several days."""
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    layout = [
        ("111122223333", "us-east-1", "2026-11-18", None),
        ("111122223333", "us-east-1", "2026-11-20", None),
        ("111122223333", "eu-west-1", "2026-11-20", None),
        ("444455556666", "us-east-1", "2026-11-20", "o-a1b2c3d4e5"),
        ("444455556666", "us-east-1", "2026-11-21", "o-a1b2c3d4e5"),
    ]
    ids: dict[str, list[str]] = {}
    for n, (account, region, day, org) in enumerate(layout):
        for part in range(3):
            recs = fresh_records(4, seed=n * 10 + part, day=day)
            key = "trails/" + trail_key(account, region, day, n * 10 + part, org)
            s3.put_object(Bucket=BUCKET, Key=key, Body=__import__("gzip").compress(trail_text(recs).encode()))
            ids.setdefault(f"{account}/{region}/{day}", []).extend(r["eventID"] for r in recs)
    s3.put_object(
        Bucket=BUCKET, Key="trails/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/20/d.json.gz", Body=b"{}"
    )
    return ids


def run(endpoint: str, lake: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["ingest", "cloudtrail", f"s3://{BUCKET}/trails", "--lake", str(lake), "--endpoint-url", endpoint, *args]
    )
    return result.exit_code, result.output


def lake_ids(lake: Path) -> set[str]:
    files = [str(f) for f in Lake(lake).files("kms_events")]
    return (
        {r[0] for r in duckdb.sql("SELECT event_id FROM read_parquet($f)", params={"f": files}).fetchall()}
        if files
        else set()
    )


def test_whole_bucket_over_many_pages_then_nothing_new(
    moto_endpoint: str, bucket: dict[str, list[str]], lake_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trail_sources, "PAGE_SIZE", 2)  # 15 trail files: listing takes 8 pages
    code, out = run(moto_endpoint, lake_dir)
    assert code == 0, out
    assert "Ingested 15 new of 15 files" in out
    assert lake_ids(lake_dir) == {i for ids in bucket.values() for i in ids}
    code, out = run(moto_endpoint, lake_dir)
    assert code == 0 and "Ingested 0 new of 15 files" in out


def test_filters_prune_account_region_and_dates(
    moto_endpoint: str, bucket: dict[str, list[str]], lake_dir: Path
) -> None:
    code, out = run(
        moto_endpoint, lake_dir, "--account", "444455556666", "--since", "2026-11-21", "--until", "2026-11-21"
    )
    assert code == 0, out
    assert lake_ids(lake_dir) == set(bucket["444455556666/us-east-1/2026-11-21"])
    code, out = run(moto_endpoint, lake_dir, "--region", "eu-west-1")
    assert lake_ids(lake_dir) >= set(bucket["111122223333/eu-west-1/2026-11-20"])
    assert not lake_ids(lake_dir) & set(bucket["111122223333/us-east-1/2026-11-18"])


def test_late_delivery_is_allowed_for(moto_endpoint: str, bucket: dict[str, list[str]], lake_dir: Path) -> None:
    # Events of 11-20 may sit in a file delivered on 11-21: --until 11-20 still lists the next days.
    code, _ = run(
        moto_endpoint, lake_dir, "--account", "444455556666", "--since", "2026-11-20", "--until", "2026-11-20"
    )
    assert code == 0
    assert set(bucket["444455556666/us-east-1/2026-11-21"]) <= lake_ids(lake_dir)


def test_delivery_days_follow_the_window() -> None:
    import datetime as dt

    # --since 2026-11-01 --until 2026-11-02: the window ends at the end of 11-02 (until is exclusive)
    flt = TrailFilter(since=dt.datetime(2026, 11, 1, tzinfo=dt.UTC), until=dt.datetime(2026, 11, 3, tzinfo=dt.UTC))
    days = flt.delivery_days(dt.date(2026, 11, 30))
    assert days is not None and (days[0], days[-1]) == (dt.date(2026, 11, 1), dt.date(2026, 11, 4))
    mid_day = TrailFilter(since=flt.since, until=dt.datetime(2026, 11, 2, 10, tzinfo=dt.UTC))
    assert mid_day.delivery_days(dt.date(2026, 11, 30)) == days


def test_missing_bucket_names_it(moto_endpoint: str, lake_dir: Path) -> None:
    result = CliRunner().invoke(
        cli, ["ingest", "cloudtrail", "s3://no-such-bucket/x", "--lake", str(lake_dir), "--endpoint-url", moto_endpoint]
    )
    assert result.exit_code == 1
    assert "s3://no-such-bucket/x does not exist (NoSuchBucket on ListObjectsV2)" in result.output


def test_access_denied_names_the_iam_action() -> None:
    # moto does not enforce IAM, so the refusal comes from botocore's Stubber on the one seam.
    client = boto3.client("s3", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("list_objects_v2", "AccessDenied", "Access Denied", 403)
        with pytest.raises(SourceError, match="grant s3:ListBucket on it to the identity keytrail runs as"):
            list(S3Trail(client, "s3://locked-bucket/trails").list_objects(TrailFilter()))
