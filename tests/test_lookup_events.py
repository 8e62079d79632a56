"""The LookupEvents fallback, through botocore's Stubber (moto has no LookupEvents)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import boto3
import duckdb
from botocore.stub import ANY, Stubber

from ingest.cloudtrail.load import ingest_lookup_events
from ingest.lake.store import Lake
from tests.conftest import SHARED_DATA
from tests.trailfiles import fresh_records

UNTIL = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)


def plaso_events() -> list[dict]:
    """The plaso sample: LookupEvents results whose EventTime carries a local offset (EC2 events)."""
    events = []
    for line in (SHARED_DATA / "plaso_aws_cloudtrail_lookup_events.jsonl").read_text().splitlines():
        e = json.loads(line)
        e["EventTime"] = dt.datetime.fromisoformat(e["EventTime"])
        e["ReadOnly"] = str(e["ReadOnly"])
        events.append(e)
    return events


def kms_event(rec: dict) -> dict:
    return {
        "EventId": rec["eventID"],
        "EventName": rec["eventName"],
        "EventTime": dt.datetime.fromisoformat(rec["eventTime"].replace("Z", "+00:00")),
        "EventSource": "kms.amazonaws.com",
        "CloudTrailEvent": json.dumps(rec),
    }


def expected_params() -> dict:
    return {
        "LookupAttributes": [{"AttributeKey": "EventSource", "AttributeValue": "kms.amazonaws.com"}],
        "StartTime": ANY,
        "EndTime": UNTIL,
    }


def test_pages_become_the_same_rows_and_other_sources_are_skipped(lake_dir: Path) -> None:
    client = boto3.client("cloudtrail", region_name="us-east-1")
    recs = fresh_records(5)
    with Stubber(client) as stub:
        stub.add_response(
            "lookup_events", {"Events": [kms_event(r) for r in recs[:3]], "NextToken": "t1"}, expected_params()
        )
        stub.add_response(
            "lookup_events",
            {"Events": [kms_event(r) for r in recs[3:]] + plaso_events()},
            {**expected_params(), "NextToken": "t1"},
        )
        summary = ingest_lookup_events(Lake(lake_dir), client, "us-east-1", until=UNTIL, pace_seconds=0.01)
        stub.assert_no_pending_responses()
    assert summary.totals["kept"] == 5
    assert summary.totals["skipped_sources"] == {"ec2.amazonaws.com": 6}
    files = [str(f) for f in Lake(lake_dir).files("kms_events")]
    rows = duckdb.sql("SELECT event_id, key_arn, source_object FROM read_parquet($f)", params={"f": files}).fetchall()
    assert sorted(r[0] for r in rows) == sorted(r["eventID"] for r in recs)
    assert {r[2] for r in rows} == {"lookup-events:us-east-1"}


def test_second_run_resumes_from_the_checkpoint(lake_dir: Path) -> None:
    client = boto3.client("cloudtrail", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("lookup_events", {"Events": []}, expected_params())
        ingest_lookup_events(Lake(lake_dir), client, "us-east-1", until=UNTIL, pace_seconds=0)
        later = UNTIL + dt.timedelta(hours=6)
        stub.add_response(
            "lookup_events",
            {"Events": []},
            {**expected_params(), "StartTime": UNTIL - dt.timedelta(minutes=15), "EndTime": later},
        )
        ingest_lookup_events(Lake(lake_dir), client, "us-east-1", until=later, pace_seconds=0)
        stub.assert_no_pending_responses()
