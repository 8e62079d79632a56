"""Data health: is the audit trail complete? Last ingest run per source, freshness per stream, quarantined
records with reasons, events per day (a missing day shows as a gap), and trail integrity (which KMS events rest
on trail files whose CloudTrail digest verified)."""

import streamlit as st

from dashboard import charts, data, filters

st.title("Data health")
lake, _ = data.lake_settings()
f = filters.current()

st.subheader("Last ingest runs")
runs = data.ingest_runs(lake)
if runs.empty:
    st.info(f"No ingest has run against `{lake}` yet: `keytrail ingest cloudtrail …` or `keytrail demo`.")
else:
    failed = runs[runs["status"].isin(["failed", "running"])]
    if not failed.empty:
        st.warning(f"{len(failed)} source(s) whose last run did not finish cleanly.", icon=":material/warning:")
    st.dataframe(runs, hide_index=True, column_config={"summary": st.column_config.TextColumn(width="large")})

if f.first_day is None:
    filters.require_events()

st.subheader("Freshness")
fresh = data.freshness()
st.caption("Newest event per CloudTrail account and region, and per CloudHSM cluster and HSM. Stalest first.")
st.dataframe(
    fresh,
    hide_index=True,
    column_config={
        "newest_event": st.column_config.DatetimeColumn("Newest event (UTC)", format="YYYY-MM-DD HH:mm"),
        "hours_old": st.column_config.NumberColumn("Hours old", format="%.1f"),
        "events": st.column_config.NumberColumn("Events", format="localized"),
    },
)

st.subheader("Events per day")
per_day = data.events_per_day()
st.altair_chart(charts.daily_bars(per_day, "day", "source", "events", "Events"))
st.caption("Per stream and day (red: no events that day):")
st.altair_chart(charts.stream_heatmap(data.stream_days()))
missing = data.stream_days_missing()
if missing.empty:
    st.success("Every stream has events on every day of its span.", icon=":material/check_circle:")
else:
    st.warning(
        f"{len(missing)} stream-day(s) with no events at all inside the stream's span:", icon=":material/warning:"
    )
    st.dataframe(missing, hide_index=True)

st.subheader("Quarantined records")
reasons = data.quarantine_reasons()
if reasons.empty:
    st.success("No record was quarantined.", icon=":material/check_circle:")
else:
    st.dataframe(reasons, hide_index=True)
    st.dataframe(
        data.quarantine_records(),
        hide_index=True,
        column_config={"raw": st.column_config.TextColumn("Raw record", width="large")},
    )
    conflicts = data.conflicting_duplicates()
    if not conflicts.empty:
        st.warning(
            f"{len(conflicts)} record(s) carry an event id already taken by a different record: the first landed, "
            "these are kept here, not counted. A source reusing ids, or a forged record?",
            icon=":material/content_copy:",
        )
        st.dataframe(conflicts, hide_index=True, column_config={"raw": st.column_config.TextColumn(width="large")})

st.subheader("Trail integrity")
summary = data.verification_summary()
if summary.empty:
    st.info(
        "No CloudTrail digest verification yet: `keytrail verify cloudtrail s3://<trail-bucket>` (or `verify = true` "
        "on a `[[cloudtrail]]` source of the nightly job) checks every digest's signature and every log file's "
        "SHA-256, so you can tell which KMS events rest on files nobody altered or removed.",
        icon=":material/verified_user:",
    )
    st.stop()
events = data.verified_events(f.start, f.end)
by_kind = events.groupby("verification")["events"].sum()
cols = st.columns(3)
cols[0].metric("KMS events on verified files", charts.number(by_kind.get("verified", 0)))
cols[1].metric("On files with a problem", charts.number(by_kind.get("problem", 0)))
cols[2].metric(
    "Not verified, or hash only", charts.number(by_kind.get("not verified", 0) + by_kind.get("hash only", 0))
)
st.altair_chart(charts.daily_bars(events, "day", "verification", "events", "KMS events"))
st.caption("Per account and region (newest verdicts; `keytrail verify cloudtrail` adds to them):")
st.dataframe(summary, hide_index=True)
problems = data.verification_problems(f.start, f.end)
if problems.empty:
    st.success("No integrity problem in the verified hours of this range.", icon=":material/check_circle:")
else:
    st.error(
        f"{len(problems)} integrity problem(s): altered, missing or unlisted trail files.", icon=":material/gpp_bad:"
    )
    st.dataframe(problems, hide_index=True, column_config={"detail": st.column_config.TextColumn(width="large")})
