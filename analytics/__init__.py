"""keytrail analytics: DuckDB views over the Parquet lake, tenant attribution, usage rollups and SQL files.

    from analytics import connect
    con = connect("keytrail-lake")
    con.sql("SELECT * FROM usage_daily").pl()

Never imports boto3 or streamlit.
"""

from analytics.connection import connect, refresh
from analytics.queries import list_queries, load_sql, run_query

__all__ = ["connect", "refresh", "list_queries", "load_sql", "run_query"]
