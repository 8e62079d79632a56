"""keytrail analytics: DuckDB views over the Parquet lake, tenant attribution, usage rollups and SQL files.

    from analytics import connect
    con = connect("keytrail-lake")
    con.sql("SELECT * FROM usage_daily").pl()

Never imports boto3 or streamlit. `KeytrailError` (every error keytrail raises) and `DEFAULT_LAKE` are here too, so
that notebooks and the dashboard need nothing from the stages below.
"""

from analytics.connection import connect, refresh
from analytics.queries import list_queries, load_sql, run_query
from ingest.errors import KeytrailError
from ingest.lake.store import DEFAULT_LAKE

__all__ = ["DEFAULT_LAKE", "KeytrailError", "connect", "refresh", "list_queries", "load_sql", "run_query"]
