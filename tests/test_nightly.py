"""`keytrail nightly` end to end over a moto server: S3 trail bucket and CloudWatch log groups, new files and
events arriving between runs, alerts once, the lake equal to a from-scratch ingest; per-source failures."""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber
from click.testing import CliRunner

import keytrail.jobs.nightly as nightly_module
from ingest.aws import make_client
from ingest.lake.state import RunLock
from ingest.lake.store import Lake
from keytrail.cli import cli
from keytrail.jobs.alerts import legacy_alert_key
from keytrail.jobs.config import AwsAccess, load_config
from keytrail.jobs.nightly import default_clients, read_runs, run_nightly
from tests.conftest import SAMPLE_LOGS
from tests.test_cloudhsm import entry
from tests.trailfiles import fresh_records, trail_key, trail_text

BUCKET = "org-trail"
CLUSTER = "cluster-nightly01"
GROUP = f"/aws/cloudhsm/{CLUSTER}"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAYS = [(NOW - dt.timedelta(days=n)).date().isoformat() for n in (2, 1)]
# The first night's CloudHSM entries, early on the trail's last day whatever the hour the tests run ("30 hours
# ago" at 01:00 UTC was the day before, which left that last day without CloudHSM events: an incomplete stream).
FIRST_HSM = dt.datetime.fromisoformat(DAYS[1]).replace(hour=1, tzinfo=dt.UTC)


def config_text(lake: Path | str, endpoint: str, alerts: Path, extra: str = "", state_dir: Path | None = None) -> str:
    state = f'state_dir = "{state_dir}"\n' if state_dir else ""
    return f"""
tenants = "{SAMPLE_LOGS / "tenants.toml"}"

[lake]
path = "{lake}"
{state}endpoint_url = "{endpoint}"

[aws]
region = "us-east-1"
endpoint_url = "{endpoint}"

[[cloudtrail]]
name = "org-trail"
bucket = "s3://{BUCKET}/trails"

[[cloudhsm]]
name = "hsm-prod"
log_groups = ["{GROUP}"]

[alerts]
min_severity = "info"

[[alerts.sinks]]
type = "jsonl"
path = "{alerts}"
{extra}
"""


def write_config(tmp: Path, name: str, endpoint: str, lake: Path | str | None = None, **kw: Any) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(config_text(lake or tmp / f"{name}-lake", endpoint, tmp / f"{name}-alerts.jsonl", **kw))
    return path


def put_trail(s3: Any, n: int, day: str, count: int = 20, repeat_from: int | None = None) -> list[str]:
    recs = fresh_records(count, seed=1000 + n, day=day)
    if repeat_from is not None:  # CloudTrail can deliver an event id twice
        recs[:3] = fresh_records(3, seed=1000 + repeat_from, day=day)
    key = "trails/" + trail_key("111122223333", "us-east-1", day, n)
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(trail_text(recs).encode()))
    return [r["eventID"] for r in recs]


def put_hsm(logs: Any, stream: str, first_seq: int, count: int, start: dt.datetime, destroy: bool = False) -> None:
    events = []
    for i in range(count):
        when = start + dt.timedelta(seconds=i)
        opcode = "CN_DESTROY_OBJECT" if destroy and i == count - 1 else "CN_GENERATE_KEY"
        message = (
            entry(first_seq + i, when, "CN_LOGIN", "0xc008002", user="app1")
            if first_seq + i == 0
            else entry(first_seq + i, when, opcode)
        )
        events.append({"timestamp": int(when.timestamp() * 1000), "message": message})
    logs.put_log_events(logGroupName=GROUP, logStreamName=stream, logEvents=events)


@pytest.fixture
def aws(moto_endpoint: str) -> dict[str, Any]:
    s3 = make_client("s3", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket=BUCKET)
    logs = make_client("logs", endpoint_url=moto_endpoint)
    logs.create_log_group(logGroupName=GROUP)
    for stream in ("hsm-one", "hsm-two"):
        logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    return {"s3": s3, "logs": logs, "endpoint": moto_endpoint}


def first_night(aws: dict[str, Any]) -> None:
    put_trail(aws["s3"], 1, DAYS[0])
    put_trail(aws["s3"], 2, DAYS[0], repeat_from=1)
    put_trail(aws["s3"], 3, DAYS[1])
    put_hsm(aws["logs"], "hsm-one", 0, 6, FIRST_HSM)
    put_hsm(aws["logs"], "hsm-two", 10, 4, FIRST_HSM + dt.timedelta(hours=1))


def second_night(aws: dict[str, Any]) -> None:
    put_trail(aws["s3"], 4, DAYS[1], repeat_from=3)
    put_trail(aws["s3"], 5, DAYS[0])  # delivered late: an older event day
    put_hsm(aws["logs"], "hsm-one", 6, 5, NOW - dt.timedelta(hours=2), destroy=True)


def nightly(config: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["nightly", "--config", str(config), *args])


def table_rows(lake: str | Path, table: str, order: str = "event_id, event_time") -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    target = Lake(lake)
    con.register("t", target.dataset(target.files(table)))
    rows = con.sql(f"SELECT * FROM t ORDER BY {order}").fetchall()
    con.close()
    return rows


def alerts(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def sns_inbox(aws: dict[str, Any]) -> tuple[str, Any]:
    """An SNS topic with an SQS queue subscribed (to read what was published); returns (topic, reader)."""
    sns, sqs = make_client("sns", endpoint_url=aws["endpoint"]), make_client("sqs", endpoint_url=aws["endpoint"])
    topic = sns.create_topic(Name="keytrail-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)

    def read() -> list[dict[str, Any]]:
        got = []
        while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            got += [json.loads(json.loads(m["Body"])["Message"]) for m in batch]
            sqs.delete_message_batch(
                QueueUrl=queue,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )
        return got

    return topic, read


def test_two_nights_ingest_only_new_equal_a_clean_ingest_and_alert_once(aws: dict[str, Any], tmp_path: Path) -> None:
    topic, sns_messages = sns_inbox(aws)
    cfg = write_config(
        tmp_path, "night", aws["endpoint"], extra=f'[[alerts.sinks]]\ntype = "sns"\ntopic_arn = "{topic}"\n'
    )
    first_night(aws)
    one = nightly(cfg)
    assert one.exit_code == 0, one.output + one.stderr
    runs = read_runs(Lake(tmp_path / "night-lake"))
    assert runs[0]["status"] == "ok"
    trail, hsm = runs[0]["sources"]
    assert (trail["counts"]["files_new"], trail["counts"]["kept"], trail["counts"]["duplicates"]) == (3, 57, 3)
    assert hsm["counts"]["kept"] == 10
    first_alerts = alerts(tmp_path / "night-alerts.jsonl")

    second_night(aws)
    two = nightly(cfg)
    assert two.exit_code == 0, two.output + two.stderr
    trail, hsm = read_runs(Lake(tmp_path / "night-lake"))[0]["sources"]
    assert (trail["counts"]["files_new"], trail["counts"]["files_seen"]) == (2, 5)
    assert (trail["counts"]["kept"], trail["counts"]["duplicates"]) == (37, 3)
    assert (hsm["counts"]["entries"], hsm["counts"]["kept"]) == (5, 5)

    again = nightly(cfg)  # the same night once more: nothing new, nobody alerted twice
    assert again.exit_code == 0
    assert read_runs(Lake(tmp_path / "night-lake"))[0]["sources"][0]["counts"]["files_new"] == 0

    clean = write_config(tmp_path, "clean", aws["endpoint"])
    assert nightly(clean).exit_code == 0
    for table in ("kms_events", "hsm_events"):
        assert table_rows(tmp_path / "night-lake", table) == table_rows(tmp_path / "clean-lake", table)
        # compacted: one file per day partition
        parts = Lake(tmp_path / "night-lake").partitions(table)
        assert parts and all(len(files) == 1 for files in parts.values())

    sent = alerts(tmp_path / "night-alerts.jsonl")
    keys = [a["alert_key"] for a in sent]
    assert len(keys) == len(set(keys)) and len(sent) >= len(first_alerts)
    assert any(a["detector"] == "hsm_key_destroyed" for a in sent)
    # The clean run alerts what the nights alerted, compared on (detector, tenant, key, principal, window start):
    # trail 5's events arrived late, older than the second night's lookback, so their own findings (same fields,
    # other events: a finding id of their own) are found by the clean run only.
    clean = {legacy_alert_key(a) for a in alerts(tmp_path / "clean-alerts.jsonl")}
    assert clean <= {legacy_alert_key(a) for a in sent}
    published = sns_messages()
    assert sorted(a["alert_key"] for a in published) == sorted(keys)  # SNS: the same alerts, once each


def test_dry_run_lists_and_writes_nothing(aws: dict[str, Any], tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "dry", aws["endpoint"])
    first_night(aws)
    result = nightly(cfg, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "org-trail: would fetch 3 new of 3 trail files" in result.output
    assert "hsm-prod: would read CloudHSM log streams" in result.output
    assert len(result.output.splitlines()) == 3, "a summary: the lake and a line per source"
    verbose = nightly(cfg, "--dry-run", "-v")
    assert f"{GROUP}/hsm-one from" in verbose.output and verbose.output.count(".json.gz") == 3
    assert not (tmp_path / "dry-lake").exists()


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_missing_tenants_file_stops_before_anything_is_fetched(
    aws: dict[str, Any], tmp_path: Path, dry_run: bool
) -> None:
    cfg = write_config(tmp_path, "typo", aws["endpoint"])
    cfg.write_text(cfg.read_text().replace("tenants.toml", "tenant.toml"))
    result = nightly(cfg, *(["--dry-run"] if dry_run else []))
    assert result.exit_code == 2
    assert f"{cfg}: tenants = {SAMPLE_LOGS / 'tenant.toml'} cannot be read (No such file or directory)" in result.output
    assert "--tenants" not in result.output, "nightly has no --tenants option to advise"
    assert not (tmp_path / "typo-lake").exists(), "nothing was ingested"


class FlakyClients:
    """boto3 clients from the default factory whose chosen calls get the answer AWS gives when it refuses them,
    at the HTTP layer, so botocore retries what it retries (throttling) exactly as against AWS."""

    def __init__(self, failures: dict[tuple[str, str], tuple[str, int]]) -> None:
        self.failures = dict(failures)  # (service, operation) -> (error code, times; -1 = always)

    def __call__(self, service: str, access: AwsAccess) -> Any:
        client = default_clients(service, access)
        for (svc, operation), (code, _) in self.failures.items():
            if svc == service:
                answer = functools.partial(self._answer, (svc, operation), code)
                client.meta.events.register(
                    f"before-send.{client.meta.service_model.endpoint_prefix}.{operation}", answer
                )
        return client

    def _answer(self, key: tuple[str, str], code: str, request: Any, **kwargs: Any) -> AWSResponse | None:
        _, times = self.failures[key]
        if not times:
            return None
        self.failures[key] = (code, times - 1)
        if key[0] == "s3":
            body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
            return AWSResponse(request.url, 403, {"Content-Type": "application/xml"}, Raw(body))
        body = json.dumps({"__type": code, "message": "injected"}).encode()
        return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, Raw(body))


class Raw:
    """The raw body of an injected HTTP answer, as botocore reads it."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self.body

    def read(self, *args: Any) -> bytes:
        return self.body


def test_one_source_denied_the_others_still_land(aws: dict[str, Any], tmp_path: Path) -> None:
    first_night(aws)
    cfg = load_config(write_config(tmp_path, "denied", aws["endpoint"]))
    clients = FlakyClients({("s3", "ListObjectsV2"): ("AccessDenied", -1)})
    result = run_nightly(cfg, clients)
    assert result.exit_code == 1 and result.failed_sources == ["org-trail"]
    trail, hsm = result.sources
    assert "access denied by AWS on ListObjectsV2" in str(trail.error) and "s3:ListBucket" in str(trail.error)
    assert hsm.status == "ok" and hsm.counts["kept"] == 10
    record = read_runs(Lake(tmp_path / "denied-lake"))[0]
    assert record["status"] == "failed" and record["errors"][0]["step"] == "source:org-trail"
    assert (record["sources_ok"], record["sources_failed"], record["failed_sources"]) == (1, 1, "org-trail")
    assert record["events_kept"] == 10 and record["error_count"] == 1


def test_throttled_cloudwatch_is_retried_and_a_deleted_log_group_fails_alone(
    aws: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_night(aws)
    cfg = load_config(write_config(tmp_path, "throttled", aws["endpoint"]))
    result = run_nightly(cfg, FlakyClients({("logs", "FilterLogEvents"): ("ThrottlingException", 2)}))
    assert result.exit_code == 0, result.errors
    assert result.sources[1].counts["kept"] == 10

    with monkeypatch.context() as patch:  # throttled past every retry: that source fails, the other lands
        patch.setattr("botocore.endpoint.time.sleep", lambda seconds: None)
        put_hsm(aws["logs"], "hsm-two", 14, 2, NOW - dt.timedelta(hours=3))
        put_trail(aws["s3"], 9, DAYS[1])
        stuck = run_nightly(cfg, FlakyClients({("logs", "FilterLogEvents"): ("ThrottlingException", -1)}))
    assert stuck.failed_sources == ["hsm-prod"] and "AWS throttled FilterLogEvents" in str(stuck.sources[1].error)
    assert stuck.sources[0].counts["kept"] == 20

    aws["logs"].delete_log_group(logGroupName=GROUP)
    second = run_nightly(cfg)
    assert second.failed_sources == ["hsm-prod"] and "does not exist" in str(second.sources[1].error)
    assert second.sources[0].status == "ok"


def test_cli_exit_codes_and_json_logs(aws: dict[str, Any], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[lake]\npath = "x"\n[[cloudtrail]]\nname = "t"\nbucket = "org-trail"\n')
    result = nightly(bad)
    assert result.exit_code == 2
    assert "[cloudtrail #1] key 'bucket' is 'org-trail', not an S3 URI; write it as s3://bucket/prefix" in result.stderr

    first_night(aws)
    cfg = write_config(tmp_path, "logs", aws["endpoint"])
    ok = nightly(cfg, "--log-format", "json")
    assert ok.exit_code == 0
    lines = [json.loads(line) for line in ok.stderr.splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    assert events[0] == "run_started" and events[-1] == "run_done"
    done = [line for line in lines if line["event"] == "source_done"]
    assert {d["source"] for d in done} == {"org-trail", "hsm-prod"} and all(d["status"] == "ok" for d in done)


def test_lookup_events_source_and_its_own_checkpoint(tmp_path: Path) -> None:
    recs = fresh_records(4, seed=77, day=DAYS[1])
    stubs: list[Stubber] = []

    def clients(service: str, access: AwsAccess) -> Any:
        make: Any = boto3.client
        client = make(service, region_name=access.region)
        stub = Stubber(client)
        events = [
            {"EventId": r["eventID"], "EventName": r["eventName"], "CloudTrailEvent": json.dumps(r)} for r in recs
        ]
        stub.add_response("lookup_events", {"Events": events})
        stub.activate()
        stubs.append(stub)
        return client

    config = tmp_path / "k.toml"
    config.write_text(
        '[lake]\npath = "lake"\n[anomalies]\nenabled = false\n'
        '[[lookup_events]]\nname = "legacy"\nregion = "eu-west-1"\n'
    )
    result = run_nightly(load_config(config), clients)
    assert result.exit_code == 0, result.errors
    assert result.sources[0].counts["kept"] == 4 and stubs[0].client.meta.region_name == "eu-west-1"
    rows = table_rows(tmp_path / "lake", "kms_events")
    assert {r[-3] for r in rows} == {"lookup-events:legacy"}  # source_object


def test_each_source_reads_through_its_own_role(
    aws: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_night(aws)
    role = "arn:aws:iam::444455556666:role/keytrail-reader"
    config = write_config(tmp_path, "role", aws["endpoint"])
    config.write_text(config.read_text().replace('bucket = "s3://', f'role_arn = "{role}"\nbucket = "s3://'))
    seen: list[tuple[str, str | None]] = []
    real = nightly_module.make_client

    def recording(service: str, *args: Any) -> Any:
        seen.append((service, args[-1]))
        return real(service, *args)  # assumes the role through the moto server's STS

    monkeypatch.setattr(nightly_module, "make_client", recording)
    result = run_nightly(load_config(config))
    assert result.exit_code == 0, result.errors
    assert seen == [("s3", role), ("logs", None)]


def test_a_run_while_another_holds_the_lock_exits_1(aws: dict[str, Any], tmp_path: Path) -> None:
    config = write_config(tmp_path, "locked", aws["endpoint"])
    with RunLock(tmp_path / "locked-lake" / "_state" / "ingest.lock", command="nightly"):
        result = nightly(config)
    assert result.exit_code == 1
    assert "another keytrail run is writing to this lake (pid " in result.stderr and "(nightly)" in result.stderr


def test_a_triaged_finding_is_not_alerted(aws: dict[str, Any], tmp_path: Path) -> None:
    """A sink added after every finding was reviewed gets none of them, though the next run finds them again."""
    first_night(aws)
    cfg = write_config(tmp_path, "night", aws["endpoint"])
    assert nightly(cfg).exit_code == 0
    sent = alerts(tmp_path / "night-alerts.jsonl")
    assert len(sent) >= 2
    lake = str(tmp_path / "night-lake")
    for alert, action in zip(sent, ["ack", "false-positive", *["resolve"] * len(sent)], strict=False):
        args = ["findings", action, alert["alert_key"], "--note", "reviewed", "--lake", lake, "--config", str(cfg)]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output + result.stderr

    late = tmp_path / "late.jsonl"
    sink = f'[[alerts.sinks]]\nname = "late"\ntype = "jsonl"\npath = "{late}"\n'
    cfg = write_config(tmp_path, "night", aws["endpoint"], extra=sink)
    assert nightly(cfg).exit_code == 0
    assert read_runs(Lake(lake))[0]["anomalies_found"] >= 1, "the second run found findings again"
    assert alerts(late) == [], "but they were all reviewed"
    assert alerts(tmp_path / "night-alerts.jsonl") == sent
