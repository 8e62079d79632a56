"""SQL: ad hoc read-only queries over the lake's views (through analytics.sandbox); the result as a table and a CSV
download."""

import streamlit as st

from analytics import KeytrailError
from dashboard import data

EXAMPLE = """-- Views: kms_events, hsm_events, quarantine, tenants, key_operations, usage_hourly, usage_daily,
-- tenant_cost
SELECT tenant_id, operation, sum(operations) AS operations
FROM usage_daily
GROUP BY ALL
ORDER BY operations DESC
LIMIT 20"""

st.title("SQL")
st.caption(
    "One read-only statement in DuckDB SQL (SELECT, DESCRIBE, SHOW, SUMMARIZE, or EXPLAIN of a SELECT) over the "
    "lake's views and files; anything that writes, or reads outside the lake, is refused. At most 10,000 rows show."
)
with st.form("sql_form"):
    sql = st.text_area("Query", EXAMPLE, height=180, key="sql_text")
    run = st.form_submit_button("Run", type="primary", icon=":material/play_arrow:")

if run:
    try:
        st.session_state["sql_result"] = (sql, *data.run_sql(sql))
    except KeytrailError as err:
        st.session_state.pop("sql_result", None)
        st.error(str(err), icon=":material/error:")

if "sql_result" in st.session_state:
    ran, result, truncated = st.session_state["sql_result"]
    st.caption(f"{len(result):,} row{'' if len(result) == 1 else 's'}" + (" (cut off at 10,000)" if truncated else ""))
    st.dataframe(result, hide_index=True)
    st.download_button(
        "Download CSV",
        result.to_csv(index=False).encode(),
        file_name="keytrail-query.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
    )
