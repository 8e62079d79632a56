"""`keytrail findings`: list the anomaly findings with their triage status, record a review of one, show its history.

A triage action is one new file in `<lake>/_findings/` (analytics/triage.py), never a change to what is there.
"""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Callable
from typing import Any

import click
import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from analytics import connect, triage
from analytics.anomalies import find_anomalies
from ingest.lake.store import Lake
from keytrail.cli import F, cli, lake_option, reports_errors, window_options
from keytrail.commands.anomalies import load_anomaly_settings
from keytrail.output import Output, output_options, outside_lake, require_tenant, tenants_in_effect, write_table

COLUMNS = ["finding_id", "status", "severity", "detector", "tenant_id", "window_start", "window_end", "explanation"]
# command name → (status it records, help)
ACTIONS = {
    "ack": ("acknowledged", "Acknowledge a finding: seen, being looked at; no more alerts for it."),
    "resolve": ("resolved", "Mark a finding resolved (a note saying how is required)."),
    "reopen": ("open", "Reopen a finding: it counts as open again."),
    "false-positive": ("false_positive", "Mark a finding a false positive (a note saying why is required)."),
}


@cli.group()
def findings() -> None:
    """Review anomaly findings: list them with their status, acknowledge, resolve, reopen, show the history."""


def common_options(func: F) -> F:
    """--config and --tenants: the same findings (and so the same ids) as `keytrail anomalies` sees."""
    func = click.option("--config", type=click.Path(dir_okay=False), help="keytrail.toml with [anomalies.settings].")(
        func
    )
    return click.option("--tenants", type=click.Path(dir_okay=False), help="Tenants file (default $KEYTRAIL_TENANTS).")(
        func
    )


def _current(con: duckdb.DuckDBPyConnection, lake: str, config: str | None, **filters: Any) -> pa.Table:
    found = find_anomalies(con, settings=load_anomaly_settings(config), **filters)
    return triage.with_status(found, triage.actions(Lake(lake)))


@findings.command(name="list")
@click.option("--status", type=click.Choice(triage.STATUSES), help="Only findings with this status.")
@click.option("--tenant", help="Only this tenant's findings.")
@window_options("Only findings ending at or after this time.", "Only findings starting before this time.")
@click.option("--all-columns", is_flag=True, help="Table with every column (key, principal, note, evidence).")
@common_options
@output_options()
@lake_option
@reports_errors
def list_command(
    status: str | None, tenant: str | None, since: dt.datetime | None, until: dt.datetime | None, all_columns: bool,
    config: str | None, tenants: str | None, output: Output, lake: str,
) -> None:  # fmt: skip
    """Every finding with its id and triage status (open when nobody reviewed it), most severe first."""
    con = connect(lake, tenants)
    tenants_in_effect(con)
    require_tenant(con, tenant)
    found = _current(con, lake, config, since=since, until=until, tenant=tenant)
    if status:
        found = found.filter(pc.equal(found.column("status"), status))
    write_table(found if output.fmt != "table" or all_columns else found.select(COLUMNS), outside_lake(output, lake))


def _action(name: str, status: str, help_text: str) -> Callable[..., None]:
    @findings.command(name=name, help=help_text)
    @click.argument("finding_id")
    @click.option("--note", help="Why (required to resolve or mark a false positive).")
    @common_options
    @lake_option
    @reports_errors
    def command(finding_id: str, note: str | None, config: str | None, tenants: str | None, lake: str) -> None:
        con, store = connect(lake, tenants), Lake(lake)
        found = triage.lookup(store, _current(con, lake, config), triage.actions(store), finding_id)
        path = triage.record_action(store, found, status, note, getpass.getuser())
        click.echo(f"Finding {finding_id} is now {status.replace('_', ' ')} (recorded in {path})")

    return command


for _name, (_status, _help) in ACTIONS.items():
    _action(_name, _status, _help)


@findings.command(name="history")
@click.argument("finding_id")
@common_options
@output_options()
@lake_option
@reports_errors
def history_command(finding_id: str, config: str | None, tenants: str | None, output: Output, lake: str) -> None:
    """Every triage action on one finding, oldest first: when, the status it set, who, the note."""
    con, store = connect(lake, tenants), Lake(lake)
    done = triage.actions(store)
    triage.lookup(store, _current(con, lake, config), done, finding_id)
    write_table(triage.history(done, finding_id), outside_lake(output, lake))
