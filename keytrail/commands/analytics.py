"""`keytrail sql`, `keytrail usage` and `keytrail attribute`: ask the lake questions in SQL, or the common one
ready-made; store the attribution of new days so those questions stay fast."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from typing import IO, Any, TypeVar

import click

from analytics import connect, run_query
from analytics.attribute import refresh_attribution
from analytics.sandbox import run_read_only
from keytrail.cli import cli, lake_option, reports_errors, window_options
from keytrail.engine import engine_option, spark_module
from keytrail.output import (
    Output,
    announce_tenants,
    output_options,
    outside_lake,
    require_tenant,
    tenants_in_effect,
    write_relation,
)
from keytrail.progress import reporting

TENANTS_HELP = "Tenants file (default $KEYTRAIL_TENANTS, else the lake's last, else ./tenants.toml)."
F = TypeVar("F", bound=Callable[..., Any])


def tenants_options(func: F) -> F:
    """--tenants and --memory-limit, shared by every command that attributes."""
    func = click.option("--memory-limit", default="2GB", show_default=True, help="DuckDB memory limit.")(func)
    return click.option(
        "--tenants", type=click.Path(dir_okay=False), help=TENANTS_HELP
    )(func)  # fmt: skip


@cli.command(name="sql")
@click.argument("query", required=False)
@click.option(
    "-f", "--file", "query_file", type=click.File(encoding="utf-8"), help="Read the query from FILE (- for stdin)."
)
@lake_option
@tenants_options
@output_options()
@reports_errors
def sql_command(
    query: str | None, query_file: IO[str] | None, lake: str, tenants: str | None, memory_limit: str, output: Output
) -> None:
    """Run a read-only SQL query over the lake's views (key_operations, usage_daily, tenants, …) and print the
    result: QUERY, or -f FILE, or a query piped on stdin. Only SELECT (DESCRIBE, SHOW, SUMMARIZE) and EXPLAIN of
    one run; files outside the lake stay out of reach. Anything else is refused with exit 2: the lake is evidence."""
    query = query_text(query, query_file)
    output = outside_lake(output, lake)  # before the query runs
    con = connect(lake, tenants, memory_limit=memory_limit)
    tenants_in_effect(con)
    table, _ = run_read_only(con, query, surface="keytrail sql")
    write_relation(con.from_arrow(table), output)


def query_text(query: str | None, query_file: IO[str] | None) -> str:
    """The query from the argument, the file, or stdin when it is piped (`-` as QUERY reads stdin too)."""
    if query and query_file:
        raise click.UsageError("give the query as QUERY or with -f FILE, not both")
    if query_file is None and query in (None, "-"):
        stdin = sys.stdin
        if query is None and stdin.isatty():
            raise click.UsageError('give a QUERY, -f FILE, or pipe one on stdin: keytrail sql "SELECT 1"')
        query_file = stdin
    text = query_file.read() if query_file is not None else query
    if not text or not text.strip():
        raise click.UsageError("the query is empty")
    return text


@cli.command(name="usage")
@click.option("--tenant", help="Tenant id (default: every tenant, and the unattributed operations).")
@window_options("First UTC day counted (the day of this time).", "Usage before this time, by whole UTC days.")
@lake_option
@tenants_options
@output_options()
@reports_errors
def usage_command(
    tenant: str | None, since: dt.datetime | None, until: dt.datetime | None, lake: str, tenants: str | None,
    memory_limit: str, output: Output,
) -> None:  # fmt: skip
    """How much a tenant used which keys: operations, failures, first and last use per key and operation."""
    output = outside_lake(output, lake)  # before the query runs
    con = connect(lake, tenants, memory_limit=memory_limit)
    tenants_in_effect(con)
    require_tenant(con, tenant)
    last_day = until and (until - dt.timedelta(microseconds=1)).date()
    params = {"tenant": tenant, "since": since and since.date(), "until": last_day}
    write_relation(run_query(con, "tenant_usage", params), output)


@cli.command(name="attribute")
@lake_option
@tenants_options
@engine_option
@reports_errors
def attribute_command(lake: str, tenants: str | None, memory_limit: str, engine: str) -> None:
    """Attribute the lake days not yet attributed (new or changed since, or all after tenants.toml changed) and
    store their hourly usage in <lake>/_attribution/, so usage queries read it instead of every event."""
    with reporting("days attributed", "day files") as progress:
        if engine == "spark":
            report = spark_module("attribute").refresh_attribution_spark(lake, tenants, progress=progress)
        else:
            report = refresh_attribution(lake, tenants, memory_limit=memory_limit, progress=progress)
    announce_tenants(report.tenants_file, report.tenants_origin)
    click.echo(report.describe())
