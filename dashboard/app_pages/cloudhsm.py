"""CloudHSM: logins per crypto user, failed logins, user and key administration, and the audit-sequence
integrity of each HSM (green when complete, the gaps listed when not)."""

import altair as alt
import streamlit as st

from dashboard import charts, data, filters, tables

st.title("CloudHSM")
f = filters.require_events()
filters.caption(f)

st.subheader("Audit trail integrity")
streams, gaps = data.hsm_integrity()
if streams.empty:
    st.info("No CloudHSM audit logs in the lake: `keytrail ingest cloudhsm` reads them from CloudWatch Logs.")
    st.stop()
st.caption(
    "Within one HSM and one reboot counter the audit sequence number rises by exactly one: a break means entries "
    "were lost or deleted. Checked over each HSM's whole log in the lake."
)
cols = st.columns(len(streams))
for col, hsm in zip(cols, streams.itertuples(), strict=True):
    with col:
        if hsm.complete:
            st.success(f"**{hsm.hsm_id}** complete  \n{hsm.entries:,} entries, last {charts.when(hsm.last_entry)}",
                       icon=":material/verified:")  # fmt: skip
        else:
            st.error(f"**{hsm.hsm_id}**: {hsm.breaks} break(s), {hsm.missing_entries:,} entries missing",
                     icon=":material/report:")  # fmt: skip
if not gaps.empty:
    tables.show(
        gaps,
        {
            "after_time": st.column_config.DatetimeColumn("Last entry before", format=tables.TIMESTAMP, timezone="UTC"),
            "before_time": st.column_config.DatetimeColumn(
                "First entry after", format=tables.TIMESTAMP, timezone="UTC"
            ),
        },
    )

st.subheader("Logins per crypto user")
logins = data.hsm_logins(f.start, f.end, f.tenant)
if logins.empty:
    st.info("No logins in this range (for this tenant).")
else:
    per_user = logins.groupby(["user_name", "tenant"], as_index=False)[["logins", "failed_logins", "logouts"]].sum()
    a, b, c = st.columns(3)
    a.metric("Logins (sessions)", f"{int(per_user['logins'].sum()):,}", border=True)
    b.metric("Failed logins", f"{int(per_user['failed_logins'].sum()):,}", border=True)
    c.metric("Crypto users", len(per_user), border=True)
    st.altair_chart(
        alt.Chart(logins)
        .mark_bar()
        .encode(
            x=alt.X("day:T", title="UTC day", timeUnit="utcyearmonthdate"),
            y=alt.Y("sum(logins):Q", title="Logins"),
            color=alt.Color("user_name:N", title="User"),
            tooltip=[
                charts.day_tooltip("day"),
                "user_name",
                "tenant",
                "logins",
                "failed_logins",
            ],
        )
        .properties(height=260)
    )
    tables.show(per_user)

st.subheader("Failed logins")
failed = data.hsm_failed_logins(f.start, f.end, f.tenant)
if failed.empty:
    st.success("No failed logins in this range.", icon=":material/check_circle:")
else:
    tables.show(failed, {"raw": st.column_config.TextColumn("Raw entry", width="large")})

st.subheader("User and key administration")
admin = data.hsm_admin(f.start, f.end, f.tenant)
if admin.empty:
    st.caption("No user or key administration commands in this range.")
else:
    tables.show(admin, {"raw": st.column_config.TextColumn("Raw entry", width="large")})
