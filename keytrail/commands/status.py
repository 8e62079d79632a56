"""`keytrail status`: what the lake holds and how current it is."""

from __future__ import annotations

from typing import Any

import click
import pyarrow as pa

from analytics.dashboard import STALE_HOURS
from ingest.lake.store import Lake
from keytrail.cli import cli, lake_option, reports_errors
from keytrail.jobs.status import LakeStatus, as_json, lake_status
from keytrail.output import Output, format_table, output_options


@cli.command(name="status")
@lake_option
@click.option("--tenants", type=click.Path(dir_okay=False), help="Tenants file (default: as every command finds it).")
@output_options(formats=("table", "json"))
@reports_errors
def status_command(lake: str, tenants: str | None, output: Output) -> None:
    """Show the lake: size, tenants file in effect, events, quarantine, stored attribution and rollups, last runs,
    sources and checkpoints, and how fresh each log stream is."""
    status = lake_status(Lake(lake), tenants)
    click.echo(as_json(status) if output.fmt == "json" else describe(status), nl=output.fmt == "json")


def describe(status: LakeStatus) -> str:
    """The status for a person: a few lines, then one table per section."""
    tenants = f"{status.tenants_file} ({status.tenants_origin})" if status.tenants_file else "none: nothing attributed"
    att = status.attribution
    stored = f"{att['days_current']} day(s) current, {att['days_stale']} to attribute" if att else "not stored"
    quarantined = next((t["events"] for t in status.tables if t["table"] == "quarantine"), 0)
    stale = [s for s in status.streams if s["hours_old"] is not None and s["hours_old"] > STALE_HOURS]
    lines = [
        f"Lake:        {status.lake} ({status.files} files, {status.size_bytes / 1e6:.1f} MB)",
        f"Tenants:     {tenants}",
        f"Attribution: {stored}" + (" (run keytrail attribute)" if att and att["days_stale"] else ""),
        f"Rollups:     {status.rollups}",
        f"Quarantine:  {quarantined} record(s)" + (' (keytrail sql "SELECT * FROM quarantine")' if quarantined else ""),
        f"Streams:     {len(status.streams)}, {len(stale)} with nothing newer than {STALE_HOURS} hours",
    ]
    sections = [
        ("Tables", status.tables), ("Streams, stalest first", status.streams), ("Last runs", status.runs),
        ("Sources", status.sources), ("Checkpoints", [_short(c) for c in status.checkpoints]),
    ]  # fmt: skip
    for title, rows in sections:
        lines.append(f"\n{title}:\n" + (format_table(pa.Table.from_pylist(rows)) if rows else "(none)\n"))
    return "\n".join(line.rstrip("\n") for line in lines) + "\n"


def _short(checkpoint: dict[str, Any]) -> dict[str, Any]:
    return {**checkpoint, "position": checkpoint["position"][:60]}
