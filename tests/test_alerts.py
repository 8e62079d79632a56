"""Alert sinks: a JSON-lines file, a webhook (a real local HTTP server) and SNS (moto); never twice per sink."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from analytics.anomalies import finding_id
from ingest.aws import make_client
from ingest.lake.state import IngestState
from keytrail.jobs.alerts import SENT, JsonlSink, SnsSink, WebhookSink, alert_key, legacy_alert_key, send_alerts

T0 = dt.datetime(2026, 11, 29, 3, tzinfo=dt.UTC)


def finding(detector: str = "volume_spike", severity: str = "high", tenant: str = "acme", hour: int = 0) -> dict:
    return {
        "detector": detector,
        "severity": severity,
        "tenant_id": tenant,
        "key": "arn:aws:kms:us-east-1:111122223333:key/k1",
        "principal": "arn:aws:iam::444455556666:role/acme-app",
        "window_start": T0 + dt.timedelta(hours=hour),
        "window_end": T0 + dt.timedelta(hours=hour + 1),
        "observed": 900.0,
        "expected": 40.0,
        "score": 12.5,
        "explanation": "900 Decrypt calls in the hour, usually 40",
        "evidence": ["e1", "e2"],
    }


@pytest.fixture
def state(tmp_path: Path) -> Iterator[IngestState]:
    s = IngestState(tmp_path / "state" / "ingest.sqlite")
    yield s
    s.close()


class Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append({"headers": dict(self.headers), "body": json.loads(body)})
        self.send_response(Receiver.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Receiver.received, Receiver.status = [], 200
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_jsonl_gets_each_finding_once_at_or_above_its_severity(state: IngestState, tmp_path: Path) -> None:
    sink = JsonlSink("file", tmp_path / "alerts.jsonl", min_severity="medium")
    found = [finding(), finding(severity="low", hour=1), finding("first_seen", "critical", hour=2)]
    [report] = send_alerts(state, [sink], found, "run-1")
    assert (report.sent, report.already_sent, report.error) == (2, 0, None)
    again = send_alerts(state, [sink], [*found, finding(hour=5)], "run-2")[0]
    assert (again.sent, again.already_sent) == (1, 2)
    lines = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [(a["detector"], a["run_id"]) for a in lines] == [
        ("volume_spike", "run-1"),
        ("first_seen", "run-1"),
        ("volume_spike", "run-2"),
    ]
    assert lines[0]["window_start"] == "2026-11-29T03:00:00+00:00" and lines[0]["evidence"] == ["e1", "e2"]
    assert lines[0]["alert_key"] == alert_key(finding())


def test_webhook_posts_json_and_a_failed_post_is_retried_next_run(state: IngestState, webhook: str) -> None:
    sink = WebhookSink("hook", webhook, {"Authorization": "Bearer t0k3n"}, timeout=5)
    Receiver.status = 503
    [failed] = send_alerts(state, [sink], [finding()], "run-1")
    assert failed.sent == 0 and "answered HTTP 503" in str(failed.error)
    Receiver.status = 200
    [ok] = send_alerts(state, [sink], [finding(), finding(hour=1)], "run-2")
    assert (ok.sent, ok.error) == (2, None)
    assert send_alerts(state, [sink], [finding(), finding(hour=1)], "run-3")[0].sent == 0
    last = Receiver.received[-1]
    assert last["headers"]["Authorization"] == "Bearer t0k3n"
    assert last["headers"]["Content-Type"] == "application/json"
    assert last["body"]["count"] == 2 and {a["run_id"] for a in last["body"]["alerts"]} == {"run-2"}
    assert len(Receiver.received) == 2


def test_unreachable_webhook_is_an_error_not_a_crash(state: IngestState) -> None:
    sink = WebhookSink("hook", "http://127.0.0.1:9/nothing", {}, timeout=2)
    [report] = send_alerts(state, [sink], [finding()], "run-1")
    assert "unreachable" in str(report.error)


def test_sns_publishes_one_message_per_finding(state: IngestState, moto_endpoint: str) -> None:
    sns = make_client("sns", endpoint_url=moto_endpoint)
    sqs = make_client("sqs", endpoint_url=moto_endpoint)
    topic = sns.create_topic(Name="keytrail-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    sink = SnsSink("sns", topic, sns)
    found = [finding(), finding("hsm_key_destroyed", "critical", tenant="globex")]
    assert send_alerts(state, [sink], found, "run-1")[0].sent == 2
    assert send_alerts(state, [sink], found, "run-2")[0].sent == 0
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    bodies = [json.loads(m["Body"]) for m in messages]
    assert sorted(b["Subject"] for b in bodies) == [
        "keytrail critical: hsm_key_destroyed (globex)",
        "keytrail high: volume_spike (acme)",
    ]
    assert {json.loads(b["Message"])["detector"] for b in bodies} == {"volume_spike", "hsm_key_destroyed"}


def test_sns_missing_topic_is_reported(state: IngestState, moto_endpoint: str, tmp_path: Path) -> None:
    sns = make_client("sns", endpoint_url=moto_endpoint)
    sink = SnsSink("sns", "arn:aws:sns:us-east-1:123456789012:nope", sns)
    [report] = send_alerts(state, [sink], [finding()], "run-1")
    assert "grant sns:Publish" in str(report.error)
    assert send_alerts(state, [JsonlSink("f", tmp_path / "a.jsonl")], [finding()], "run-1")[0].sent == 1


def test_a_triaged_finding_is_never_alerted(state: IngestState, tmp_path: Path) -> None:
    sink = JsonlSink("file", tmp_path / "alerts.jsonl", "low")
    statuses = ["open", "acknowledged", "resolved", "false_positive"]
    findings = [finding(hour=h) | {"status": s} for h, s in enumerate(statuses)] + [finding(hour=9)]  # 9: no status
    [report] = send_alerts(state, [sink], findings, "run-1")
    sent = [json.loads(line) for line in sink.path.read_text().splitlines()]
    expected = {f["window_start"].isoformat() for f in (findings[0], findings[-1])}
    assert report.sent == 2 and {a["window_start"] for a in sent} == expected


def test_the_alert_key_is_the_finding_id_and_old_keys_still_count(state: IngestState, tmp_path: Path) -> None:
    sink = JsonlSink("file", tmp_path / "alerts.jsonl", "low")
    old, new = finding(hour=0), finding(hour=1)
    state.db.executescript(SENT)
    state.db.execute("INSERT INTO alerts_sent VALUES ('file', ?, '', '', '', '', 'old', '')", (legacy_alert_key(old),))
    state.db.commit()
    [report] = send_alerts(state, [sink], [old, new], "run-2")
    [sent] = [json.loads(line) for line in sink.path.read_text().splitlines()]
    assert (report.sent, report.already_sent) == (1, 1), "sent before the upgrade: not sent again"
    assert sent["alert_key"] == finding_id(new) == alert_key(new)
