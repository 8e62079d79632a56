"""`keytrail ingest cloudtrail`: CloudTrail KMS events into the lake."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from ingest.aws import make_client
from ingest.cloudtrail.load import BATCH_FILES, IngestSummary, ingest_local, ingest_lookup_events, ingest_s3
from ingest.cloudtrail.sources import DEFAULT_LATE_DAYS, S3Trail, TrailFilter
from ingest.errors import ConfigError
from ingest.lake.store import Lake
from keytrail.cli import EXIT_QUARANTINED, aws_options, ingest, lake_option, reports_errors, window_options
from keytrail.progress import reporting


@ingest.command("cloudtrail")
@click.argument("source", required=False)
@lake_option
@click.option("--account", "accounts", multiple=True, help="Only this AWS account's trail files (repeatable).")
@click.option("--region", "regions", multiple=True, help="Only this region (repeatable; LookupEvents: the region).")
@window_options("Earliest event time to fetch.", "Latest event time to fetch (exclusive).")
@click.option("--late-days", default=DEFAULT_LATE_DAYS, show_default=True, help="Days a trail file may arrive late.")
@click.option("--batch-files", default=BATCH_FILES, show_default=True, help="Most trail files parsed at once.")
@click.option("--lookup-events", is_flag=True, help="Use the LookupEvents API (accounts without a trail bucket).")
@click.option("--retry-quarantined", is_flag=True, help="Read again the files that had quarantined records.")
@click.option(
    "--keep-raw",
    is_flag=True,
    help="Keep each record's text in the lake (for sources deleted after ingest); else a pointer to its file.",
)
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="spark: a backfill of many trail files on a Spark session (pip install 'keytrail[spark]'; docs/backfill.md).",
)
@aws_options
@reports_errors
def ingest_cloudtrail(
    source: str | None,
    lake: str,
    accounts: tuple[str, ...],
    regions: tuple[str, ...],
    since: dt.datetime | None,
    until: dt.datetime | None,
    late_days: int,
    batch_files: int,
    lookup_events: bool,
    retry_quarantined: bool,
    keep_raw: bool,
    engine: str,
    endpoint_url: str | None,
    profile: str | None,
) -> None:
    """Ingest CloudTrail KMS events from SOURCE: a folder or file of trail files, or s3://bucket/prefix."""
    flt = TrailFilter(accounts, regions, since, until, late_days)
    if engine == "spark":
        if lookup_events or not source:
            raise ConfigError("--engine spark reads trail files: give a SOURCE folder or s3://bucket/prefix")
        summary = run_backfill(Lake(lake), source, flt, endpoint_url, profile, retry_quarantined, keep_raw)
    else:
        summary = run_ingest(
            Lake(lake), source, flt, lookup_events, endpoint_url, profile, batch_files, retry_quarantined, keep_raw
        )
    click.echo(summary.paragraph())
    if not summary.files_seen:
        click.secho(f"Warning: no trail files in {source} for these filters (*.json.gz or *.json, any depth): "
                    "check the path and the --account/--region/--since filters.", fg="yellow", err=True)  # fmt: skip
        sys.exit(1)
    if summary.quarantined:
        sys.exit(EXIT_QUARANTINED)


def run_ingest(
    lake: Lake,
    source: str | None,
    flt: TrailFilter,
    lookup: bool,
    endpoint_url: str | None,
    profile: str | None,
    batch_files: int = BATCH_FILES,
    retry_quarantined: bool = False,
    keep_raw: bool = False,
) -> IngestSummary:
    """Pick the source kind and run it, with a progress bar on a terminal."""
    if lookup and retry_quarantined:
        raise ConfigError("--retry-quarantined reads trail files again; LookupEvents has none: run its window again")
    if lookup:
        if len(flt.regions) != 1 or source:
            raise ConfigError("--lookup-events reads one region's API: give exactly one --region and no SOURCE")
        client = make_client("cloudtrail", flt.regions[0], endpoint_url, profile)
        with reporting("LookupEvents", "events") as progress:
            return ingest_lookup_events(lake, client, flt.regions[0], flt.since, flt.until, progress=progress)
    if not source:
        raise ConfigError("give a SOURCE (a folder, a file or s3://bucket/prefix), or --lookup-events --region R")
    if source.startswith("s3://"):
        trail = S3Trail(make_client("s3", None, endpoint_url, profile), source)
        with reporting(f"listing {source}", "objects") as listing, reporting("trail files", "files") as progress:
            return ingest_s3(lake, trail, flt, progress, batch_files, retry_quarantined, listing, keep_raw)
    with reporting("trail files", "files") as progress:
        return ingest_local(lake, Path(source), flt, progress, batch_files, retry_quarantined, keep_raw)


def run_backfill(
    lake: Lake,
    source: str,
    flt: TrailFilter,
    endpoint_url: str | None,
    profile: str | None,
    retry_quarantined: bool,
    keep_raw: bool,
) -> IngestSummary:
    """`--engine spark`: list the source here, ingest it on the Spark session spark-submit gives (or local[*])."""
    from ingest.cloudtrail.spark import backfill, local_source, require_local, s3_source
    from ingest.spark import spark_session

    require_local(lake)
    try:
        spark = spark_session()
    except ImportError as err:
        raise ConfigError(f"--engine spark needs pyspark ({err}): pip install 'keytrail[spark]'") from None
    state_file = lake.state_dir / "ingest.sqlite"
    if source.startswith("s3://"):
        trail = S3Trail(make_client("s3", None, endpoint_url, profile), source)
        return backfill(lake, s3_source(trail, flt, state_file), spark, keep_raw, retry_quarantined)
    return backfill(lake, local_source(Path(source), flt, state_file), spark, keep_raw, retry_quarantined)
