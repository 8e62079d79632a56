"""Keys: pick a key → which tenants' principals called it (and whom each use counts for) and how much, what
backs it (custom key store, HSM key handle), and its lifecycle (created, rotated, disabled, scheduled for deletion,
policy and grants)."""

import altair as alt
import streamlit as st

from dashboard import charts, data, filters, tables

st.title("Keys")
f = filters.require_events()
filters.caption(f)

keys = data.keys(f.start, f.end, f.tenant)
if keys.empty:
    st.info("No key was used in this range (for this tenant). Widen the time range in the sidebar.")
    st.stop()
labels = {row.key: f"{charts.short_key(row.key)} — {row.operations:,} ops" for row in keys.itertuples()}
key = st.selectbox("Key (busiest first)", list(labels), format_func=labels.__getitem__, key="keys_key")

profile = data.key_profile(key)
users = data.key_users(f.start, f.end, key)
lifecycle = data.key_lifecycle(key)
row = keys[keys["key"] == key].iloc[0]

a, b, c, d = st.columns(4)
a.metric("Operations", f"{int(row['operations']):,}", border=True)
b.metric("Failures", f"{int(row['failures']):,}", border=True)
callers = set(users["caller_tenant"]) - {data.NO_TENANT} if not users.empty else set()
c.metric(
    "Calling tenants",
    len(callers),
    border=True,
    help="Tenants whose principals or accounts called the key (callers no tenant rule names are not counted).",
)
d.metric("Principals", users["principal"].nunique() if not users.empty else 0, border=True)

st.subheader("Key")
backing = "AWS-managed key material"
if profile.get("custom_key_store_id"):
    backing = f"custom key store `{profile['custom_key_store_id']}` (CloudHSM)"
    if profile.get("backing_key_handle"):
        backing += f", HSM key handle `{profile['backing_key_handle']}`"
elif str(key).startswith("hsm:"):
    backing = f"CloudHSM key handle `{profile.get('backing_key_handle')}` (used directly in the HSM)"
facts = {
    "Key": f"`{key}`",
    "Owner account / region": f"{profile.get('owner_account') or '—'} / {profile.get('region') or '—'}",
    "Claimed by tenant": profile.get("key_tenant_id") or "no tenant's key rule",
    "Backed by": backing,
    "Aliases": ", ".join(f"`{a}`" for a in (profile.get("aliases") or [])) or "—",
    "First / last event": f"{charts.when(profile.get('first_seen'))} / {charts.when(profile.get('last_seen'))}",
}
st.markdown("\n".join(f"- **{k}:** {v}" for k, v in facts.items()))

st.subheader("Who called it")
st.caption(
    "Callers by tenant: whose principal or account made the call (caller tenant), and whom the use counts for "
    "(tenant: context > key > principal > account, see docs/tenants.md)."
)
if users.empty:
    st.info("Nobody used this key in this range.")
else:
    st.altair_chart(
        alt.Chart(users)
        .mark_bar()
        .encode(
            x=alt.X("sum(operations):Q", title="Operations"),
            y=alt.Y("caller_tenant:N", sort="-x", title="Caller tenant"),
            color=alt.Color("principal:N", legend=None),
            tooltip=["caller_tenant", "tenant", "principal", alt.Tooltip("operations:Q", format=",")],
        )
        .properties(height=alt.Step(32))  # a band per caller tenant (a fixed height squeezed them)
    )
    tables.show(users, first=("caller_tenant", "tenant", "principal", "operations", "failures"))

st.subheader("Operations by type")
by_type = data.key_operations_by_type(f.start, f.end, key)
if not by_type.empty:
    st.altair_chart(charts.daily_bars(by_type, "day", "operation", "operations", "Operations"))

st.subheader("Who used it, call by call")
days = data.key_days(f.start, f.end, key)
if days.empty:
    st.caption("No use of this key in this range.")
else:
    day_labels = {
        r.day: f"{charts.day(r.day)} — {r.operations:,} operations, {r.failures:,} failed" for r in days.itertuples()
    }
    day = st.selectbox("Day (UTC)", list(day_labels), format_func=day_labels.__getitem__, key="keys_day")
    calls = data.key_day_operations(key, day)
    st.caption(
        f"Every call on `{charts.short_key(key)}` on {charts.day(day)}, oldest first. A cross-account call is logged "
        "twice (the caller's and the key owner's copy): both are listed, *Counted* marks the one the figures count. "
        "Select a row to see its source record."
    )
    chosen = tables.show(
        calls,
        {"outcome": st.column_config.TextColumn("Outcome"), "counted": st.column_config.CheckboxColumn("Counted")},
        first=("time", "operation", "principal", "caller_tenant", "tenant", "source_ip", "outcome", "counted"),
        on_select="rerun",
        selection_mode="single-row",
        key="keys_call",
    )
    rows = chosen.selection.rows
    if rows:
        call = calls.iloc[rows[0]]
        record = data.source_record(call["event_id"], call["time"].to_pydatetime())
        tables.source_record(record, data.original_record)

st.subheader("Lifecycle")
if lifecycle.empty:
    st.caption("No administration events for this key in the lake (created before the logs begin?).")
else:
    points = lifecycle[["time", "operation", "principal", "success", "error_code"]]
    st.altair_chart(
        alt.Chart(points)
        .mark_point(filled=True, size=120)
        .encode(
            x=alt.X("time:T", title="UTC", scale=alt.Scale(type="utc"), axis=alt.Axis(format="%b %d %H:%M")),
            y=alt.Y("operation:N", title=None),
            color=alt.Color("success:N", scale=alt.Scale(domain=[True, False], range=["#2e7d32", "#c62828"])),
            tooltip=[
                alt.Tooltip("time:T", title="UTC", format=charts.TIME_FORMAT, formatType="utc"),
                "operation",
                "principal",
                "success",
                "error_code",
            ],
        )
        .properties(height=alt.Step(32))
    )
    SHOWN = 500
    tables.show(lifecycle.tail(SHOWN).iloc[::-1], first=("time", "operation", "success", "error_code", "principal"))
    if len(lifecycle) > SHOWN:
        st.caption(f"The newest {SHOWN} of {len(lifecycle):,} events; the SQL page has them all (dash_key_events).")
