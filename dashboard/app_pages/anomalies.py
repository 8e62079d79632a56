"""Anomalies: every finding of the detectors, filterable by severity, detector, tenant and time, each one
expandable to its explanation and the evidence events with their raw records."""

import streamlit as st

from dashboard import charts, data, filters, tables

st.title("Anomalies")
f = filters.require_events()
filters.caption(f)
report = data.rollup_report()
if report.anomaly_error:
    st.warning(f"The anomaly detectors failed, so this list may be incomplete: {report.anomaly_error}")

left, right = st.columns(2)
severities = left.multiselect("Severity", data.SEVERITIES, key="anomalies_severity", placeholder="All severities")
detectors = right.multiselect(
    "Detector", data.anomaly_detectors(), key="anomalies_detector", placeholder="All detectors"
)
found = data.anomalies(f.start, f.end, f.tenant, tuple(severities), tuple(detectors))

if found.empty:
    st.success("No findings for these filters.", icon=":material/check_circle:")
    st.stop()

counts = found["severity"].value_counts()
cols = st.columns(len(data.SEVERITIES))
for col, severity in zip(cols, data.SEVERITIES, strict=True):
    col.metric(severity.capitalize(), f"{int(counts.get(severity, 0)):,}")

tables.show(
    found.drop(columns=["evidence"]),
    {
        "window_start": st.column_config.DatetimeColumn("From", format=tables.TIMESTAMP, timezone="UTC"),
        "window_end": st.column_config.DatetimeColumn("To", format=tables.TIMESTAMP, timezone="UTC"),
        "tenant_id": st.column_config.TextColumn("Tenant"),
        "score": st.column_config.NumberColumn("Score", format="%.1f"),
        "explanation": st.column_config.TextColumn("Explanation", width="large"),
    },
    first=("severity", "detector", "tenant_id", "window_start", "window_end", "explanation"),
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
        f":{color}-badge[{finding.severity}] **{finding.detector}** · {charts.text(finding.tenant_id, 'no tenant')} · "
        f"{charts.window(finding.window_start, finding.window_end)}"
    )
    with st.expander(title):
        st.markdown(finding.explanation)
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
            for event in events.head(20).itertuples():
                st.caption(f"{event.source} · {event.event_id}")
                st.code(charts.pretty_raw(event.raw), language="json" if event.source == "cloudtrail" else None)
st.caption(f"Findings {first + 1}–{min(first + PER_PAGE, len(found))} of {len(found):,}.")
