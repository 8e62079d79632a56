"""Write a query result for people (an aligned table) or machines (JSON lines, CSV, Parquet)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.errors import ConfigError
from ingest.lake.store import Lake


def require_tenant(con: duckdb.DuckDBPyConnection, tenant: str | None) -> None:
    """Raise ConfigError if `tenant` is given but not in the tenants file, listing the known ones."""
    if tenant is None:
        return
    known = [r[0] for r in con.sql("SELECT tenant_id FROM tenants ORDER BY position").fetchall()]
    if tenant not in known:
        where = con.sql("SELECT tenants_file FROM settings").fetchall()[0][0] or "no tenants file"
        raise ConfigError(f"unknown tenant {tenant!r} in {where}; known tenants: {', '.join(known) or 'none'}")


def outside_lake(target: Path | None, lake: str) -> Path | None:
    """`target` (an output file a user named), unless it lies inside the lake folder: the lake is evidence, and
    keytrail writes nothing there on a user's say-so (ConfigError, exit 2)."""
    if target is None or Lake.is_remote(lake):
        return target
    if Path(lake).resolve() in [target.resolve(), *target.resolve().parents]:
        raise ConfigError(f"--parquet {target} is inside the lake {lake}: the lake is evidence; write it elsewhere")
    return target


def write_relation(
    rel: duckdb.DuckDBPyRelation, fmt: str | None, parquet: Path | None, out: IO[str] | None = None
) -> int:
    """Run `rel` once and write it as `fmt` (table, json, csv) or to a Parquet file; returns the row count."""
    table = rel.to_arrow_table()
    out = out or sys.stdout
    if parquet is not None:
        pq.write_table(table, parquet, compression="zstd")
        print(f"Wrote {table.num_rows} rows to {parquet}", file=sys.stderr)
    elif fmt == "json":
        for row in table.to_pylist():
            out.write(json.dumps({k: _plain(v) for k, v in row.items()}, default=_jsonable) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(table.column_names)
        writer.writerows([_text(v) for v in row.values()] for row in table.to_pylist())
    else:
        out.write(format_table(table))
    return int(table.num_rows)


def format_table(table: pa.Table) -> str:
    """An aligned text table with a header rule and a row count, numbers right-aligned."""
    names = table.column_names
    rows = [[_text(v) for v in row.values()] for row in table.to_pylist()]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) for f in table.schema]
    lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        cells = (v.rjust(w) if num else v.ljust(w) for v, w, num in zip(row, widths, numeric, strict=True))
        lines.append("  ".join(cells).rstrip())
    lines.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(lines) + "\n"


def _text(value: Any) -> str:
    """A cell as text: empty for NULL, ISO 8601 for times, JSON for lists and maps."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(_plain(value), default=_jsonable)
    return str(value)


def _plain(value: Any) -> Any:
    """Arrow hands a MAP over as a list of (key, value) tuples: make it a dict."""
    if isinstance(value, list) and value and all(isinstance(x, tuple) and len(x) == 2 for x in value):
        return dict(value)
    return value


def _jsonable(value: Any) -> Any:
    """JSON for what json cannot encode itself: times as ISO 8601, the rest as text."""
    return value.isoformat() if isinstance(value, dt.datetime | dt.date) else str(value)
