"""`keytrail demo`: the quick start — ingest the sample logs, attribute them, open the dashboard."""

from __future__ import annotations

from pathlib import Path

import click

from analytics import connect, run_query
from keytrail.cli import cli, ingest, lake_option, reports_errors
from keytrail.output import write_relation

SAMPLE = Path(__file__).resolve().parents[2] / "sample_logs"


@cli.command(name="demo")
@lake_option
@click.option("--sample", default=str(SAMPLE), show_default=True, help="Folder of sample logs.")
@click.option("--port", default=8501, show_default=True, help="Dashboard port.")
@click.option("--no-dashboard", is_flag=True, help="Ingest and summarise only.")
@click.pass_context
@reports_errors
def demo(ctx: click.Context, lake: str, sample: str, port: int, no_dashboard: bool) -> None:
    """Ingest the sample CloudTrail and CloudHSM logs, attribute them, print usage per tenant, then open the
    dashboard (its address is the last line printed)."""
    tenants = str(Path(sample) / "tenants.toml")
    ctx.invoke(ingest.commands["cloudtrail"], source=str(Path(sample) / "cloudtrail"), lake=lake)
    ctx.invoke(ingest.commands["cloudhsm"], source=str(Path(sample) / "cloudhsm"), lake=lake)
    ctx.invoke(cli.commands["attribute"], lake=lake, tenants=tenants)
    click.echo(f"\nUsage per tenant (per key and operation: keytrail usage --lake {lake}):")
    con = connect(lake, tenants)
    write_relation(run_query(con, "usage_per_tenant"))
    con.close()
    if not no_dashboard and "dashboard" in cli.commands:
        ctx.invoke(cli.commands["dashboard"], lake=lake, tenants=tenants, port=port)
