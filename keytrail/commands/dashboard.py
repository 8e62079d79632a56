"""`keytrail dashboard` and `keytrail rollups`: the compliance dashboard (Streamlit) and the rollups it reads."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from analytics.rollups import describe, refresh_rollups
from ingest.errors import LockedError
from keytrail.cli import cli, lake_option, reports_errors

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
TENANTS_HELP = "Tenants file (default $KEYTRAIL_TENANTS or ./tenants.toml)."


def streamlit_command(port: int, host: str) -> list[str]:
    """`streamlit run dashboard/app.py`, headless (no browser, no usage-statistics prompt)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port), "--server.address", host, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer",
    ]  # fmt: skip


def dashboard_env(lake: str, tenants: str | None) -> dict[str, str]:
    """The environment the app reads its lake and tenants file from (absolute paths: streamlit may chdir)."""
    env = dict(os.environ, KEYTRAIL_LAKE=str(Path(lake).resolve()))
    if tenants:
        env["KEYTRAIL_TENANTS"] = str(Path(tenants).resolve())
    return env


def has_events(lake: str) -> bool:
    return any(any((Path(lake) / t).rglob("*.parquet")) for t in ("kms_events", "hsm_events"))


@cli.command(name="dashboard")
@lake_option
@click.option("--tenants", type=click.Path(dir_okay=False), help=TENANTS_HELP)
@click.option("--port", default=8501, show_default=True, help="Port to serve on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--no-refresh", is_flag=True, help="Do not rebuild stale rollups first (the app computes them).")
@reports_errors
def dashboard(lake: str, tenants: str | None, port: int, host: str, no_refresh: bool) -> None:
    """Open the compliance dashboard on the lake: usage per tenant and key, anomalies, CloudHSM, data health."""
    if not no_refresh and has_events(lake):
        try:
            click.echo(describe(refresh_rollups(lake, tenants)), err=True)
        except LockedError as err:  # an ingest is running: serve now, the app computes what is stale
            click.echo(f"Rollups not refreshed: {err}", err=True)
    click.echo(f"keytrail dashboard on http://{host}:{port} (Ctrl+C stops it)", err=True)
    # become the streamlit server: signals (Ctrl+C, a supervisor's SIGTERM) reach it directly, no orphan is left
    command = streamlit_command(port, host)
    os.execve(command[0], command, dashboard_env(lake, tenants))


@cli.command(name="rollups")
@lake_option
@click.option("--tenants", type=click.Path(dir_okay=False), help=TENANTS_HELP)
@click.option("--force", is_flag=True, help="Rebuild even when the rollups are fresh.")
@reports_errors
def rollups(lake: str, tenants: str | None, force: bool) -> None:
    """Rebuild the dashboard's rollups (<lake>/_rollups/) after an ingest; fresh ones are left alone."""
    click.echo(describe(refresh_rollups(lake, tenants, force=force)))
