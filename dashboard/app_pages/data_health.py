"""Data health: is the audit trail complete? Last ingest run per source, freshness per stream, quarantined
records with reasons, events per day (a missing day shows as a gap), and trail integrity (which KMS events rest
on trail files whose CloudTrail digest verified)."""

import streamlit as st

from dashboard import charts, data, filters, tables

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
    tables.show(runs, {"summary": st.column_config.TextColumn("Summary", width="large")})

if f.first_day is None:
    filters.require_events()

st.subheader("Freshness")
fresh = data.freshness()
stale = fresh[fresh["stale"]]
if stale.empty:
    st.success(f"Every stream delivered within the last {data.STALE_HOURS} hours.", icon=":material/check_circle:")
else:
    st.warning(
        f"{len(stale)} of {len(fresh)} stream(s) stale: nothing newer than {data.STALE_HOURS} hours (a nightly run "
        f"plus delivery delay). Stalest: `{stale.iloc[0]['account_or_cluster']} {stale.iloc[0]['region_or_hsm']}`, "
        f"{stale.iloc[0]['hours_old']:,.0f} hours old.",
        icon=":material/schedule:",
    )
st.caption(
    "Newest event per CloudTrail account and region, and per CloudHSM cluster and HSM; hours old as of when the "
    "page read the lake. Stalest first."
)
tables.show(
    fresh,
    {
        "hours_old": st.column_config.NumberColumn("Hours old", format="%.1f"),
        "stale": st.column_config.CheckboxColumn(f"Stale (> {data.STALE_HOURS} h)"),
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
        f"{len(missing)} stream-day(s) with no events at all, from a stream's first day to the lake's last day "
        f"({charts.day(per_day['day'].max())}): a lost file, a silent HSM, or a trail that stopped delivering.",
        icon=":material/warning:",
    )
    tables.show(missing)

st.subheader("Quarantined records")
reasons = data.quarantine_reasons()
if reasons.empty:
    st.success("No record was quarantined.", icon=":material/check_circle:")
else:
    tables.show(reasons, {"reason": st.column_config.TextColumn("Reason", width="large")})
    tables.show(data.quarantine_records(), {"raw": st.column_config.TextColumn("Raw record", width="large")})
    conflicts = data.conflicting_duplicates()
    if not conflicts.empty:
        st.warning(
            f"{len(conflicts)} record(s) carry an event id already taken by a different record: the first landed, "
            "these are kept here, not counted. A source reusing ids, or a forged record?",
            icon=":material/content_copy:",
        )
        tables.show(conflicts, {"raw": st.column_config.TextColumn("Raw record", width="large")})

st.subheader("Trail integrity")
summary = data.verification_summary()
if summary.empty:
    st.warning(
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
tables.show(summary)
problems = data.verification_problems(f.start, f.end)
if problems.empty:
    st.success("No integrity problem in the verified hours of this range.", icon=":material/check_circle:")
else:
    st.error(
        f"{len(problems)} integrity problem(s): altered, missing or unlisted trail files.", icon=":material/gpp_bad:"
    )
    tables.show(problems, {"detail": st.column_config.TextColumn("Detail", width="large")})
