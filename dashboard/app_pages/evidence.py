"""Evidence: is the record of key use complete and untampered for the chosen period? One verdict per log stream with
its reasons, as the period report states it (share of KMS events on digest-verified trail files, unverified
files, CloudHSM sequence breaks, days a stream delivered nothing, quarantined records); a drill-down to the files
and gaps behind a verdict; and the period report itself to download."""

import streamlit as st

from dashboard import data, filters, tables

st.title("Evidence")
f = filters.require_events()
filters.caption(f)
lake, tenants = data.lake_settings()

found = data.evidence(f.start, f.end, f.tenant)
verdicts = found["completeness"]
incomplete = verdicts[verdicts["verdict"] != "complete"]
files = found["trail_files"]
events = int(files["events"].sum()) if not files.empty else 0
verified = int(files.loc[files["verification"] == "verified", "events"].sum()) if not files.empty else 0

a, b, c, d = st.columns(4)
a.metric("Streams complete", f"{len(verdicts) - len(incomplete)} of {len(verdicts)}", border=True)
VERIFIED_HELP = "KMS events of the period whose trail file's newest digest verdict is valid, signature checked."
b.metric("KMS events on verified files", f"{verified / events:.1%}" if events else "—", border=True, help=VERIFIED_HELP)
c.metric("Days without delivery", len(found["delivery_gaps"]), border=True, help="Stream-days with no event at all.")
quarantined = int(found["quarantine"]["records"].sum()) if not found["quarantine"].empty else 0
d.metric(
    "Quarantined records", f"{quarantined:,}", border=True, help="Of every period: a record set aside has no time."
)

if incomplete.empty:
    st.success("Every log stream of this period is complete.", icon=":material/verified:")
else:
    st.warning(
        f"{len(incomplete)} of {len(verdicts)} stream(s) incomplete in this period: the figures resting on them "
        "cannot be shown to be whole and unaltered. The reasons below say what to do.",
        icon=":material/gpp_maybe:",
    )
st.caption(
    "A verdict is the stream's own, whichever tenant is chosen (the same words as the period report). "
    f"*Records* counts the records of {f.tenant_label}'s operations each stream holds: those streams come first."
)
for row in verdicts.itertuples():
    badge = ":green-badge[complete]" if row.verdict == "complete" else ":red-badge[incomplete]"
    reasons = "\n".join(f"  - {reason}" for reason in row.reasons)
    st.markdown(f"- {badge} **{row.stream}** · {row.records:,} record{'s' if row.records != 1 else ''}\n{reasons}")

st.subheader("Behind a verdict")
stream = st.selectbox("Stream", list(verdicts["stream"]), key="evidence_stream")
gaps = found["delivery_gaps"].to_dict("records")
if stream.startswith("CloudTrail "):
    account, region = stream.split()[1:3]
    trail = data.evidence_files(f.start, f.end, account, region)
    st.caption(
        f"The trail files of account {account} in {region} holding KMS events of the period, problems and unverified "
        "files first. `keytrail verify cloudtrail s3://<trail-bucket>` adds verdicts."
    )
    trail.insert(0, "file", trail["trail_file"].str.rsplit("/", n=1).str[-1])
    shown = [c for c in trail.columns if c != "trail_file"] + ["trail_file"]  # the whole path last: it is long
    tables.show(trail, {"file": st.column_config.TextColumn("File", width="large")}, first=tuple(shown))
    days = [g["day"] for g in gaps if (g["source"], g["stream"], g["part"]) == ("cloudtrail", account, region)]
elif stream.startswith("CloudHSM "):
    hsm = stream.split()[1]
    breaks = found["hsm_sequence_breaks"]
    breaks = breaks[breaks["hsm_id"] == hsm] if not breaks.empty else breaks
    if breaks.empty:
        st.success(f"The audit log sequence of {hsm} is unbroken in this period.", icon=":material/check_circle:")
    else:
        st.caption(f"Breaks in {hsm}'s audit log sequence numbers: entries missing between two that arrived.")
        tables.show(breaks)
    days = [g["day"] for g in gaps if (g["source"], g["part"]) == ("cloudhsm", hsm)]
else:
    st.caption("Records kept aside with their reason (in no figure); the Data health page lists each record.")
    tables.show(found["quarantine"], {"reason": st.column_config.TextColumn("Reason", width="large")})
    days = []
if days:
    st.warning(f"No events delivered on {', '.join(days)}.", icon=":material/event_busy:")

st.subheader("Period report")
scope = f"--tenant {f.tenant} " if f.tenant else ""
command = f"keytrail report {scope}--since {f.start} --until {f.end} --lake {lake}"
st.caption(
    "The report an auditor keeps: usage, failures, cost, cross-tenant calls, findings with their review, this "
    "evidence and a manifest of the lake files behind it (`keytrail report verify` checks it later). "
    f"Same as `{command}`."
)
if f.tenant == data.UNATTRIBUTED:
    st.info("A report covers one tenant or all of them: choose a tenant, or all tenants, in the sidebar.")
elif st.button("Prepare the report", icon=":material/description:", key="evidence_prepare"):
    with st.spinner("Computing the figures, hashing the lake files and laying out the PDF …"):
        page = data.period_report(f.start, f.end, f.tenant)
        pdf = data.report_pdf(page)
    name = f"keytrail-report-{f.tenant or 'all'}-{f.start}_{f.end}"
    html_button, pdf_button = st.columns(2)
    html_button.download_button(
        "Download the report (HTML)", page, f"{name}.html", "text/html", on_click="ignore", icon=":material/download:"
    )
    pdf_button.download_button(
        "Download the report (PDF)",
        pdf,
        f"{name}.pdf",
        "application/pdf",
        on_click="ignore",
        icon=":material/download:",
    )
