"""Overview: operations over time by tenant, headline figures with deltas, open findings, this month's KMS cost."""

import altair as alt
import streamlit as st

from dashboard import charts, data, filters

st.title("Overview")
f = filters.require_events()
filters.caption(f)

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
            tooltip=["tenant", alt.Tooltip("requests:Q", format=","), alt.Tooltip("cost_usd:Q", format="$.4f")],
        )
    )
    right.dataframe(
        cost,
        hide_index=True,
        column_config={
            "requests": st.column_config.NumberColumn("Requests", format="localized"),
            "cost_usd": st.column_config.NumberColumn("Cost", format="dollar"),
        },
    )
    st.caption(f"Total {cost['requests'].sum():,} billable requests, ${cost['cost_usd'].sum():,.4f}.")
