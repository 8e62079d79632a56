"""`keytrail report`: the period report an auditor keeps (one self-contained HTML file, optionally its PDF), and
`keytrail report verify`, which recomputes a report's figures and hashes from the lake."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from analytics import connect
from analytics.report import Scope, build, compute, differences, embedded, month_scope
from ingest.errors import ConfigError
from ingest.lake.store import Lake
from keytrail.cli import cli, lake_option, reports_errors, window_options
from keytrail.output import refuse_inside_lake, require_tenant, tenants_in_effect


def report_scope(tenant: str | None, period: str | None, since: dt.datetime | None, until: dt.datetime | None) -> Scope:
    """The scope from --period (a month) or --since and --until (both needed: a report covers a closed period)."""
    if period and (since or until):
        raise ConfigError("give --period or --since/--until, not both")
    if period:
        return month_scope(tenant, period)
    if not (since and until):
        raise ConfigError("a report needs a closed period: --period YYYY-MM, or both --since and --until")
    return Scope(tenant, since, until)


@cli.group(name="report", invoke_without_command=True)
@window_options("Period start.", "Period end (excluded).")
@click.option("--period", help="A calendar month, YYYY-MM (UTC).")
@click.option("--tenant", help="Only this tenant (default: every tenant).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="HTML file to write.")
@click.option("--pdf/--no-pdf", default=True, help="Also write the PDF next to the HTML file (same name, .pdf).")
@click.option("--tenants", type=click.Path(dir_okay=False), help="Tenants file (default $KEYTRAIL_TENANTS).")
@lake_option
@click.pass_context
@reports_errors
def report_command(
    ctx: click.Context, since: dt.datetime | None, until: dt.datetime | None, period: str | None,
    tenant: str | None, out: Path | None, pdf: bool, tenants: str | None, lake: str,
) -> None:  # fmt: skip
    """Write the period report: scope, usage, failures, cost, cross-tenant calls, calls outside the access window,
    findings, evidence completeness, method and a manifest of the lake files (SHA-256) behind it.

    Default file: keytrail-report-TENANT-PERIOD.html. `keytrail report verify FILE` checks it later."""
    if ctx.invoked_subcommand:
        return
    from analytics.report_html import pdf_of, render  # Altair and vl-convert: only when a report is written

    scope = report_scope(tenant, period, since, until)
    target = out or Path(f"keytrail-report-{tenant or 'all'}-{scope.label}.html")
    refuse_inside_lake(target, lake, "--out")
    con = connect(lake, tenants)
    tenants_in_effect(con)
    require_tenant(con, tenant)
    page = render(build(con, Lake(lake), scope))
    target.write_text(page, encoding="utf-8")
    click.echo(f"Wrote {target}", err=True)
    if pdf:
        target.with_suffix(".pdf").write_bytes(pdf_of(page, str(target)))
        click.echo(f"Wrote {target.with_suffix('.pdf')}", err=True)


@report_command.command(name="verify")
@click.argument("report", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenants", type=click.Path(dir_okay=False), help="Tenants file (default: the one the report names).")
@lake_option
@reports_errors
def verify_report(report: Path, tenants: str | None, lake: str) -> None:
    """Recompute REPORT's figures and lake-file hashes from the lake: exit 0 when they all match, 1 listing what
    differs."""
    kept = embedded(report.read_text(encoding="utf-8"), str(report))
    con = connect(lake, tenants or kept["about"]["tenants_file"])
    found = differences(kept, compute(con, Lake(lake), Scope.from_json(kept["scope"])))
    for line in found:
        click.echo(line)
    click.echo(f"{report}: {'does not match' if found else 'matches'} the lake {lake}", err=True)
    sys.exit(1 if found else 0)
