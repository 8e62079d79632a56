"""The one query path for SQL that people type: `keytrail sql`, the dashboard's SQL page and the connections
`connect()` hands to notebooks. The lake is evidence: nothing typed here may change it.

Two locks, each tested on its own (tests/test_sandbox.py):

- `lock_down(con, lake)`, applied once the views are set up: DuckDB's own sandbox. Files are reachable only under
  the lake folder (and a private spill folder), no extension is installed or loaded, and the configuration is
  locked, so neither can be undone. Measured with DuckDB 2.0.1, this refuses COPY elsewhere, read_text, glob,
  INSTALL, ATTACH and SET, but still lets `COPY … TO '<lake>/…'` write into the lake.
- `check_read_only(con, sql)`: hence the statement check. Exactly one statement; a SELECT (DESCRIBE, SHOW,
  SUMMARIZE and FROM-first are SELECTs to DuckDB) or EXPLAIN [ANALYZE] of one, judged by DuckDB's own parser;
  and no data-modifying WITH clause (DuckDB 2 runs `WITH x AS (COPY … TO …) SELECT 1`, a SELECT statement).

`run_read_only` runs a checked statement in a read-only transaction (a third, in-memory safety net).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa

from analytics.queries import VIEWS, QueryError, literal
from ingest.errors import KeytrailError
from ingest.lake.store import Lake

# Query nodes of a statement that only reads; anything else in the parse tree (COPY_QUERY_NODE,
# INSERT_QUERY_NODE, a node type a later DuckDB adds) is refused.
READ_NODES = {"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"}
ALLOWED = "only SELECT, DESCRIBE, SHOW, SUMMARIZE and EXPLAIN [ANALYZE] of a SELECT run here"
WRITES = {"COPY", "EXPORT"}
SAVE = "the lake is evidence; save a result with --csv, --json or --parquet FILE, or the SQL page's Download CSV"


class ReadOnlyViolation(KeytrailError):
    """A statement typed into keytrail tried to do more than read the lake's views."""

    exit_code = 2


def lock_down(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """DuckDB's sandbox on `con`, for good: files only under the lake folder (an S3 lake is read by pyarrow, so
    none), spill files in a private folder of $TMPDIR that DuckDB removes at close, no extensions, configuration
    locked."""
    spill = os.path.join(tempfile.gettempdir(), f"keytrail-duckdb-{secrets.token_hex(8)}")
    folders = [] if lake.remote else [os.path.join(os.path.abspath(lake.root), "")]
    con.execute(f"SET temp_directory = {literal(spill)}")  # else ./.tmp, which DuckDB would allow as well
    con.execute(f"SET allowed_directories = [{', '.join(literal(f) for f in folders)}]")
    for setting in ("enable_external_access", "autoinstall_known_extensions", "autoload_known_extensions"):
        con.execute(f"SET {setting} = false")
    con.execute("SET lock_configuration = true")


def is_locked(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether `con` went through `lock_down`."""
    return bool(con.sql("SELECT current_setting('lock_configuration')").fetchall()[0][0])


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str, surface: str = "keytrail") -> None:
    """Raise ReadOnlyViolation, one line naming `surface` and what is not allowed, unless `sql` is exactly one
    read statement."""
    statements = _parse(con, sql)
    reason = _refusal(con, statements[0]) if len(statements) == 1 else None
    if len(statements) != 1:
        reason = f"{len(statements)} statements given; run one statement at a time"
    if reason:
        raise ReadOnlyViolation(f"{surface} runs read-only queries: {reason}")


def _parse(con: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    try:
        return list(con.extract_statements(sql))
    except duckdb.Error as err:
        raise QueryError(f"the query does not parse: {err}") from None


def _refusal(con: duckdb.DuckDBPyConnection, statement: Any) -> str | None:
    """Why `statement` may not run, or None for a read."""
    kind = statement.type.name
    if kind == "EXPLAIN":
        inner = _parse(con, explained(statement.query))
        reason = _refusal(con, inner[0]) if len(inner) == 1 else "EXPLAIN of nothing"
        return reason and f"EXPLAIN of {reason}"
    if kind != "SELECT":
        return _not_allowed(kind)
    return _writing_clause(con, statement.query)


def _not_allowed(kind: str) -> str:
    return f"{kind} is not allowed ({SAVE if kind in WRITES else ALLOWED})"


def explained(sql: str) -> str:
    """The statement an EXPLAIN statement explains: its text after EXPLAIN, ANALYZE and an option list."""
    tokens = duckdb.tokenize(sql)
    ends = [pos for pos, _ in tokens[1:]] + [len(sql)]
    words = [
        (pos, sql[pos:end].strip().upper())
        for (pos, kind), end in zip(tokens, ends, strict=True)
        if kind != duckdb.token_type.comment
    ]  # noqa: E501
    rest = words[1:]  # words[0] is EXPLAIN
    if rest and rest[0][1] == "ANALYZE":
        rest = rest[1:]
    depth = 0
    while rest and (depth or rest[0][1] == "("):  # an option list: (FORMAT json)
        depth += (rest[0][1] == "(") - (rest[0][1] == ")")
        rest = rest[1:]
    return sql[rest[0][0] :] if rest else ""


def _writing_clause(con: duckdb.DuckDBPyConnection, sql: str) -> str | None:
    """A refusal if the parse tree of SELECT `sql` holds anything but read nodes (a WITH clause that runs
    COPY, INSERT, UPDATE or DELETE); DuckDB serialises SELECT statements only, and what it cannot, we refuse."""
    tree = json.loads(con.execute("SELECT json_serialize_sql($sql)", {"sql": sql}).fetchall()[0][0])
    if tree.get("error"):
        return f"this statement cannot be checked ({tree.get('error_message')}); write it as a plain SELECT"
    found = sorted(_node_types(tree) - READ_NODES)
    if not found:
        return None
    kind = found[0].removesuffix("_NODE").removesuffix("_QUERY")
    return f"a WITH clause running {_not_allowed(kind)}"


def _node_types(tree: Any) -> set[str]:
    """Every query-node type (`…_NODE`) anywhere in a serialised parse tree."""
    if isinstance(tree, list):
        return set().union(*map(_node_types, tree)) if tree else set()
    if not isinstance(tree, dict):
        return set()
    own = {tree["type"]} if isinstance(tree.get("type"), str) and tree["type"].endswith("_NODE") else set()
    return own.union(*map(_node_types, tree.values()))


def run_read_only(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    surface: str = "keytrail",
    limit: int | None = None,
    timeout: float | None = None,
) -> tuple[pa.Table, bool]:
    """Check `sql` (ReadOnlyViolation), then run it in a read-only transaction on `con`, which must have gone
    through `lock_down`; returns up to `limit` rows (all without) and whether more were cut off. A query still
    running after `timeout` seconds is interrupted (QueryError)."""
    if not is_locked(con):
        raise ReadOnlyViolation(f"{surface} runs typed SQL only on a read-only connection (connect(read_only=True))")
    check_read_only(con, sql, surface)
    try:
        with _read_only_transaction(con, timeout):
            return _fetch(con, sql, limit)
    except duckdb.InterruptException:
        raise QueryError(f"the query ran longer than {timeout:.0f} s and was stopped") from None
    except duckdb.PermissionException as err:  # a file outside the lake, an extension
        reason = f"{err} (only the lake's files can be read)"
        raise ReadOnlyViolation(f"{surface} runs read-only queries: {reason}") from None
    except duckdb.Error as err:
        raise QueryError(f"query failed: {err}\nViews you can query: {VIEWS}") from None


@contextlib.contextmanager
def _read_only_transaction(con: duckdb.DuckDBPyConnection, timeout: float | None) -> Iterator[None]:
    """A read-only transaction, rolled back after; `con.interrupt()` after `timeout` seconds."""
    timer = threading.Timer(timeout, con.interrupt) if timeout else None
    if timer:
        timer.start()
    con.execute("BEGIN TRANSACTION READ ONLY")
    try:
        yield
    finally:
        if timer:
            timer.cancel()
        con.execute("ROLLBACK")


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, limit: int | None) -> tuple[pa.Table, bool]:
    """Up to `limit` rows (batch by batch, so a huge result is never read whole) and whether more were cut off."""
    if limit is None:
        return con.sql(sql).to_arrow_table(), False
    reader = con.sql(sql).to_arrow_reader(batch_size=min(limit + 1, 100_000))
    batches, rows = [], 0
    for batch in reader:
        batches.append(batch)
        rows += batch.num_rows
        if rows > limit:
            break
    table = pa.Table.from_batches(batches, reader.schema)
    return table.slice(0, limit), table.num_rows > limit
