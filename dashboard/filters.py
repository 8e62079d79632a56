"""The shared sidebar filters (time range, tenant), bound to the URL so a view can be shared by its link.

`?tenant=acme&range=2026-11-01&range=2026-11-27` opens any page already filtered; the widgets keep the URL up to
date (`bind="query-params"`, built on `st.query_params`). Pages read the result with `current()`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import streamlit as st

from dashboard import data

ALL_TENANTS = "All tenants"


@dataclass(frozen=True)
class Filters:
    """What the sidebar selected: whole UTC days start..end (both included), a tenant or None for all."""

    start: dt.date
    end: dt.date
    tenant: str | None
    first_day: dt.date | None  # the lake's first and last day with operations (None: no operations yet)
    last_day: dt.date | None

    @property
    def tenant_label(self) -> str:
        return self.tenant or ALL_TENANTS


def sidebar() -> Filters:
    """Draw the shared filters in the sidebar and remember them for the page of this run."""
    bounds = data.lake_bounds()
    first, last = bounds.get("first_day"), bounds.get("last_day")
    low = first or dt.datetime.now(dt.UTC).date()
    high = last or low
    options = [ALL_TENANTS, *data.tenant_ids(), data.UNATTRIBUTED]
    tenant = st.sidebar.selectbox("Tenant", options, key="tenant", bind="query-params")
    chosen = st.sidebar.date_input(
        "Time range (UTC days)", value=(low, high), min_value=low, max_value=high, key="range", bind="query-params"
    )
    days = [d for d in (chosen if isinstance(chosen, tuple | list) else (chosen,)) if d is not None] or [low, high]
    start, end = min(days), max(days)
    filters = Filters(start, end, None if tenant == ALL_TENANTS else tenant, first, last)
    st.session_state["filters"] = filters
    return filters


def current() -> Filters:
    """The filters the sidebar drew in this run."""
    return st.session_state["filters"]  # type: ignore[no-any-return]


def require_events() -> Filters:
    """The filters; on a lake without operations, explain what to do next and stop the page."""
    filters = current()
    if filters.first_day is None:
        lake, _ = data.lake_settings()
        st.info(
            f"**The lake `{lake}` holds no KMS or CloudHSM operations yet.**\n\n"
            "Fill it, then press **Reload data** in the sidebar:\n"
            "- try it with the sample logs: `keytrail demo` (or `make demo`)\n"
            f"- your CloudTrail logs: `keytrail ingest cloudtrail s3://<trail-bucket>/<prefix> --lake {lake}`\n"
            f"- your CloudHSM audit logs: `keytrail ingest cloudhsm cloudwatch --lake {lake}` (or a folder of "
            "exports)\n\n"
            "The **Data health** page shows past ingest runs and quarantined records.",
            icon=":material/inbox:",
        )
        st.stop()
    return filters


def caption(filters: Filters) -> None:
    """One line under a page title saying what is shown."""
    st.caption(f"{filters.tenant_label} · {filters.start:%Y-%m-%d} to {filters.end:%Y-%m-%d} (UTC)")
