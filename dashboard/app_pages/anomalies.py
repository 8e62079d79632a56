"""Anomalies: every finding of the detectors with its triage status, filterable by severity, detector, status,
tenant and time, each one expandable to its explanation, the evidence events with their raw records, its triage
history and (for a logged-in user, or anyone on a dashboard serving this machine only) a review form."""

import streamlit as st

from analytics import KeytrailError
from dashboard import access, charts, data, filters, tables

STATUS_LABELS = {
    "open": "Open",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
    "false_positive": "False positive",
}
STATUS_COLORS = {"open": "blue", "acknowledged": "violet", "resolved": "green", "false_positive": "gray"}


def new_since_last_run() -> None:
    """How many open findings the last nightly run brought up."""
    news = data.new_findings()
    if news["run"] is None:
        st.caption("No nightly run recorded in this lake yet: every open finding is new.")
    else:
        started = str(news["run"].get("started_at", "?"))[:16].replace("T", " ")
        st.caption(f"**{news['new']:,}** open finding(s) new since the last nightly run (started {started} UTC).")


def save_review(finding: dict, who: str) -> None:
    """The Save button's callback (it runs before the rerun, so it may empty the note it saved)."""
    key = finding["finding_id"]
    status = st.session_state[f"triage_status_{key}"]
    try:
        data.record_triage(finding, status, st.session_state[f"triage_note_{key}"], who)
    except KeytrailError as err:
        st.session_state[f"triage_error_{key}"] = str(err)
        return
    st.session_state[f"triage_note_{key}"] = ""
    st.toast(f"Finding {key} is now {STATUS_LABELS[status].lower()} (by {who}).", icon=":material/check:")


def triage_form(finding: dict, who: str | None) -> None:
    """The finding's triage history and, for someone who may triage, a status, a note and a Save button."""
    key = finding["finding_id"]
    past = data.finding_history(key)
    if not past.empty:
        st.dataframe(
            past.drop(columns=["action_id"]).assign(status=past["status"].map(STATUS_LABELS)),
            hide_index=True,
            column_config={
                "acted_at": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm:ss"),
                "status": st.column_config.TextColumn("Status"),
                "who": st.column_config.TextColumn("Who"),
                "note": st.column_config.TextColumn("Note", width="large"),
            },
        )
    if who is None:
        st.caption("Log in to review this finding (this dashboard serves other machines without a login).")
        return
    choices = [s for s in data.STATUSES if s != finding["status"]]
    left, right = st.columns([1, 3])
    left.selectbox("New status", choices, format_func=STATUS_LABELS.__getitem__, key=f"triage_status_{key}")
    right.text_input("Note", key=f"triage_note_{key}", placeholder="Why (required to resolve or dismiss)")
    if error := st.session_state.pop(f"triage_error_{key}", None):
        st.error(error)
    icon = ":material/rate_review:"
    st.button("Save review", key=f"triage_save_{key}", icon=icon, on_click=save_review, args=(finding, who))


st.title("Anomalies")
f = filters.require_events()
filters.caption(f)
report = data.rollup_report()
if report.anomaly_error:
    st.warning(f"The anomaly detectors failed, so this list may be incomplete: {report.anomaly_error}")

new_since_last_run()
left, middle, right = st.columns(3)
severities = left.multiselect("Severity", data.SEVERITIES, key="anomalies_severity", placeholder="All severities")
detectors = middle.multiselect(
    "Detector", data.anomaly_detectors(), key="anomalies_detector", placeholder="All detectors"
)
statuses = right.multiselect(
    "Status", data.STATUSES, format_func=STATUS_LABELS.__getitem__, key="anomalies_status", placeholder="All statuses"
)
found = data.anomalies(f.start, f.end, f.tenant, tuple(severities), tuple(detectors), tuple(statuses))
who = access.triage_identity()

if found.empty:
    st.success("No findings for these filters.", icon=":material/check_circle:")
    st.stop()

counts = found["severity"].value_counts()
cols = st.columns(len(data.SEVERITIES))
for col, severity in zip(cols, data.SEVERITIES, strict=True):
    col.metric(severity.capitalize(), f"{int(counts.get(severity, 0)):,}")

shown = found.drop(columns=["evidence", "finding_id", "status_note", "status_by", "status_at"])
shown["status"] = shown["status"].map(STATUS_LABELS)
tables.show(
    shown,
    {
        "status": st.column_config.TextColumn("Status", width="medium"),
        "window_start": st.column_config.DatetimeColumn("From", format=tables.TIMESTAMP, timezone="UTC"),
        "window_end": st.column_config.DatetimeColumn("To", format=tables.TIMESTAMP, timezone="UTC"),
        "tenant_id": st.column_config.TextColumn("Tenant"),
        "score": st.column_config.NumberColumn("Score", format="%.1f"),
        "explanation": st.column_config.TextColumn("Explanation", width="large"),
    },
    first=("severity", "detector", "status", "tenant_id", "window_start", "window_end", "explanation"),
)
st.caption("Click a column header to sort. Details and evidence below, in the same order as the filters give.")

order = st.segmented_control(
    "Order", ["Severity", "Newest", "Score"], default="Severity", key="anomalies_order", label_visibility="collapsed"
)
if order == "Newest":
    found = found.sort_values("window_start", ascending=False)
elif order == "Score":
    found = found.sort_values("score", ascending=False)

PER_PAGE = 20  # expanders are heavy for the browser: a page of them at a time
pages = (len(found) - 1) // PER_PAGE + 1
number = 1
if st.session_state.get("anomalies_page_number", 1) > pages:  # the filters left fewer pages
    st.session_state["anomalies_page_number"] = 1
if pages > 1:
    number = int(st.number_input(f"Page of {PER_PAGE} (of {pages})", 1, pages, 1, key="anomalies_page_number"))
first = (number - 1) * PER_PAGE
for i, finding in enumerate(found.iloc[first : first + PER_PAGE].itertuples(), start=first):
    color = {"critical": "red", "high": "orange", "medium": "yellow", "low": "blue"}.get(finding.severity, "gray")
    title = (
        f":{color}-badge[{finding.severity}] :{STATUS_COLORS[finding.status]}-badge[{STATUS_LABELS[finding.status]}] "
        f"**{finding.detector}** · {charts.text(finding.tenant_id, 'no tenant')} · "
        f"{charts.window(finding.window_start, finding.window_end)}"
    )
    with st.expander(title):
        st.markdown(finding.explanation)
        st.caption(f"Finding id `{finding.finding_id}`")
        st.markdown(
            f"- **Key:** `{charts.text(finding.key)}`\n- **Principal:** `{charts.text(finding.principal)}`\n"
            f"- **Observed / expected:** {charts.number(finding.observed)} / {charts.number(finding.expected)}"
            f" · **score** {charts.number(finding.score)}"
        )
        ids = tuple(finding.evidence) if finding.evidence is not None else ()
        if not ids:
            st.caption("No evidence events (e.g. a gap or a silence: the finding is about events that are missing).")
        elif st.toggle(f"Show the {len(ids)} evidence events", key=f"anomalies_evidence_{i}"):
            events = data.evidence_events(ids, finding.window_start, finding.window_end)
            tables.show(events.drop(columns=["raw"]))
            for event in events.head(20).to_dict("records"):
                tables.source_record(event, data.original_record)
        triage_form(found.iloc[i].to_dict(), who)
st.caption(f"Findings {first + 1}–{min(first + PER_PAGE, len(found))} of {len(found):,}.")
