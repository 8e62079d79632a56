"""Overview: where the lake's data ends, headline figures with deltas, what changed against the period before,
operations over time by tenant, open findings, this month's KMS cost."""

import datetime as dt

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import charts, data, filters, tables

st.title("Overview")
f = filters.require_events()
filters.caption(f)

newest = pd.Timestamp(data.lake_bounds()["newest_event"])
age = pd.Timestamp(dt.datetime.now(dt.UTC)) - newest
ENDS = (
    f"The lake's data ends **{charts.when(newest)}**, {charts.duration(age)} ago: nothing after it has been ingested "
    "yet, so the last days may look quieter than they were."
)
if age > pd.Timedelta(hours=data.STALE_HOURS):
    st.warning(f"{ENDS} Data health shows which streams are stale.", icon=":material/schedule:")
else:
    st.caption(ENDS)

t = data.totals(f.start, f.end, f.tenant)
has_previous = f.first_day is not None and f.start > f.first_day

WINDOW_HELP = (
    "Calls by a tenant's own principals, accounts or crypto users before its active_from or from its revoked_at on "
    "(the provider's admin acting on its key is not counted)."
)
OPS_HELP = (
    "KMS and CloudHSM operations, each cross-account call or cluster-wide login counted once. "
    "Deltas compare with the same number of days before the range."
)
ops, fails, active, outside = st.columns(4)
ops.metric("Operations", f"{t['operations']:,}", charts.delta(t, "operations", has_previous), help=OPS_HELP)
fails.metric("Failures", f"{t['failures']:,}", charts.delta(t, "failures", has_previous), delta_color="inverse")
active.metric("Tenants active", t["tenants_active"], charts.delta(t, "tenants_active", has_previous))
outside_delta = charts.delta(t, "outside_window", has_previous)
outside.metric(
    "Outside access window", f"{t['outside_window']:,}", outside_delta, delta_color="inverse", help=WINDOW_HELP
)

st.subheader("What changed")
(start, end), (before, until) = data.comparison(f.start, f.end, f.first_day or f.start)
st.caption(
    f"{charts.day(start)} to {charts.day(end)} against the {(end - start).days + 1} days before, {charts.day(before)}"
    f" to {charts.day(until)} (UTC)"
    + ("" if start == f.start else "; the range starts on the lake's first day, so its last days are compared")
    + (f". The lake starts on {charts.day(f.first_day)}." if f.first_day and before < f.first_day else ".")
)
c = data.totals(start, end, f.tenant)
span = f", {start:%b %d}–{end:%b %d}" if start < end else f", {start:%b %d}"
ops, fails, findings, outside = st.columns(4)
ops.metric(f"Operations{span}", f"{c['operations']:,}", charts.delta(c, "operations", True))
fails.metric(f"Failures{span}", f"{c['failures']:,}", charts.delta(c, "failures", True), delta_color="inverse")
new = {k: sum(c[f"{p}anomalies_{s}"] for s in data.SEVERITIES) for k, p in (("now", ""), ("before", "previous_"))}
findings.metric(f"Findings{span}", f"{new['now']:,}", f"{new['now'] - new['before']:+,}", delta_color="inverse")
outside_change = charts.delta(c, "outside_window", True)
outside.metric(f"Outside window{span}", f"{c['outside_window']:,}", outside_change, delta_color="inverse")
tables.show(
    data.tenant_changes(start, end, f.tenant),
    {
        "tenant": st.column_config.TextColumn("Tenant"),
        "operations": st.column_config.NumberColumn("Operations", format="localized"),
        "previous_operations": st.column_config.NumberColumn("Before", format="localized"),
        "change": st.column_config.NumberColumn("Change", format="%+d"),
        "previous_failures": st.column_config.NumberColumn("Failures before", format="localized"),
    },
)

st.subheader("Operations over time")
usage = data.operations_over_time(f.start, f.end, f.tenant)
st.altair_chart(charts.stacked_over_time(usage, "tenant", "Tenant"))

st.subheader("Open anomalies by severity")
news = data.new_findings()
if news["run"] is not None:
    started = str(news["run"].get("started_at", "?"))[:16].replace("T", " ")
    st.caption(f"**{news['new']:,}** open finding(s) new since the last nightly run (started {started} UTC).")
cols = st.columns(4)
for col, severity in zip(cols, ("critical", "high", "medium", "low"), strict=True):
    change = charts.delta(t, f"anomalies_{severity}", has_previous)
    col.metric(severity.capitalize(), f"{t[f'anomalies_{severity}']:,}", change, delta_color="inverse")
st.page_link("app_pages/anomalies.py", label="Review the findings", icon=":material/arrow_forward:")

st.subheader(f"KMS request cost per tenant, {f.end:%B %Y}")
cost = data.monthly_cost(f.end, f.tenant)
if cost.empty:
    st.info("No billable KMS requests this month.")
else:
    left, right = st.columns([2, 1])
    left.altair_chart(
        alt.Chart(cost)
        .mark_bar()
        .encode(
            x=alt.X("cost_usd:Q", title="USD"),
            y=alt.Y("tenant:N", sort="-x", title=None),
            color=alt.Color("tenant:N", legend=None),
            tooltip=["tenant", alt.Tooltip("requests:Q", format=","), alt.Tooltip("cost_usd:Q", format="$,.4f")],
        )
    )
    with right:  # a few thousand requests cost a fraction of a cent: four decimals, not $0.00
        tables.show(
            cost,
            {
                "tenant": st.column_config.TextColumn("Tenant"),
                "cost_usd": st.column_config.NumberColumn("Cost (USD)", format="$%.4f"),
            },
        )
    st.caption(f"Total {cost['requests'].sum():,} billable requests, ${cost['cost_usd'].sum():,.4f}.")
