"""keytrail compliance dashboard: router and frame (page config, shared sidebar filters, navigation).

Run it with `keytrail dashboard --lake DIR --tenants FILE`, which sets $KEYTRAIL_LAKE and $KEYTRAIL_TENANTS and
starts `streamlit run` on this file. Pages live in app_pages/ and read data only through dashboard/data.py.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from analytics import KeytrailError
from dashboard import access, data, filters

ICON = Path(__file__).resolve().parent / "static" / "favicon.svg"

st.set_page_config(page_title="keytrail", page_icon=str(ICON), layout="wide")  # served here, not by a font host
access.require_viewer()  # a login button, or a refusal, until this viewer may see the data

pages = {
    "Usage": [
        st.Page("app_pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("app_pages/tenants.py", title="Tenants", icon=":material/groups:"),
        st.Page("app_pages/keys.py", title="Keys", icon=":material/key:"),
    ],
    "Findings": [
        st.Page("app_pages/anomalies.py", title="Anomalies", icon=":material/warning:"),
        st.Page("app_pages/cloudhsm.py", title="CloudHSM", icon=":material/memory:"),
    ],
    "Lake": [
        st.Page("app_pages/evidence.py", title="Evidence", icon=":material/verified_user:"),
        st.Page("app_pages/data_health.py", title="Data health", icon=":material/health_and_safety:"),
        st.Page("app_pages/sql.py", title="SQL", icon=":material/terminal:"),
    ],
}
page = st.navigation(pages)

lake, tenants = data.lake_settings()
try:
    filters.sidebar()
    report = data.rollup_report()
except KeytrailError as err:  # a bad tenants file, an unreadable lake: say what and how to fix it
    st.error(f"**keytrail cannot open the lake `{lake}`**\n\n{err}", icon=":material/error:")
    st.stop()
except Exception as err:  # anything else: still a readable page, with the details one click away
    st.error(f"**keytrail cannot open the lake `{lake}`:** {type(err).__name__}: {err}", icon=":material/error:")
    with st.expander("Details"):
        st.exception(err)
    st.stop()

with st.sidebar:
    st.divider()
    st.caption(f"Lake `{lake}`" + (f" · tenants `{tenants}`" if tenants else " · no tenants file"))
    if report.status == "computed":
        st.caption(
            f"Rollups computed in memory ({report.seconds:.1f} s); `keytrail rollups --lake {lake}` "
            "writes them for a faster start."
        )
    if st.button("Reload data", icon=":material/refresh:", help="Read the lake again after an ingest."):
        data.clear()
        st.rerun()

page.run()
