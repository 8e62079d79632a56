"""Anomaly detectors against a real in-memory DuckDB, table-driven from tests/cases/<detector>.yaml.

Each case file names its detector and lists cases: input rows per relation (only the columns that matter; the
rest take defaults) and the expected findings (only the fields given are compared). A row may carry `repeat:`
to stand for many events — `{start, end, per_hour}` spreads `per_hour` events evenly over every UTC hour in
[start, end), optionally only the UTC `hours:` and `weekdays:` (0 = Monday) listed — so a baseline of weeks stays
a few readable lines; `sessions:` instead draws a seeded tenant that works in sessions (sample_logs/sessions.py).
In a repeated row, `{i}` in a text value is the event's number within the row (two rows with
`shared_event_id: "s-{i}"` are the two copies of the same cross-account calls).
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import yaml

from analytics import anomalies, baselines
from ingest.errors import ConfigError
from ingest.lake.schema import HSM_EVENTS, KMS_EVENTS
from sample_logs.sessions import Sessions, session_times

CASES_DIR = Path(__file__).parent / "cases"
UTC = dt.UTC

# The relations the detectors read, as the analytics views expose them (the contract in docs/anomalies.md).
CONTRACT_DDL = {
    "key_operations": """
        CREATE TABLE key_operations (
            event_time TIMESTAMPTZ, event_date DATE, source VARCHAR, event_id VARCHAR, usage_id VARCHAR,
            is_primary BOOLEAN, operation VARCHAR, operation_class VARCHAR, key VARCHAR, key_id_requested VARCHAR,
            principal VARCHAR, principal_arn VARCHAR, account VARCHAR, recipient_account VARCHAR, region VARCHAR,
            source_ip VARCHAR, user_agent VARCHAR, invoked_by VARCHAR, encryption_context MAP(VARCHAR, VARCHAR),
            custom_key_store_id VARCHAR, hsm_id VARCHAR, success BOOLEAN, error_code VARCHAR, tenant_id VARCHAR,
            attributed_by VARCHAR, context_tenant_id VARCHAR, key_tenant_id VARCHAR, principal_tenant_id VARCHAR,
            account_tenant_id VARCHAR)""",
    "tenants": """
        CREATE TABLE tenants (
            tenant_id VARCHAR, name VARCHAR, accounts VARCHAR[], principals VARCHAR[], keys VARCHAR[],
            hsm_users VARCHAR[], active_from TIMESTAMPTZ, revoked_at TIMESTAMPTZ)""",
    "access_timeline": """
        CREATE TABLE access_timeline (
            tenant_id VARCHAR, path_kind VARCHAR, path VARCHAR, detail VARCHAR, opened_at TIMESTAMPTZ,
            opened_by VARCHAR, closed_at TIMESTAMPTZ, closed_by VARCHAR, is_open BOOLEAN, evidence VARCHAR[])""",
    "hsm_sequence_gaps": """
        CREATE TABLE hsm_sequence_gaps (
            hsm_id VARCHAR, reboot_counter BIGINT, kind VARCHAR, missing BIGINT, after_seq BIGINT,
            before_seq BIGINT, after_time TIMESTAMPTZ, before_time TIMESTAMPTZ)""",
}
ROW_DEFAULTS: dict[str, dict[str, Any]] = {
    "key_operations": {
        "source": "cloudtrail",
        "is_primary": True,
        "operation": "Decrypt",
        "operation_class": "crypto",
        "success": True,
        "region": "us-east-1",
    },
    "kms_events": {"event_name": "Decrypt", "success": True, "source_object": "test", "record_index": 0, "raw": "{}"},
    "hsm_events": {"success": True, "source_object": "test", "raw": ""},
    "tenants": {"accounts": [], "principals": [], "keys": [], "hsm_users": []},
}


def create_relations(con: duckdb.DuckDBPyConnection) -> None:
    """Empty tables with the columns of every relation the detectors read."""
    for ddl in CONTRACT_DDL.values():
        con.execute(ddl)
    for name, schema in (("kms_events", KMS_EVENTS), ("hsm_events", HSM_EVENTS)):
        empty = schema.empty_table()  # noqa: F841 - read by DuckDB's replacement scan
        con.execute(f"CREATE TABLE {name} AS SELECT *, NULL::DATE AS event_date FROM empty")


def _utc(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in "T ":
        return _utc(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
    return value


def expand_rows(table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Apply defaults, expand `repeat:` rows into events, number event ids."""
    counter = itertools.count(1)
    out = []
    for row in rows:
        row = {k: _utc(v) for k, v in row.items()}
        repeat = row.pop("repeat", None) or row.pop("sessions", None)
        times = [row.get("event_time")] if repeat is None else _times(repeat)
        for i, when in enumerate(times):
            event = {**ROW_DEFAULTS.get(table, {}), **row}
            if repeat is not None:
                event = {k: v.format(i=i) if isinstance(v, str) and "{i}" in v else v for k, v in event.items()}
            if when is not None:
                event["event_time"] = when
            if table in ("key_operations", "kms_events", "hsm_events"):
                n = next(counter)
                if "event_id" not in event:
                    event["event_id"] = f"{table[:3]}-{n}"
                elif repeat is not None and "{i}" not in row["event_id"]:
                    event["event_id"] = f"{row['event_id']}-{i}"
                event.setdefault("event_date", event["event_time"].date())
            if table == "key_operations":
                event.setdefault("usage_id", event["event_id"])
            out.append(event)
    return out


def _times(repeat: dict[str, Any]) -> list[dt.datetime]:
    """The event times of a `repeat:` row, or of a `sessions:` row (sample_logs/sessions.py: a seeded tenant
    working in sessions; `seed`, `per_day`, `size`, `hours`, `weekdays`, `day_off` as in `Sessions`)."""
    start, end = _utc(repeat["start"]), _utc(repeat["end"])
    if "seed" in repeat:
        shape = {
            k: tuple(v) if isinstance(v, list) else v for k, v in repeat.items() if k not in ("start", "end", "seed")
        }
        return session_times(start, end, repeat["seed"], Sessions(**shape))
    per_hour = int(repeat["per_hour"])
    hours = int((end - start).total_seconds() // 3600)
    step = dt.timedelta(seconds=3600 / max(per_hour, 1))
    starts = [start + dt.timedelta(hours=h) for h in range(hours)]
    starts = [h for h in starts if h.hour in repeat.get("hours", range(24))]
    starts = [h for h in starts if h.weekday() in repeat.get("weekdays", range(7))]
    return [h + i * step for h in starts for i in range(per_hour)]


def load_tables(con: duckdb.DuckDBPyConnection, tables: dict[str, list[dict[str, Any]]]) -> None:
    """Insert case rows into the contract tables (columns not given stay NULL)."""
    for table, rows in tables.items():
        events = expand_rows(table, rows)
        if not events:
            continue
        schema = con.sql(f"SELECT * FROM {table} LIMIT 0").to_arrow_table().schema
        schema = pa.schema([f for f in schema if any(f.name in e for e in events)])
        for event in events:
            for name, value in event.items():
                if isinstance(value, dict):
                    event[name] = list(value.items())
        batch = pa.Table.from_pylist(events, schema=schema)  # noqa: F841 - read by DuckDB
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM batch")


# Each attribution rule's own verdict on a CloudTrail row, as analytics computes it, unless a case gives it.
RULE_VERDICTS = """
    UPDATE key_operations o SET
        principal_tenant_id = coalesce(o.principal_tenant_id, (
            SELECT min(t.tenant_id) FROM tenants t, unnest(t.principals) u(p)
            WHERE o.principal = u.p OR o.principal GLOB u.p)),
        account_tenant_id = coalesce(o.account_tenant_id, (
            SELECT min(t.tenant_id) FROM tenants t WHERE list_contains(t.accounts, o.account))),
        key_tenant_id = coalesce(o.key_tenant_id, (
            SELECT min(t.tenant_id) FROM tenants t WHERE list_contains(t.keys, o.key))),
        context_tenant_id = coalesce(o.context_tenant_id, (
            SELECT min(t.tenant_id) FROM tenants t WHERE t.tenant_id = o.encryption_context['tenant_id']))
    WHERE o.source = 'cloudtrail'
"""


def fresh_connection(tables: dict[str, list[dict[str, Any]]] | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    create_relations(con)
    load_tables(con, tables or {})
    con.execute(RULE_VERDICTS)
    return con


def load_case_files() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    cases = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        for case in spec["cases"]:
            cases.append((spec["detector"], spec.get("settings") or {}, case))
    return cases


CASES = load_case_files()


def _matches(found: dict[str, Any], want: dict[str, Any]) -> bool:
    for name, value in want.items():
        got = found.get(name)
        if name == "evidence_includes":
            if not set(value) <= set(found["evidence"]):
                return False
        elif name in ("window_start", "window_end"):
            if got != _utc(value):
                return False
        elif isinstance(value, float) or name in ("observed", "expected", "score"):
            if got is None or abs(got - value) > 1e-6 * max(1.0, abs(value)):
                return False
        elif got != value:
            return False
    return True


def _pairing(found: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> bool:
    """Whether each wanted finding matches a different finding (tried every way, not greedily: two findings of
    one case may both fit a loose expectation)."""
    if not wanted:
        return True
    return any(_matches(f, wanted[0]) and _pairing(found[:i] + found[i + 1 :], wanted[1:]) for i, f in enumerate(found))


@pytest.mark.parametrize(("detector", "settings", "case"), CASES, ids=[f"{d}: {c['name']}" for d, _, c in CASES])
def test_detector_case(detector: str, settings: dict[str, Any], case: dict[str, Any]) -> None:
    con = fresh_connection(case.get("tables"))
    found = anomalies.run_detector(con, detector, {**settings, **case.get("settings", {})}).to_pylist()
    expected = case["expect"]
    assert len(found) == len(expected), found
    assert _pairing(found, expected), f"the findings do not match {expected} one to one; found {found}"
    for f in found:
        assert f["detector"] == detector
        assert f["severity"] in anomalies.SEVERITIES
        assert f["explanation"] and f["explanation"].endswith(".")


POSITIVE = [(d, s, c) for d, s, c in CASES if c["expect"]]


@pytest.mark.parametrize(("detector", "settings", "case"), POSITIVE, ids=[f"{d}: {c['name']}" for d, _, c in POSITIVE])
def test_detector_gives_the_same_findings_on_every_run_and_thread_count(
    detector: str, settings: dict[str, Any], case: dict[str, Any]
) -> None:
    """Stable finding ids need identical findings, in the same order, however DuckDB splits the work:
    verify_parallelism makes it split even these small tables into parallel tasks."""
    con = fresh_connection(case.get("tables"))
    con.execute("PRAGMA verify_parallelism")
    results = set()
    for threads in (1, 2, 4):
        con.execute(f"SET threads = {threads}")
        for _ in range(5):
            found = anomalies.run_detector(con, detector, {**settings, **case.get("settings", {})})
            results.add(repr(found.to_pylist()))
    assert len(results) == 1, f"{len(results)} different results: {sorted(results)}"
    ids = found.column("finding_id").to_pylist()
    assert len(set(ids)) == len(ids), f"two findings share an id: {found.to_pylist()}"


@pytest.mark.parametrize("detector", anomalies.detector_names())
def test_every_detector_has_positive_and_negative_cases(detector: str) -> None:
    mine = [c for d, _, c in CASES if d == detector]
    assert any(c["expect"] for c in mine), f"{detector} has no positive case in tests/cases/{detector}.yaml"
    assert any(not c["expect"] for c in mine), f"{detector} has no negative case in tests/cases/{detector}.yaml"


@pytest.mark.parametrize("detector", anomalies.detector_names())
def test_every_detector_binds_and_is_clean_on_empty_relations(detector: str) -> None:
    found = anomalies.run_detector(fresh_connection(), detector)
    assert found.num_rows == 0
    assert found.column_names == list(anomalies.FINDING_COLUMNS)


def test_every_setting_is_used_by_some_detector() -> None:
    used = set()
    texts = [anomalies.detector_sql(name) for name in anomalies.detector_names()]
    for sql in texts + [baselines.baseline_sql(name) for name in baselines.STORED]:
        used |= set(anomalies.detector_params(sql, {**anomalies.DEFAULTS, "score_from": 0, "score_to": 0}))
    assert set(anomalies.DEFAULTS) <= used


def test_settings_reject_unknown_and_mistyped_values() -> None:
    assert anomalies.resolve_settings({"spike_min_ratio": 4})["spike_min_ratio"] == 4.0
    with pytest.raises(ConfigError, match="unknown anomalies setting 'spike_ratio'"):
        anomalies.resolve_settings({"spike_ratio": 4})
    with pytest.raises(ConfigError, match="'spike_min_volume' must be a int"):
        anomalies.resolve_settings({"spike_min_volume": "many"})
    with pytest.raises(ConfigError, match="must be a bool"):
        anomalies.resolve_settings({"destructive_include_failed": 1})


def test_unknown_detector_names_the_choices() -> None:
    with pytest.raises(anomalies.UnknownDetector, match="choose from: .*volume_spike"):
        anomalies.run_detectors(fresh_connection(), detectors=["decrypt_spike"])


def test_missing_relation_skips_the_detector() -> None:
    con = duckdb.connect()
    con.execute(CONTRACT_DDL["hsm_sequence_gaps"])
    found, skipped = anomalies.run_detectors(con, detectors=["hsm_sequence_gap", "hsm_key_destroyed"])
    assert found.num_rows == 0 and skipped == ["hsm_key_destroyed"]
    with pytest.raises(anomalies.MissingRelation, match="hsm_key_destroyed"):
        anomalies.run_detectors(con, detectors=["hsm_key_destroyed"], skip_missing=False)


REVOKED = {
    "tenants": [
        {"tenant_id": "acme", "principals": ["p1"], "revoked_at": "2026-03-10T12:00:00Z"},
        {"tenant_id": "globex"},
    ],
    "key_operations": [
        {"tenant_id": "acme", "key": "k1", "principal": "p1", "event_id": "late", "event_time": "2026-03-10T13:00:00Z"},
        {"tenant_id": "acme", "key": "k1", "principal": "p1", "event_id": "ok", "event_time": "2026-03-09T13:00:00Z"},
        {
            "tenant_id": None,
            "attributed_by": None,
            "key": "k9",
            "principal": "stranger",
            "event_id": "orphan",
            "event_time": "2026-03-09T13:00:00Z",
        },
    ],
}


def test_find_anomalies_filters_by_tenant_severity_detector_and_window() -> None:
    con = fresh_connection(REVOKED)
    both = anomalies.find_anomalies(con).to_pylist()
    assert [f["detector"] for f in both] == ["use_outside_access_window", "unattributed_operation"]  # critical first
    assert [f["detector"] for f in anomalies.find_anomalies(con, tenant="acme").to_pylist()] == [
        "use_outside_access_window"
    ]
    assert anomalies.find_anomalies(con, min_severity="critical").num_rows == 1
    assert anomalies.find_anomalies(con, detectors=["unattributed_operation"]).num_rows == 1
    since = dt.datetime(2026, 3, 10, tzinfo=UTC)
    assert [f["detector"] for f in anomalies.find_anomalies(con, since=since).to_pylist()] == [
        "use_outside_access_window"
    ]
    with pytest.raises(ConfigError, match="unknown severity 'urgent'"):
        anomalies.find_anomalies(con, min_severity="urgent")


def test_register_anomalies_exposes_a_view() -> None:
    con = fresh_connection(REVOKED)
    assert anomalies.register_anomalies(con) == []
    rows = con.execute("SELECT detector, evidence FROM anomalies ORDER BY detector").fetchall()
    assert rows == [("unattributed_operation", ["orphan"]), ("use_outside_access_window", ["late"])]


def test_every_detector_and_setting_is_documented() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "anomalies.md").read_text()
    for name in [*anomalies.detector_names(), *anomalies.DEFAULTS]:
        assert f"`{name}`" in doc, f"docs/anomalies.md does not mention `{name}`"
