"""The questions the dashboard asks, as functions: the Streamlit pages call only these (no SQL in page files).

Every function takes a DuckDB connection (the dashboard passes a fresh cursor of the one made by
`open_dashboard`) and returns an Arrow table or plain values. Most read the `dash_*` rollup tables
(analytics/rollups.py), so a page costs milliseconds even on a lake of ten million events; the CloudHSM
pages, evidence lookups and data-health queries read the (small or partition-pruned) lake views directly.

Time filters are whole UTC days, `start` and `end` both included. A tenant filter of None means every tenant;
`UNATTRIBUTED` means the operations no rule attributes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from analytics import report, triage
from analytics.anomalies import detector_names
from analytics.connection import connect
from analytics.queries import run_query
from analytics.report import Scope
from analytics.rollups import RollupReport, register_rollups
from ingest.integrity.hsm_sequence import SEQUENCE_SQL
from ingest.lake.store import Lake

UNATTRIBUTED = "(unattributed)"
NO_TENANT = "(no tenant)"  # caller_tenant of a call no tenant's principal or account made (the SQL spells it too)
NO_KEY = "(no key)"  # the key of an operation that names none: a login, user administration (the report's SQL too)
SEVERITIES = ("critical", "high", "medium", "low", "info")
# A log stream whose newest event is older than this is stale: the nightly run (24 h) plus CloudTrail's delivery
# delay (files land about 5 to 15 minutes after the calls; an hour or two of slack).
STALE_HOURS = 26


def open_dashboard(
    lake: str | os.PathLike[str], tenants: str | os.PathLike[str] | None = None, memory_limit: str = "2GB"
) -> tuple[duckdb.DuckDBPyConnection, RollupReport]:
    """The dashboard's connection: `analytics.connect` (read-only: locked in DuckDB's sandbox) plus the `dash_*`
    rollup tables (from files when fresh). The SQL page runs typed SQL on it through `analytics.sandbox`."""
    con = connect(lake, tenants, memory_limit=memory_limit)
    return con, register_rollups(con, lake, tenants)


def cursors_see_tables(lake: str | os.PathLike[str]) -> bool:
    """Whether a cursor of `open_dashboard`'s connection sees the lake: not on S3, whose tables are pyarrow
    datasets registered on the connection itself (analytics.connection), which its cursors do not share."""
    return not Lake.is_remote(str(lake))


def _table(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> pa.Table:
    return run_query(con, f"dashboard/{name}", params).to_arrow_table()


def _one(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> dict[str, Any]:
    rows = _table(con, name, **params).to_pylist()
    return rows[0] if rows else {}


def grain(start: dt.date, end: dt.date) -> str:
    """Chart buckets: hours for a range of up to three days, else days."""
    return "hour" if (end - start).days < 3 else "day"


def comparison(
    start: dt.date, end: dt.date, first_day: dt.date
) -> tuple[tuple[dt.date, dt.date], tuple[dt.date, dt.date]]:
    """(period, the one before it) for "what changed": [start, end] and the days just before it when the lake has
    them; on a range from the lake's first day (the default), its last 7 days (half, if shorter) and those before."""
    if start > first_day:
        return (start, end), previous_period(start, end)
    days = max(1, min(7, ((end - start).days + 1) // 2))
    recent = (end - dt.timedelta(days=days - 1), end)
    return recent, previous_period(*recent)


def previous_period(start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """The same number of days just before [start, end], for deltas."""
    days = (end - start).days + 1
    return start - dt.timedelta(days=days), start - dt.timedelta(days=1)


# ---------- the lake as a whole


def lake_bounds(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """first_day, last_day (None on an empty lake), newest_event, operations and events."""
    return _one(con, "lake_bounds")


def tenant_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Tenant ids in tenants-file order."""
    return [row[0] for row in con.sql("SELECT tenant_id FROM tenants ORDER BY position").fetchall()]


def tenants_file(con: duckdb.DuckDBPyConnection) -> str | None:
    """The tenants file the connection was made with, if any."""
    rows = con.sql("SELECT tenants_file FROM settings").fetchall()
    return rows[0][0] if rows else None


# ---------- Overview


def totals(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, tenant: str | None) -> dict[str, Any]:
    """operations, failures, tenants_active, outside_window, open findings per severity — for [start, end] and
    the period of the same length before it (keys prefixed `previous_`)."""
    result: dict[str, Any] = {}
    for prefix, (a, b) in (("", (start, end)), ("previous_", previous_period(start, end))):
        counts = _one(con, "totals", start=a, end=b, tenant=tenant)
        rows = _table(con, "anomaly_counts", start=a, end=b, tenant=tenant).to_pylist()
        found = {r["severity"]: r["findings"] for r in rows}
        counts.update({f"anomalies_{s}": int(found.get(s, 0)) for s in SEVERITIES})
        result.update({prefix + k: v for k, v in counts.items()})
    return result


def tenant_changes(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, tenant: str | None) -> pa.Table:
    """tenant, operations, previous_operations, change, failures, previous_failures: [start, end] against the
    period of the same length before it, biggest change first."""
    before, until = previous_period(start, end)
    return _table(con, "tenant_changes", start=start, end=end, before=before, until=until, tenant=tenant)


def operations_over_time(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, tenant: str | None) -> pa.Table:
    """bucket, tenant, operations, failures: the stacked usage chart."""
    return _table(con, "operations_over_time", start=start, end=end, tenant=tenant, grain=grain(start, end))


def monthly_cost(con: duckdb.DuckDBPyConnection, end: dt.date, tenant: str | None) -> pa.Table:
    """tenant, requests, cost_usd for the calendar month containing `end`."""
    return _table(con, "monthly_cost", end=end, tenant=tenant)


# ---------- Tenants


def tenant_summary(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date) -> pa.Table:
    """One row per tenant (and the unattributed): operations, failures, keys, operations on its keys called by
    others, its own calls on keys that count for others, last use, access window."""
    return _table(con, "tenant_summary", start=start, end=end)


def tenant_profile(con: duckdb.DuckDBPyConnection, tenant: str) -> dict[str, Any]:
    """The tenant's rules, access window, first/last use and operations its own principals made outside the
    window ({} if unknown)."""
    return _one(con, "tenant_profile", tenant=tenant)


def tenant_keys(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, tenant: str) -> pa.Table:
    """key, source, operations, failures, operation_names, first_hour, last_hour."""
    return _table(con, "tenant_keys", start=start, end=end, tenant=tenant)


def tenant_operations_over_time(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, tenant: str) -> pa.Table:
    """bucket, operation, operations."""
    return _table(con, "tenant_operations_over_time", start=start, end=end, tenant=tenant, grain=grain(start, end))


def tenant_principals(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, tenant: str) -> pa.Table:
    """principal, source_ip, region, account, operations, failures, keys, first_seen, last_seen."""
    return _table(con, "tenant_principals", start=start, end=end, tenant=tenant)


def tenant_errors(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, tenant: str) -> pa.Table:
    """error_code, operation, key, principal, caller_tenant, failures, first_seen, last_seen: the failed operations
    that count for the tenant, with who called."""
    return _table(con, "tenant_errors", start=start, end=end, tenant=tenant)


def tenant_keys_used_by_others(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, tenant: str) -> pa.Table:
    """caller_tenant, principal, account, key, operations, failures, first_seen, last_seen: the tenant's keys (or
    data) used by principals that are not its own."""
    return _table(con, "tenant_keys_used_by_others", start=start, end=end, tenant=tenant)


def tenant_principals_on_others_keys(
    con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, tenant: str
) -> pa.Table:
    """principal, key, tenant, operations, failures, first_seen, last_seen: the tenant's own principals on keys
    that count for another tenant, or for none."""
    return _table(con, "tenant_principals_on_others_keys", start=start, end=end, tenant=tenant)


def tenant_access(con: duckdb.DuckDBPyConnection, tenant: str) -> pa.Table:
    """label, path_kind, path, detail, opened_at, opened_by, closed_at, closed_by, is_open, span_start, span_end,
    evidence: each path the tenant had to the keys (docs/access.md)."""
    return _table(con, "tenant_access", tenant=tenant)


def tenant_use_daily(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, tenant: str) -> pa.Table:
    """day, operations: the tenant's own crypto calls per UTC day."""
    return _table(con, "tenant_use_daily", start=start, end=end, tenant=tenant)


# ---------- Keys


def keys(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, tenant: str | None) -> pa.Table:
    """key, source, operations, failures, tenants (it counted for), calling_tenants — busiest first."""
    return _table(con, "keys", start=start, end=end, tenant=tenant)


def key_profile(con: duckdb.DuckDBPyConnection, key: str) -> dict[str, Any]:
    """Owner account, region, claiming tenant, custom key store, HSM key handle, aliases, first/last seen."""
    return _one(con, "key_profile", key=key)


def key_users(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, key: str) -> pa.Table:
    """caller_tenant (whose principal called), tenant (whose key or data it counts for), principal, operations,
    failures, source_ips, first_seen, last_seen."""
    return _table(con, "key_users", start=start, end=end, key=key)


def key_operations_by_type(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, key: str) -> pa.Table:
    """day, operation, outcome, operations."""
    return _table(con, "key_operations_by_type", start=start, end=end, key=key)


def key_lifecycle(con: duckdb.DuckDBPyConnection, key: str) -> pa.Table:
    """Every administration event on the key, oldest first."""
    return _table(con, "key_lifecycle", key=key)


def key_days(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, key: str) -> pa.Table:
    """day, operations, failures: the days of [start, end] the key was used, newest first."""
    return _table(con, "key_days", start=start, end=end, key=key)


def key_day_operations(con: duckdb.DuckDBPyConnection, key: str, day: dt.date, limit: int = 5000) -> pa.Table:
    """Who used the key on one UTC day, call by call (at most `limit`, oldest first): time, operation, principal,
    caller_tenant, tenant, attributed_by, source_ip, outcome, counted, account, region, source, event_id."""
    return _table(con, "key_day_operations", key=key, day=day, limit=limit)


# ---------- Anomalies


def anomalies(
    con: duckdb.DuckDBPyConnection,
    start: dt.date,
    end: dt.date,
    tenant: str | None,
    severities: Sequence[str] = (),
    detectors: Sequence[str] = (),
    statuses: Sequence[str] = (),
    triage_signature: str = "",
) -> pa.Table:
    """Findings touching [start, end] with their triage status, most severe first; empty severities, detectors or
    statuses mean all. `triage_signature` (triage.signature) only keys caches: the triage files are read anew."""
    chosen = {"severities": list(severities), "detectors": list(detectors)}
    rows = _table(con, "anomalies", start=start, end=end, tenant=tenant, **chosen)
    found = triage.with_status(rows, triage.actions(_lake(con)))
    return found.filter(pc.is_in(found.column("status"), pa.array(statuses))) if statuses else found


def _lake(con: duckdb.DuckDBPyConnection) -> Lake:
    return Lake(con.sql("SELECT uri FROM lake_info").fetchall()[0][0])


def finding_history(con: duckdb.DuckDBPyConnection, finding_id: str, triage_signature: str = "") -> pa.Table:
    """Every triage action on one finding, oldest first."""
    return triage.history(triage.actions(_lake(con)), finding_id)


def new_findings(con: duckdb.DuckDBPyConnection, triage_signature: str = "") -> dict[str, Any]:
    """The last nightly run (`run`: its record, or None) and how many open findings it brought up (`new`)."""
    lake = _lake(con)
    run = triage.last_nightly_run(lake)
    found = triage.with_status(con.sql("SELECT * FROM dash_anomalies").to_arrow_table(), triage.actions(lake))
    return {"run": run, "new": triage.new_since(found, run).num_rows}


def triage_signature(lake: str | os.PathLike[str]) -> str:
    """Changes with every triage action in the lake (triage.signature)."""
    return triage.signature(Lake(str(lake)))


def record_triage(
    lake: str | os.PathLike[str], finding: dict[str, Any], status: str, note: str | None, who: str
) -> str:
    """Append one triage action (analytics/triage.py) for a finding shown on the Anomalies page; returns the file."""
    return str(triage.record_action(Lake(lake), finding, status, note, who))


def anomaly_detectors(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Detector names: every detector file, whether or not it found anything."""
    return detector_names()


def original_record(con: duckdb.DuckDBPyConnection, source_object: str, record_index: int) -> str:
    """A record's text read from its trail file (a local file, or an S3 object through the default credentials)
    after checking that the file is the one ingested; OriginalUnavailable (a KeytrailError) says why not. Reads
    the source only: the lake and its state are opened read-only."""
    from ingest.aws import make_client  # boto3: only when a record is fetched (analytics never needs it otherwise)
    from ingest.cloudtrail.originals import Originals

    state = _lake(con).state_dir / "ingest.sqlite"
    return Originals(state, lambda: make_client("s3")).record(source_object, record_index)


def evidence_events(
    con: duckdb.DuckDBPyConnection, ids: Sequence[str], window_start: dt.datetime, window_end: dt.datetime
) -> pa.Table:
    """The evidence records (with raw) of a finding, read only from the days of its window (± 1 day)."""
    start_day = (window_start - dt.timedelta(days=1)).date()
    end_day = (window_end + dt.timedelta(days=1)).date()
    return _table(con, "evidence_events", ids=list(ids), start_day=start_day, end_day=end_day)


# ---------- Evidence


def day_scope(start: dt.date, end: dt.date, tenant: str | None) -> Scope:
    """The report scope of whole UTC days start..end (both included)."""
    first = dt.datetime.combine(start, dt.time(), dt.UTC)
    return Scope(tenant, first, dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC))


def evidence(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, tenant: str | None) -> dict[str, pa.Table]:
    """The evidence completeness of [start, end] as the period report computes it: `completeness` (stream, verdict,
    reasons, and `records`: how many of the tenant's records the stream holds) and the tables behind it
    (trail_files, delivery_gaps, hsm_streams, hsm_sequence_breaks, quarantine). A verdict is the stream's, whatever
    the tenant: every stream of the period is listed, the tenant's first."""
    scope = day_scope(start, end, tenant)
    found = report.evidence(con, _lake(con), scope)
    carried = _table(con, "evidence_streams", start=scope.start, end=scope.end, tenant=tenant).to_pylist()
    records = {row["stream"]: row["records"] for row in carried}
    verdicts = sorted(
        (v | {"records": records.get(v["stream"], 0)} for v in found.pop("completeness")), key=lambda v: -v["records"]
    )
    tables = {name: pa.Table.from_pylist(rows) for name, rows in found.items()}
    return tables | {"completeness": pa.Table.from_pylist(verdicts, _VERDICTS)}


_VERDICTS = pa.schema(
    [("stream", pa.string()), ("verdict", pa.string()), ("reasons", pa.list_(pa.string())), ("records", pa.int64())]
)


def evidence_files(
    con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, account: str, region: str, limit: int = 5000
) -> pa.Table:
    """The trail files behind one trail's verdict: each file's verification, events and time span in the period."""
    scope = day_scope(start, end, None)
    params = {"start": scope.start, "end": scope.end, "account": account, "region": region, "limit": limit}
    return _table(con, "evidence_files", **params)


def period_report(
    con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, tenant: str | None, triage_signature: str = ""
) -> str:
    """The period report's HTML (what `keytrail report` writes) for whole UTC days start..end and a tenant or all.
    `triage_signature` only keys caches: the report shows the findings' triage status as it is now."""
    from analytics.report_html import render  # Altair and vl-convert: only when a report is made

    return render(report.build(con, _lake(con), day_scope(start, end, tenant)))


def report_pdf(report_html: str) -> bytes:
    """The PDF of a period report's HTML (WeasyPrint); ConfigError naming the fix when it cannot be made."""
    from analytics.report_html import pdf_of

    return pdf_of(report_html)


# ---------- CloudHSM


def hsm_logins(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, tenant: str | None) -> pa.Table:
    """day, cluster_id, user_name, user_type, tenant, logins, failed_logins, logouts."""
    return _table(con, "hsm_logins", start=start, end=end, tenant=tenant)


def hsm_failed_logins(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, tenant: str | None) -> pa.Table:
    """One row per failed login across the cluster, newest first."""
    return _table(con, "hsm_failed_logins", start=start, end=end, tenant=tenant)


def hsm_admin(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, tenant: str | None) -> pa.Table:
    """User and key administration commands, newest first."""
    return _table(con, "hsm_admin", start=start, end=end, tenant=tenant)


def hsm_integrity(con: duckdb.DuckDBPyConnection) -> tuple[pa.Table, pa.Table]:
    """(per HSM: entries, first/last entry, gaps, missing entries, complete), (every sequence break).

    The check covers each HSM's whole audit trail in the lake: a gap is a gap whatever range is on screen.
    """
    gaps = con.sql(SEQUENCE_SQL).to_arrow_table()
    streams = _table(con, "hsm_streams")
    con.register("_gaps", gaps)
    con.register("_streams", streams)
    try:
        summary = con.sql(
            """
            SELECT s.*, count(g.hsm_id) AS breaks, coalesce(sum(g.missing), 0)::BIGINT AS missing_entries,
                count(g.hsm_id) = 0 AS complete
            FROM _streams AS s LEFT JOIN _gaps AS g ON g.hsm_id = s.hsm_id
            GROUP BY ALL ORDER BY s.hsm_id
            """
        ).to_arrow_table()
    finally:
        con.unregister("_gaps")
        con.unregister("_streams")
    return summary, gaps


# ---------- Data health


def ingest_runs(lake: str | os.PathLike[str]) -> pa.Table:
    """The last ingest run per command and source (from `<lake>/_state/ingest.sqlite`), newest first."""
    path = Path(lake) / "_state" / "ingest.sqlite"
    names = ["command", "source", "started_at", "ended_at", "status", "runs", "summary"]
    if not path.is_file():
        return pa.table({n: pa.array([], RUN_TYPES.get(n, pa.string())) for n in names})
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute(
            """
            SELECT command, source, started_at, ended_at, status, n, stats FROM (
                SELECT *, row_number() OVER (PARTITION BY command, source ORDER BY started_at DESC) AS rn,
                    count(*) OVER (PARTITION BY command, source) AS n
                FROM runs)
            WHERE rn = 1 ORDER BY started_at DESC
            """
        ).fetchall()
    finally:
        db.close()
    records = [_run_record(names, row) for row in rows]
    schema = pa.schema([(n, RUN_TYPES.get(n, pa.string())) for n in names])
    return pa.Table.from_pylist(records, schema=schema)


RUN_TYPES = {"runs": pa.int64(), "started_at": pa.timestamp("us", "UTC"), "ended_at": pa.timestamp("us", "UTC")}


def _run_record(names: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    command, source, started, ended, status, runs, stats = row
    values = (command, source, _instant(started), _instant(ended), status, runs, _summarise_stats(stats))
    return dict(zip(names, values, strict=True))


def _instant(text: str | None) -> dt.datetime | None:
    """An ISO 8601 time from the ingest state (None while a run has not ended)."""
    return dt.datetime.fromisoformat(text) if text else None


def _summarise_stats(stats: str | None) -> str:
    """The scalar counters of a run's JSON stats, as `records=20147 kept=18978 …` (file lists left out)."""
    try:
        data = json.loads(stats or "{}")
    except ValueError:
        return stats or ""
    if not isinstance(data, dict):
        return str(data)
    return " ".join(f"{k}={v}" for k, v in data.items() if isinstance(v, int | float | str) and k != "run_id")


def freshness(con: duckdb.DuckDBPyConnection, now: dt.datetime | None = None) -> pa.Table:
    """Per log stream: newest event, hours old at `now`, stale (older than STALE_HOURS), events, days with events.
    Stalest first."""
    return _table(con, "freshness", now=now or dt.datetime.now(dt.UTC), stale_hours=STALE_HOURS)


def events_per_day(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """day, source, events — every day from the first to the last, 0 where none arrived."""
    return _table(con, "events_per_day")


def stream_days(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """source, stream, day, events — every stream on every day of the lake, 0 where none arrived."""
    return _table(con, "stream_days")


def stream_days_missing(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Days inside a stream's span with no events at all."""
    return _table(con, "stream_days_missing")


def quarantine_reasons(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """table_name, reason, records, source_objects, last_quarantined."""
    return _table(con, "quarantine_reasons")


def quarantine_records(con: duckdb.DuckDBPyConnection, limit: int = 500) -> pa.Table:
    """The newest quarantined records with their reason and raw text."""
    return _table(con, "quarantine_records", limit=limit)


def conflicting_duplicates(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Quarantined KMS records whose event id is taken by a different record: event_id, where, when, raw."""
    return _table(con, "conflicting_duplicates")
