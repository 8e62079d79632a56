"""Load SQL files by name and run them with named parameters (`$name`).

A name is a path under analytics/sql without `.sql`: `usage_hourly`, `anomalies/decrypt_spike`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb

from ingest.errors import KeytrailError

SQL_DIR = Path(__file__).resolve().parent / "sql"
PARAM = re.compile(r"(?<![$\w])\$([A-Za-z_]\w*)")
VIEWS = "kms_events, hsm_events, quarantine, tenants, key_operations, usage_hourly, usage_daily, tenant_cost"


class QueryError(KeytrailError):
    """DuckDB rejected a query (syntax, unknown table or column, bad parameter)."""

    exit_code = 2


class UnknownQuery(KeytrailError):
    """No SQL file has that name."""

    exit_code = 2


def sql_path(name: str) -> Path:
    """The file of query `name`; raises UnknownQuery listing what exists."""
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file() or SQL_DIR not in path.resolve().parents:
        folder = name.rpartition("/")[0]
        known = ", ".join(list_queries(folder)) or "none"
        raise UnknownQuery(f"no query named {name!r} in {SQL_DIR / folder}; known: {known}")
    return path


def load_sql(name: str) -> str:
    """The text of query `name`, without a trailing semicolon."""
    return sql_path(name).read_text(encoding="utf-8").strip().rstrip(";")


def list_queries(folder: str = "") -> list[str]:
    """Names of the queries in a folder of analytics/sql (`""` or `"anomalies"`), sorted."""
    base = SQL_DIR / folder
    prefix = f"{folder}/" if folder else ""
    return sorted(prefix + p.stem for p in base.glob("*.sql")) if base.is_dir() else []


def parameters(sql: str) -> list[str]:
    """The named parameters a query uses, in order of first use."""
    without_comments = re.sub(r"--[^\n]*", "", sql)
    return list(dict.fromkeys(PARAM.findall(without_comments)))


def run_query(
    con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None
) -> duckdb.DuckDBPyRelation:
    """Run query `name`; `params` may hold more names than it uses (the unused are ignored), not fewer."""
    sql = load_sql(name)
    wanted = parameters(sql)
    given = params or {}
    missing = [p for p in wanted if p not in given]
    if missing:
        raise KeytrailError(f"query {name!r} needs parameter(s) {', '.join('$' + m for m in missing)}")
    return run_sql(con, sql, {p: given[p] for p in wanted} if wanted else None, name)


def run_sql(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None, name: str = "query"
) -> duckdb.DuckDBPyRelation:
    """Run SQL text; DuckDB's errors become QueryError (a clean `Error: …` on the command line)."""
    try:
        return con.sql(sql, params=params)
    except duckdb.Error as err:
        raise QueryError(f"{name} failed: {err}\nViews you can query: {VIEWS}") from None


def literal(text: str) -> str:
    """`text` as a SQL string literal (for paths and dates that DuckDB cannot take as parameters)."""
    return "'" + text.replace("'", "''") + "'"
