"""`keytrail sql`, `keytrail usage` and `keytrail attribute`: ask the lake questions in SQL, or the common one
ready-made; store the attribution of new days so those questions stay fast."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from analytics import connect, run_query
from analytics.attribute import refresh_attribution
from analytics.sandbox import run_read_only
from keytrail.cli import cli, lake_option, reports_errors
from keytrail.output import outside_lake, require_tenant, write_relation

F = TypeVar("F", bound=Callable[..., Any])
DAY = click.DateTime(formats=["%Y-%m-%d"])


def output_options(func: F) -> F:
    """--tenants, --memory-limit and the output formats, shared by the analytics commands."""
    func = click.option(
        "--parquet", "parquet", type=click.Path(dir_okay=False, path_type=Path), help="Write a Parquet file."
    )(func)
    func = click.option("--csv", "fmt", flag_value="csv", help="CSV on stdout.")(func)
    func = click.option("--json", "fmt", flag_value="json", help="JSON lines on stdout.")(func)
    return tenants_options(func)


def tenants_options(func: F) -> F:
    """--tenants and --memory-limit, shared by every command that attributes."""
    func = click.option("--memory-limit", default="2GB", show_default=True, help="DuckDB memory limit.")(func)
    return click.option(
        "--tenants", type=click.Path(dir_okay=False), help="Tenants file (default $KEYTRAIL_TENANTS or ./tenants.toml)."
    )(func)  # fmt: skip


@cli.command(name="sql")
@click.argument("query")
@lake_option
@output_options
@reports_errors
def sql_command(
    query: str, lake: str, tenants: str | None, memory_limit: str, fmt: str | None, parquet: Path | None
) -> None:
    """Run a read-only SQL query over the lake's views (key_operations, usage_daily, tenants, …) and print the
    result. Only SELECT (DESCRIBE, SHOW, SUMMARIZE) and EXPLAIN of one run; files outside the lake stay out of
    reach. Anything else is refused with exit 2: the lake is evidence."""
    target = outside_lake(parquet, lake)
    con = connect(lake, tenants, memory_limit=memory_limit)
    table, _ = run_read_only(con, query, surface="keytrail sql")
    write_relation(con.from_arrow(table), fmt, target)


@cli.command(name="usage")
@click.option("--tenant", help="Tenant id (default: every tenant, and the unattributed operations).")
@click.option("--since", type=DAY, help="First UTC day, YYYY-MM-DD (included).")
@click.option("--until", type=DAY, help="Last UTC day, YYYY-MM-DD (included).")
@lake_option
@output_options
@reports_errors
def usage_command(
    tenant: str | None, since: dt.datetime | None, until: dt.datetime | None, lake: str, tenants: str | None,
    memory_limit: str, fmt: str | None, parquet: Path | None,
) -> None:  # fmt: skip
    """How much a tenant used which keys: operations, failures, first and last use per key and operation."""
    target = outside_lake(parquet, lake)
    con = connect(lake, tenants, memory_limit=memory_limit)
    require_tenant(con, tenant)
    params = {"tenant": tenant, "since": since and since.date(), "until": until and until.date()}
    write_relation(run_query(con, "tenant_usage", params), fmt, target)


@cli.command(name="attribute")
@lake_option
@tenants_options
@reports_errors
def attribute_command(lake: str, tenants: str | None, memory_limit: str) -> None:
    """Attribute the lake days not yet attributed (new or changed since, or all after tenants.toml changed) and
    store their hourly usage in <lake>/_attribution/, so usage queries read it instead of every event."""
    click.echo(refresh_attribution(lake, tenants, memory_limit=memory_limit).describe())
