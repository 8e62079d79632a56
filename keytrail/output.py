"""Write a query result for people (an aligned table) or machines (JSON lines, CSV, Parquet)."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import click
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


def announce_tenants(file: str | None, origin: str) -> None:
    """Say on stderr which tenants file attributes this command's figures, and warn when none does."""
    if file:
        click.echo(f"Tenants: {file} ({origin})", err=True)
    else:
        click.secho(
            "Warning: no tenants file (no --tenants, $KEYTRAIL_TENANTS, file remembered by the lake or "
            "./tenants.toml): no operation is attributed to a tenant.",
            fg="yellow",
            err=True,
        )


def tenants_in_effect(con: duckdb.DuckDBPyConnection) -> None:
    """announce_tenants for a connection made by `analytics.connect`."""
    announce_tenants(*con.sql("SELECT tenants_file, tenants_origin FROM settings").fetchall()[0])


def outside_lake(output: Output, lake: str) -> Output:
    """`output`, unless the file it writes lies inside the lake folder: the lake is evidence, and keytrail writes
    nothing there on a user's say-so (ConfigError, exit 2)."""
    if output.file is not None:
        refuse_inside_lake(output.file, lake, "--parquet")
    return output


def refuse_inside_lake(target: Path, lake: str, flag: str) -> None:
    """ConfigError (exit 2) if the file `flag` names lies inside the lake folder: the lake is evidence."""
    if not Lake.is_remote(lake) and Path(lake).resolve() in [target.resolve(), *target.resolve().parents]:
        raise ConfigError(f"{flag} {target} is inside the lake {lake}: the lake is evidence; write it elsewhere")


FORMATS = ("table", "json", "csv", "parquet")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Output:
    """How a command prints its rows: `fmt` table (aligned, fitted to the terminal), json (one object per line),
    csv, or parquet into `file`."""

    fmt: str = "table"
    file: Path | None = None


def output_options(formats: tuple[str, ...] = FORMATS) -> Callable[[F], F]:
    """-o/--output FORMAT (the AWS CLI's way), with --json, --csv and --parquet FILE as shorthands; the command
    receives one `output: Output`. Two formats at once are refused (exit 2)."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def resolved(*args: Any, **kwargs: Any) -> Any:
            kwargs["output"] = _output(kwargs.pop("output"), kwargs.pop("as_json"), kwargs.pop("as_csv", False),
                                       kwargs.pop("parquet", None))  # fmt: skip
            return func(*args, **kwargs)

        if "parquet" in formats:
            resolved = click.option("--parquet", type=click.Path(dir_okay=False, path_type=Path),
                                    help="Write the rows to this Parquet file (-o parquet).")(resolved)  # fmt: skip
        if "csv" in formats:
            resolved = click.option("--csv", "as_csv", is_flag=True, help="Same as -o csv.")(resolved)
        resolved = click.option("--json", "as_json", is_flag=True, help="Same as -o json.")(resolved)
        choice = click.Choice(formats)
        return click.option("-o", "--output", type=choice, help="Output format (default: table).")(resolved)  # type: ignore[return-value]

    return decorate


def _output(fmt: str | None, as_json: bool, as_csv: bool, parquet: Path | None) -> Output:
    chosen = {f for f, given in (("json", as_json), ("csv", as_csv), ("parquet", parquet)) if given}
    if fmt:
        chosen.add(fmt)
    if len(chosen) > 1:
        raise click.UsageError(f"choose one output format, not {' and '.join(sorted(chosen))}")
    if chosen == {"parquet"} and parquet is None:
        raise click.UsageError("-o parquet writes a file: give it with --parquet FILE")
    return Output(chosen.pop() if chosen else "table", parquet)


def write_relation(rel: duckdb.DuckDBPyRelation, output: Output = Output(), out: IO[str] | None = None) -> int:
    """Run `rel` once and write its rows as `output` says; returns the row count."""
    return write_table(rel.to_arrow_table(), output, out)


def write_table(table: pa.Table, output: Output = Output(), out: IO[str] | None = None) -> int:
    """Write rows as `output` says: whole numbers as integers, times as ISO 8601 UTC, booleans as true/false."""
    table = _whole_numbers(table)
    out = out or sys.stdout
    if output.fmt == "parquet" and output.file is not None:
        pq.write_table(table, output.file, compression="zstd")
        print(f"Wrote {table.num_rows} rows to {output.file}", file=sys.stderr)
    elif output.fmt == "json":
        for row in table.to_pylist():
            out.write(json.dumps({k: _plain(v) for k, v in row.items()}, default=_jsonable) + "\n")
    elif output.fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(table.column_names)
        writer.writerows([_text(v) for v in row.values()] for row in table.to_pylist())
    else:
        out.write(format_table(table, terminal_width(out)))
    return int(table.num_rows)


def terminal_width(out: IO[str]) -> int | None:
    """The terminal's width when `out` is one (tables are fitted to it); None for a pipe or a file."""
    return shutil.get_terminal_size().columns if out.isatty() else None


def _whole_numbers(table: pa.Table) -> pa.Table:
    """DuckDB's sums are HUGEINT, which Arrow carries as DECIMAL(38, 0): give them back as 64-bit integers."""
    for i, f in enumerate(table.schema):
        if pa.types.is_decimal(f.type) and f.type.scale == 0:
            table = table.set_column(i, f.name, table.column(i).cast(pa.int64()))
    return table


def format_table(table: pa.Table, width: int | None = None) -> str:
    """An aligned text table with a header rule and a row count, numbers right-aligned; with `width`, the widest
    columns are narrowed to fit it, long values cut in the middle (an ARN keeps its start and its key id)."""
    names = table.column_names
    rows = [[_text(v) for v in row.values()] for row in table.to_pylist()]
    widths = _fit([max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)], width)
    numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) for f in table.schema]
    lines = ["  ".join(_cut(n, w).ljust(w) for n, w in zip(names, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        cells = (
            _cut(v, w).rjust(w) if num else _cut(v, w).ljust(w) for v, w, num in zip(row, widths, numeric, strict=True)
        )
        lines.append("  ".join(cells).rstrip())
    lines.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(lines) + "\n"


NARROWEST = 12  # no column is cut narrower than this


def _fit(widths: list[int], width: int | None) -> list[int]:
    """Column widths narrowed, widest first, until the row (two spaces between columns) fits `width`."""
    widths = list(widths)
    while width and sum(widths) + 2 * (len(widths) - 1) > width:
        widest = max(range(len(widths)), key=widths.__getitem__)
        if widths[widest] <= NARROWEST:
            break
        widths[widest] -= 1
    return widths


def _cut(text: str, width: int) -> str:
    """`text` in `width` characters: the middle replaced by an ellipsis when it is longer."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def _text(value: Any) -> str:
    """A cell as text: empty for NULL, ISO 8601 for times, JSON for lists and maps."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        return iso(value)
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
    return iso(value) if isinstance(value, dt.datetime | dt.date) else str(value)


def iso(value: dt.datetime | dt.date) -> str:
    """ISO 8601; an aware time in UTC with a Z, as CloudTrail writes times."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()
