"""Cached wrappers over `analytics.dashboard`: the only door from the pages to the data.

One DuckDB connection per lake snapshot (`st.cache_resource`, keyed by the lake's signature so a new ingest
opens a new snapshot), a fresh cursor of it for every query (one connection shared by two overlapping reruns
raises in DuckDB 2.x; on an S3 lake, whose tables are pyarrow datasets registered on the connection and unseen by
its cursors, the connection itself, one query at a time), and each query's result cached (`st.cache_data`) as
pandas frames, which Streamlit and Altair draw directly.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import streamlit as st

from analytics import DEFAULT_LAKE, integrity
from analytics import dashboard as q
from analytics.rollups import RollupReport, lake_signature
from analytics.sandbox import run_read_only

UNATTRIBUTED = q.UNATTRIBUTED
NO_TENANT = q.NO_TENANT
NO_KEY = q.NO_KEY
SEVERITIES = q.SEVERITIES
STALE_HOURS = q.STALE_HOURS
STATUSES = q.triage.STATUSES
TTL = dt.timedelta(minutes=10)


def lake_settings() -> tuple[str, str | None]:
    """The lake folder and tenants file the dashboard shows ($KEYTRAIL_LAKE, $KEYTRAIL_TENANTS)."""
    return os.environ.get("KEYTRAIL_LAKE", DEFAULT_LAKE), os.environ.get("KEYTRAIL_TENANTS") or None


@st.cache_data(ttl=dt.timedelta(seconds=30), show_spinner=False)
def _signature(lake: str, tenants: str | None) -> str:
    return lake_signature(lake, tenants) + integrity.verification_signature(lake)


@st.cache_resource(max_entries=2, show_spinner="Opening the lake …")
def _database(lake: str, tenants: str | None, signature: str) -> tuple[duckdb.DuckDBPyConnection, RollupReport]:
    return q.open_dashboard(lake, tenants)


@st.cache_resource(max_entries=2)
def _lock(lake: str, tenants: str | None, signature: str) -> threading.Lock:
    return threading.Lock()


@contextmanager
def _cursor(lake: str, tenants: str | None, signature: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh cursor of the snapshot's connection; on an S3 lake the connection itself, under its lock."""
    con, _ = _database(lake, tenants, signature)
    if not q.cursors_see_tables(lake):
        with _lock(lake, tenants, signature):
            yield con
        return
    cursor = con.cursor()
    try:
        yield cursor
    finally:
        cursor.close()


def _key() -> tuple[str, str | None, str]:
    lake, tenants = lake_settings()
    return lake, tenants, _signature(lake, tenants)


def rollup_report() -> RollupReport:
    """How the rollups were loaded for the current snapshot (fresh files, or computed in memory)."""
    return _database(*_key())[1]


def _frames(result: Any) -> Any:
    """Arrow tables become pandas frames (what st.dataframe and Altair want); tuples are converted item-wise."""
    if isinstance(result, pa.Table):
        return result.to_pandas()
    if isinstance(result, tuple):
        return tuple(_frames(r) for r in result)
    if isinstance(result, dict) and all(isinstance(v, pa.Table) for v in result.values()):
        return {k: _frames(v) for k, v in result.items()}
    return result


@st.cache_data(ttl=TTL, max_entries=1000, show_spinner=False)
def _call(lake: str, tenants: str | None, signature: str, name: str, args: tuple[Any, ...]) -> Any:
    with _cursor(lake, tenants, signature) as cursor:
        return _frames((getattr(q, name, None) or getattr(integrity, name))(cursor, *args))


def _query(name: str, *args: Any) -> Any:
    try:
        return _call(*_key(), name, args)
    except Exception as err:
        if not any(sign in str(err) for sign in GONE):
            raise
        _signature.clear()  # files of this snapshot were replaced (a nightly compaction): open the lake anew
        return _call(*_key(), name, args)


# How DuckDB and pyarrow say that a file of the snapshot is gone.
GONE = ("No such file", "does not exist", "No files found", "Cannot open file")


def clear() -> None:
    """Forget every cached result and connection (the Reload button)."""
    st.cache_data.clear()
    st.cache_resource.clear()


# ---------- one wrapper per analytics.dashboard function the pages use


def lake_bounds() -> dict[str, Any]:
    return _query("lake_bounds")  # type: ignore[no-any-return]


def tenant_ids() -> list[str]:
    return _query("tenant_ids")  # type: ignore[no-any-return]


def tenants_file() -> str | None:
    return _query("tenants_file")  # type: ignore[no-any-return]


def totals(start: dt.date, end: dt.date, tenant: str | None) -> dict[str, Any]:
    return _query("totals", start, end, tenant)  # type: ignore[no-any-return]


def tenant_changes(start: dt.date, end: dt.date, tenant: str | None) -> pd.DataFrame:
    return _query("tenant_changes", start, end, tenant)  # type: ignore[no-any-return]


def comparison(start: dt.date, end: dt.date, first_day: dt.date) -> tuple[tuple[dt.date, dt.date], ...]:
    return q.comparison(start, end, first_day)


def operations_over_time(start: dt.date, end: dt.date, tenant: str | None) -> pd.DataFrame:
    return _query("operations_over_time", start, end, tenant)  # type: ignore[no-any-return]


def monthly_cost(end: dt.date, tenant: str | None) -> pd.DataFrame:
    return _query("monthly_cost", end, tenant)  # type: ignore[no-any-return]


def tenant_summary(start: dt.date, end: dt.date) -> pd.DataFrame:
    return _query("tenant_summary", start, end)  # type: ignore[no-any-return]


def tenant_profile(tenant: str) -> dict[str, Any]:
    return _query("tenant_profile", tenant)  # type: ignore[no-any-return]


def tenant_keys(start: dt.date, end: dt.date, tenant: str) -> pd.DataFrame:
    return _query("tenant_keys", start, end, tenant)  # type: ignore[no-any-return]


def tenant_operations_over_time(start: dt.date, end: dt.date, tenant: str) -> pd.DataFrame:
    return _query("tenant_operations_over_time", start, end, tenant)  # type: ignore[no-any-return]


def tenant_principals(start: dt.date, end: dt.date, tenant: str) -> pd.DataFrame:
    return _query("tenant_principals", start, end, tenant)  # type: ignore[no-any-return]


def tenant_errors(start: dt.date, end: dt.date, tenant: str) -> pd.DataFrame:
    return _query("tenant_errors", start, end, tenant)  # type: ignore[no-any-return]


def tenant_keys_used_by_others(start: dt.date, end: dt.date, tenant: str) -> pd.DataFrame:
    return _query("tenant_keys_used_by_others", start, end, tenant)  # type: ignore[no-any-return]


def tenant_principals_on_others_keys(start: dt.date, end: dt.date, tenant: str) -> pd.DataFrame:
    return _query("tenant_principals_on_others_keys", start, end, tenant)  # type: ignore[no-any-return]


def tenant_access(tenant: str) -> pd.DataFrame:
    return _query("tenant_access", tenant)  # type: ignore[no-any-return]


def tenant_use_daily(start: dt.date, end: dt.date, tenant: str) -> pd.DataFrame:
    return _query("tenant_use_daily", start, end, tenant)  # type: ignore[no-any-return]


def keys(start: dt.date, end: dt.date, tenant: str | None) -> pd.DataFrame:
    return _query("keys", start, end, tenant)  # type: ignore[no-any-return]


def key_profile(key: str) -> dict[str, Any]:
    return _query("key_profile", key)  # type: ignore[no-any-return]


def key_users(start: dt.date, end: dt.date, key: str) -> pd.DataFrame:
    return _query("key_users", start, end, key)  # type: ignore[no-any-return]


def key_operations_by_type(start: dt.date, end: dt.date, key: str) -> pd.DataFrame:
    return _query("key_operations_by_type", start, end, key)  # type: ignore[no-any-return]


def key_lifecycle(key: str) -> pd.DataFrame:
    return _query("key_lifecycle", key)  # type: ignore[no-any-return]


def key_days(start: dt.date, end: dt.date, key: str) -> pd.DataFrame:
    return _query("key_days", start, end, key)  # type: ignore[no-any-return]


def key_day_operations(key: str, day: dt.date) -> pd.DataFrame:
    return _query("key_day_operations", key, day)  # type: ignore[no-any-return]


def source_record(event_id: str, time: dt.datetime) -> dict[str, Any]:
    """One event's source record (raw text, source object, record index) by its id and time ({} if not found)."""
    found = evidence_events((event_id,), time, time)
    return found.iloc[0].to_dict() if not found.empty else {}


def original_record(source_object: str, record_index: int) -> str:
    """A record's text from its trail file (not cached: the file is checked against the ingest state each time);
    KeytrailError says why it cannot be read."""
    with _cursor(*_key()) as cursor:
        return q.original_record(cursor, source_object, record_index)


@st.cache_data(ttl=dt.timedelta(seconds=30), show_spinner=False)
def _triage_files(lake: str) -> str:
    return q.triage_signature(lake)


def _triage_signature() -> str:
    """Changes with every triage action (a folder listing, at most 30 s old; a review saved here clears it), so the
    cached findings show it."""
    return _triage_files(lake_settings()[0])


def anomalies(
    start: dt.date,
    end: dt.date,
    tenant: str | None,
    severities: tuple[str, ...],
    detectors: tuple[str, ...],
    statuses: tuple[str, ...] = (),
) -> pd.DataFrame:
    args = (start, end, tenant, severities, detectors, statuses, _triage_signature())
    return _query("anomalies", *args)  # type: ignore[no-any-return]


def finding_history(finding_id: str) -> pd.DataFrame:
    return _query("finding_history", finding_id, _triage_signature())  # type: ignore[no-any-return]


def new_findings() -> dict[str, Any]:
    return _query("new_findings", _triage_signature())  # type: ignore[no-any-return]


def record_triage(finding: dict[str, Any], status: str, note: str | None, who: str) -> str:
    """Append a triage action to the lake (a deliberate user action, not SQL); the next read shows it."""
    path = q.record_triage(lake_settings()[0], finding, status, note, who)
    _triage_files.clear()
    return path


def anomaly_detectors() -> list[str]:
    return _query("anomaly_detectors")  # type: ignore[no-any-return]


def evidence_events(ids: tuple[str, ...], window_start: dt.datetime, window_end: dt.datetime) -> pd.DataFrame:
    return _query("evidence_events", ids, window_start, window_end)  # type: ignore[no-any-return]


def hsm_logins(start: dt.date, end: dt.date, tenant: str | None) -> pd.DataFrame:
    return _query("hsm_logins", start, end, tenant)  # type: ignore[no-any-return]


def hsm_failed_logins(start: dt.date, end: dt.date, tenant: str | None) -> pd.DataFrame:
    return _query("hsm_failed_logins", start, end, tenant)  # type: ignore[no-any-return]


def hsm_admin(start: dt.date, end: dt.date, tenant: str | None) -> pd.DataFrame:
    return _query("hsm_admin", start, end, tenant)  # type: ignore[no-any-return]


def hsm_integrity() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _query("hsm_integrity")  # type: ignore[no-any-return]


@st.cache_data(ttl=dt.timedelta(seconds=30), show_spinner=False)
def ingest_runs(lake: str) -> pd.DataFrame:
    return q.ingest_runs(lake).to_pandas()


def freshness() -> pd.DataFrame:
    # not cached by time of day: `now` is fixed per snapshot, good enough for "hours old" at a glance
    return _query("freshness")  # type: ignore[no-any-return]


def events_per_day() -> pd.DataFrame:
    return _query("events_per_day")  # type: ignore[no-any-return]


def stream_days() -> pd.DataFrame:
    return _query("stream_days")  # type: ignore[no-any-return]


def stream_days_missing() -> pd.DataFrame:
    return _query("stream_days_missing")  # type: ignore[no-any-return]


def quarantine_reasons() -> pd.DataFrame:
    return _query("quarantine_reasons")  # type: ignore[no-any-return]


def quarantine_records(limit: int = 500) -> pd.DataFrame:
    return _query("quarantine_records", limit)  # type: ignore[no-any-return]


def conflicting_duplicates() -> pd.DataFrame:
    return _query("conflicting_duplicates")  # type: ignore[no-any-return]


def verified_events(start: dt.date, end: dt.date) -> pd.DataFrame:
    return _query("verified_events", start, end)  # type: ignore[no-any-return]


def verification_summary() -> pd.DataFrame:
    return _query("verification_summary")  # type: ignore[no-any-return]


def verification_problems(start: dt.date, end: dt.date) -> pd.DataFrame:
    return _query("verification_problems", start, end)  # type: ignore[no-any-return]


def evidence(start: dt.date, end: dt.date, tenant: str | None) -> dict[str, pd.DataFrame]:
    return _query("evidence", start, end, tenant)  # type: ignore[no-any-return]


def evidence_files(start: dt.date, end: dt.date, account: str, region: str) -> pd.DataFrame:
    return _query("evidence_files", start, end, account, region)  # type: ignore[no-any-return]


def period_report(start: dt.date, end: dt.date, tenant: str | None) -> str:
    """The period report's HTML, as `keytrail report` writes it (cached until a triage action changes it)."""
    return _query("period_report", start, end, tenant, _triage_signature())  # type: ignore[no-any-return]


@st.cache_data(ttl=TTL, max_entries=20, show_spinner=False)
def report_pdf(report_html: str) -> bytes:
    return q.report_pdf(report_html)


def run_sql(sql: str, limit: int = 10_000) -> tuple[pd.DataFrame, bool]:
    """An ad hoc query through the read-only sandbox (not cached: people rerun a query to see new data); raises
    KeytrailError, ReadOnlyViolation for anything but a read."""
    with _cursor(*_key()) as cursor:
        table, truncated = run_read_only(cursor, sql, surface="The SQL page", limit=limit, timeout=30)
    return table.to_pandas(), truncated
