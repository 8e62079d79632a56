"""Tenants: pick a tenant → its keys, operations by type over time, principals and source IPs, its keys used by
others and its principals on others' keys, errors with the calling principal, access window and findings."""

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import charts, data, filters, tables

st.title("Tenants")
f = filters.require_events()
filters.caption(f)


def pick_tenant() -> None:
    """A row clicked in the summary becomes the shared tenant filter."""
    rows = st.session_state["tenants_summary"].selection.rows
    if rows:
        st.session_state["tenant"] = st.session_state["tenants_summary_ids"][rows[0]]


if f.tenant is None:
    summary = data.tenant_summary(f.start, f.end)
    if not data.tenant_ids():
        st.info(
            "No tenants file, so every operation is unattributed: start the dashboard with "
            "`keytrail dashboard --tenants tenants.toml` (docs/tenants.md describes the file).",
            icon=":material/group_off:",
        )
    st.info("Pick a tenant in the sidebar, or click a row below.", icon=":material/touch_app:")
    st.session_state["tenants_summary_ids"] = list(summary["tenant"])
    tables.show(
        summary,
        {
            "tenant": st.column_config.TextColumn("Tenant"),
            # text: blank for the unattributed, which is no tenant (tables.blank_missing)
            "called_by_others": st.column_config.TextColumn(
                "Called by others", alignment="right", help="Its operations made by another tenant's principals"
            ),
            "calls_on_others": st.column_config.TextColumn(
                "Calls on others' keys", alignment="right", help="Its principals' calls that count for others"
            ),
        },
        first=("tenant", "operations", "failures", "keys", "called_by_others", "calls_on_others", "last_hour"),
        key="tenants_summary",
        on_select=pick_tenant,
        selection_mode="single-row",
    )
    st.stop()

tenant = f.tenant
profile = data.tenant_profile(tenant)
st.header(profile.get("name") or tenant)

keys = data.tenant_keys(f.start, f.end, tenant)
operations = int(keys["operations"].sum()) if not keys.empty else 0
failures = int(keys["failures"].sum()) if not keys.empty else 0
found = data.anomalies(f.start, f.end, tenant, (), ())
a, b, c, d = st.columns(4)
a.metric("Operations", f"{operations:,}", border=True)
b.metric("Failures", f"{failures:,}", border=True)
c.metric(
    "Keys used",
    keys["key"].nunique() if not keys.empty else 0,
    border=True,
    help="Distinct keys (KMS keys, CloudHSM key handles). Operations that name none (logins, user administration, "
    f"listing calls) are in the Keys table as {data.NO_KEY}.",
)
d.metric("Findings", len(found), border=True)

st.subheader("Access window")
if profile:
    window_from = charts.when(profile["active_from"]) if profile.get("active_from") else "always"
    window_to = charts.when(profile["revoked_at"]) if profile.get("revoked_at") else "open"
    used = (
        f"first used {charts.when(profile['first_hour'])}, last used {charts.when(profile['last_hour'])}"
        if profile.get("first_hour") is not None
        else "never used"
    )
    text = f"Access from **{window_from}** until **{window_to}**; {used}."
    if profile.get("outside_window"):
        st.error(
            f"{text} **{profile['outside_window']:,} operations by its own principals fell outside the window.**",
            icon=":material/block:",
        )
    else:
        st.success(f"{text} No operation by its own principals outside the window.", icon=":material/verified:")
    with st.expander("Attribution rules from the tenants file"):
        fields = ("accounts", "principals", "principal_ids", "keys", "hsm_users", "custom_key_stores")
        rules = {k: profile.get(k) for k in fields}
        context = zip(profile.get("context_keys") or [], profile.get("context_values") or [], strict=False)
        rules["encryption_context"] = dict(context)
        st.json({k: (list(v) if v is not None and not isinstance(v, dict) else v) for k, v in rules.items()})
else:
    st.caption("The unattributed operations: no rule of the tenants file names a tenant for them.")

st.subheader("Access to the keys")
paths = data.tenant_access(tenant)
if paths.empty:
    st.info(
        "No path to the keys is tied to this tenant in the logs (docs/access.md: peering, security-group CIDR, crypto "
        "user, grant, key policy, custom key store; tenants.toml `vpc_cidrs`, `peering_ids`, `accounts`, …).",
        icon=":material/lan:",
    )
else:
    revoked = profile.get("revoked_at")
    late = found[found["detector"] == "access_still_open"] if not found.empty else found
    if len(late):
        st.error(
            f"**{len(late)} of its {len(paths)} paths to the keys stayed open after its revocation** "
            f"({charts.when(revoked)}): {', '.join(late['key'])}.",
            icon=":material/lock_open:",
        )
    elif revoked is not None:
        last = charts.when(paths["closed_at"].max())
        st.success(
            f"Every path was closed on revocation ({charts.when(revoked)}; the last at {last}).", icon=":material/lock:"
        )
    use = data.tenant_use_daily(f.start, f.end, tenant)
    st.altair_chart(charts.access_timeline(paths, use, (f.start, f.end), revoked))
    tables.show(
        paths.drop(columns=["label", "span_start", "span_end"]),
        {"evidence": st.column_config.ListColumn("Evidence (event ids)")},
        first=("path_kind", "path", "opened_at", "opened_by", "closed_at", "closed_by", "is_open"),
    )

st.subheader("Operations by type over time")
by_type = data.tenant_operations_over_time(f.start, f.end, tenant)
if by_type.empty:
    st.info("No operations in this range.")
else:
    st.altair_chart(charts.stacked_over_time(by_type, "operation", "Operation"))

st.subheader("Keys")
tables.show(
    keys.assign(key=keys["key"].fillna(data.NO_KEY)),
    {
        "operations": st.column_config.ProgressColumn(
            "Operations", format="localized", min_value=0, max_value=max(operations, 1)
        ),
        "operation_names": st.column_config.ListColumn("Operation types"),
    },
    first=("key", "source", "operations", "failures", "first_hour", "last_hour"),
)

st.subheader("Principals and source IPs")
principals = data.tenant_principals(f.start, f.end, tenant)
if not principals.empty:
    per_principal = principals.groupby("principal", dropna=False, as_index=False)["operations"].sum()
    st.altair_chart(
        alt.Chart(per_principal)
        .mark_bar()
        .encode(
            x=alt.X("operations:Q", title="Operations"),
            y=alt.Y("principal:N", sort="-x", title=None, axis=alt.Axis(labelLimit=320)),
            tooltip=["principal", alt.Tooltip("operations:Q", format=",")],
        )
        .properties(height=alt.Step(24))
    )
tables.show(principals, height=320, first=("principal", "source_ip", "operations", "failures"))


def rows_or_clean(title: str, rows: pd.DataFrame, clean: str, caption: str = "", first: tuple[str, ...] = ()) -> None:
    """A section of the tenant's rows: the table under its caption, or `clean` as a success when there are none."""
    st.subheader(title)
    if rows.empty:
        st.success(clean, icon=":material/check_circle:")
        return
    if caption:
        st.caption(caption)
    tables.show(rows, first=first)


rows_or_clean(
    "Its keys used by others",
    data.tenant_keys_used_by_others(f.start, f.end, tenant),
    "Only its own principals used its keys in this range.",
    "Calls that count for this tenant (its key or its context) made by principals that are not its own.",
    ("caller_tenant", "principal", "operations", "failures", "first_seen", "last_seen"),
)
rows_or_clean(
    "Its principals on others' keys",
    data.tenant_principals_on_others_keys(f.start, f.end, tenant),
    "Its principals used no other tenant's keys in this range.",
)
rows_or_clean(
    "Errors",
    data.tenant_errors(f.start, f.end, tenant),
    "No failed operations in this range.",
    "Failed operations that count for this tenant, with the principal that called and its tenant.",
    ("error_code", "operation", "failures", "caller_tenant", "principal", "last_seen"),
)

st.subheader("Findings")
if found.empty:
    st.success("No anomaly findings for this tenant in this range.", icon=":material/check_circle:")
else:
    tables.show(
        found.drop(columns=["evidence"]),
        {
            "tenant_id": st.column_config.TextColumn("Tenant"),
            "explanation": st.column_config.TextColumn("Explanation", width="large"),
        },
        first=("severity", "detector", "window_start", "window_end", "explanation"),
    )
    st.page_link("app_pages/anomalies.py", label="Evidence on the Anomalies page", icon=":material/arrow_forward:")
