"""Alerts: new anomalies at or above a severity, sent through pluggable sinks, each at most once per sink.

A sink is anything with `name`, `min_severity` and `send(alerts)`; three ship here: a JSON-lines file, a
webhook (HTTP POST of one JSON document per run) and an SNS topic (one message per anomaly). The ingest
state remembers what each sink was sent (table `alerts_sent`, keyed by sink and alert key = the finding's
stable id, analytics/anomalies.py `finding_id`), so re-running the same night alerts nobody twice. A finding
whose latest triage status is acknowledged, resolved or false positive (analytics/triage.py) is never alerted.
A sink that fails is retried by the next run, with only what it has not received; the one window for a repeat
is a crash between a sink accepting a batch and the state recording it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from analytics.anomalies import finding_id
from analytics.triage import CLOSED
from ingest.errors import SourceError
from ingest.lake.state import IngestState, utcnow
from keytrail.jobs.config import SEVERITIES, SinkConfig

SENT = """
CREATE TABLE IF NOT EXISTS alerts_sent (
    sink TEXT NOT NULL,
    alert_key TEXT NOT NULL,
    detector TEXT, severity TEXT, tenant_id TEXT, window_start TEXT,
    run_id TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    PRIMARY KEY (sink, alert_key)
);
"""
# What alert keys were before they became the finding id: still honoured, so an upgrade re-alerts nothing.
LEGACY_KEY_FIELDS = ("detector", "tenant_id", "key", "principal", "window_start")
# SNS subjects are at most 100 ASCII characters.
SUBJECT_MAX = 100


class Sink(Protocol):
    """Where alerts go."""

    name: str
    min_severity: str

    def send(self, alerts: list[dict[str, Any]]) -> None:
        """Deliver the alerts, or raise (SourceError) so the next run retries them."""


def alert_key(anomaly: dict[str, Any]) -> str:
    """The identity of a finding across runs: its stable `finding_id`."""
    return str(anomaly.get("finding_id") or finding_id(anomaly))


def legacy_alert_key(anomaly: dict[str, Any]) -> str:
    """The alert key of keytrail versions before finding ids (detector, tenant, key, principal, window start)."""
    parts = []
    for name in LEGACY_KEY_FIELDS:
        value = anomaly.get(name)
        parts.append(value.isoformat() if isinstance(value, dt.datetime) else "" if value is None else str(value))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def alert_document(anomaly: dict[str, Any], run_id: str) -> dict[str, Any]:
    """A finding as a JSON-ready alert."""
    doc = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in anomaly.items()}
    return {"alert_key": alert_key(anomaly), "run_id": run_id, "source": "keytrail", **doc}


def at_least(severity: str | None, minimum: str) -> bool:
    return severity in SEVERITIES and SEVERITIES.index(severity) >= SEVERITIES.index(minimum)


@dataclass
class JsonlSink:
    """Appends one JSON object per alert to a file (fsynced)."""

    name: str
    path: Path
    min_severity: str = "high"

    def send(self, alerts: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.writelines(json.dumps(a, default=str, sort_keys=True) + "\n" for a in alerts)
            fh.flush()
            os.fsync(fh.fileno())


@dataclass
class WebhookSink:
    """POSTs `{"source": "keytrail", "alerts": [...]}` as JSON to a URL; any non-2xx status is a failure."""

    name: str
    url: str
    headers: dict[str, str]
    timeout: float = 10.0
    min_severity: str = "high"

    def send(self, alerts: list[dict[str, Any]]) -> None:
        body = json.dumps({"source": "keytrail", "count": len(alerts), "alerts": alerts}, default=str).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "keytrail", **self.headers}
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - configured URL
                status = response.status
        except urllib.error.HTTPError as err:
            raise SourceError(
                f"webhook {self.url} answered HTTP {err.code}: check the URL and its credentials"
            ) from err
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise SourceError(f"webhook {self.url} unreachable ({err}): check the URL and the network") from err
        if not 200 <= status < 300:
            raise SourceError(f"webhook {self.url} answered HTTP {status}")


@dataclass
class SnsSink:
    """Publishes one SNS message per alert (subject: severity, detector, tenant)."""

    name: str
    topic_arn: str
    client: Any
    min_severity: str = "high"

    def send(self, alerts: list[dict[str, Any]]) -> None:
        for alert in alerts:
            subject = f"keytrail {alert.get('severity')}: {alert.get('detector')} ({alert.get('tenant_id') or '-'})"
            try:
                self.client.publish(
                    TopicArn=self.topic_arn,
                    Subject=subject[:SUBJECT_MAX],
                    Message=json.dumps(alert, default=str, sort_keys=True),
                    MessageAttributes={"severity": {"DataType": "String", "StringValue": str(alert.get("severity"))}},
                )
            except (ClientError, BotoCoreError) as err:
                raise SourceError(
                    f"SNS publish to {self.topic_arn} failed ({err}): "
                    "grant sns:Publish on the topic and check that it exists"
                ) from err


def make_sinks(configs: Iterable[SinkConfig], client: Callable[[SinkConfig], Any]) -> list[Sink]:
    """Sinks from their configuration; `client(cfg)` makes the boto3 SNS client of an SNS sink."""
    sinks: list[Sink] = []
    for cfg in configs:
        if cfg.type == "jsonl":
            assert cfg.path is not None
            sinks.append(JsonlSink(cfg.name, cfg.path, cfg.min_severity))
        elif cfg.type == "webhook":
            assert cfg.url is not None
            sinks.append(WebhookSink(cfg.name, cfg.url, cfg.headers, cfg.timeout, cfg.min_severity))
        else:
            assert cfg.topic_arn is not None
            sinks.append(SnsSink(cfg.name, cfg.topic_arn, client(cfg), cfg.min_severity))
    return sinks


@dataclass
class SinkReport:
    """What one sink got in one run."""

    sink: str
    sent: int = 0
    already_sent: int = 0
    error: str | None = None


def send_alerts(
    state: IngestState, sinks: Sequence[Sink], anomalies: Iterable[dict[str, Any]], run_id: str
) -> list[SinkReport]:
    """Send each sink the open anomalies at or above its severity that it never received; remember them. A
    finding triaged acknowledged, resolved or false positive (its `status`) is never sent."""
    state.db.executescript(SENT)
    findings = [a for a in anomalies if a.get("status") not in CLOSED]
    reports = []
    for sink in sinks:
        report = SinkReport(sink.name)
        eligible = {alert_key(a): a for a in findings if at_least(a.get("severity"), sink.min_severity)}
        legacy = {k: legacy_alert_key(a) for k, a in eligible.items()}
        done = _already_sent(state, sink.name, [*eligible, *legacy.values()])
        sent = {k for k in eligible if k in done or legacy[k] in done}
        report.already_sent = len(sent)
        fresh = [alert_document(a, run_id) for k, a in eligible.items() if k not in sent]
        if fresh:
            try:
                sink.send(fresh)
            except SourceError as err:
                report.error = str(err)
            else:
                _remember(state, sink.name, fresh, run_id)
                report.sent = len(fresh)
        reports.append(report)
    return reports


def _already_sent(state: IngestState, sink: str, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    rows = state.db.execute(
        "SELECT alert_key FROM alerts_sent WHERE sink = ? AND alert_key IN (SELECT value FROM json_each(?))",
        (sink, json.dumps(keys)),
    )
    return {r[0] for r in rows}


def _remember(state: IngestState, sink: str, alerts: list[dict[str, Any]], run_id: str) -> None:
    now = utcnow()
    rows = [
        (
            sink,
            a["alert_key"],
            a.get("detector"),
            a.get("severity"),
            a.get("tenant_id"),
            a.get("window_start"),
            run_id,
            now,
        )
        for a in alerts
    ]
    with state.db:
        state.db.execute("BEGIN")
        state.db.executemany("INSERT OR IGNORE INTO alerts_sent VALUES (?,?,?,?,?,?,?,?)", rows)
