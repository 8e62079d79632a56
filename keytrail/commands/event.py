"""`keytrail event EVENT_ID`: one CloudTrail KMS event of the lake, typed, and with --raw its original record."""

from __future__ import annotations

import json
from typing import Any

import click
import duckdb

from ingest.aws import make_client
from ingest.cloudtrail.originals import Originals
from ingest.errors import KeytrailError
from ingest.lake.schema import KMS_EVENTS
from ingest.lake.store import Lake
from keytrail.cli import aws_options, cli, lake_option, reports_errors


class EventNotFound(KeytrailError):
    """No kms_events row has the event id."""


@cli.command(name="event")
@click.argument("event_id")
@lake_option
@click.option("--raw", is_flag=True, help="Print the original record, fetched from its trail file (S3 or folder).")
@aws_options
@reports_errors
def event_command(event_id: str, lake: str, raw: bool, endpoint_url: str | None, profile: str | None) -> None:
    """Show the KMS event EVENT_ID (its eventID) as the lake holds it; with --raw, the record exactly as its trail
    file holds it, after checking the file is the one ingested (ETag or SHA-256, and size)."""
    the_lake = Lake(lake).require()
    row = find_event(the_lake, event_id)
    if not raw:
        click.echo(describe(row))
        return
    originals = Originals(the_lake.state_dir / "ingest.sqlite", lambda: make_client("s3", None, endpoint_url, profile))
    click.echo(row["raw"] if row["raw"] is not None else originals.record(row["source_object"], row["record_index"]))


def find_event(lake: Lake, event_id: str) -> dict[str, Any]:
    """The kms_events row of an event id (with its event_date), read without writing anything."""
    files = lake.files("kms_events")
    rows: list[dict[str, Any]] = []
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        if files:
            con.register("events", lake.dataset(files, KMS_EVENTS, lake.table_dir("kms_events")))
            rel = con.execute("SELECT * FROM events WHERE event_id = $id", {"id": event_id})
            rows = [dict(zip([d[0] for d in rel.description], r, strict=True)) for r in rel.fetchall()]
    finally:
        con.close()
    if not rows:
        raise EventNotFound(
            f"no KMS event {event_id} in {lake.uri}: check the id (it is the record's eventID), or look in the "
            f"quarantine: keytrail sql \"SELECT * FROM quarantine WHERE contains(raw, '{event_id}')\""
        )
    return rows[0]


def describe(row: dict[str, Any]) -> str:
    """One `column: value` line per column; the record's text is not repeated here (--raw prints it)."""
    width = max(len(name) for name in row)
    lines = [f"{name:<{width}}  {_value(value)}" for name, value in row.items() if name != "raw"]
    kept = "in the lake (keep_raw)" if row["raw"] is not None else "not kept: --raw fetches it from source_object"
    return "\n".join([*lines, f"{'raw':<{width}}  {kept}"])


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):  # a MAP comes out of DuckDB as (key, value) pairs
        return json.dumps(dict(value), sort_keys=True)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)
