"""`keytrail verify cloudtrail`: CloudTrail log-file integrity (digest signatures, chain, log file hashes)."""

from __future__ import annotations

import datetime as dt
import json
import sys

import click
import pyarrow as pa

from ingest.aws import make_client
from ingest.cloudtrail.sources import TrailFilter
from ingest.integrity.sources import open_store
from ingest.integrity.verification import VerificationReport, verify_trail
from ingest.lake.store import Lake
from keytrail.cli import aws_options, lake_option, reports_errors, verify, window_options
from keytrail.output import format_table
from keytrail.progress import reporting

PROBLEM_COLUMNS = ["status", "account_id", "region", "hour", "object_key", "detail"]


@verify.command(name="cloudtrail")
@click.argument("source")
@click.option("--account", "accounts", multiple=True, help="Only this AWS account's digests (repeatable).")
@click.option("--region", "regions", multiple=True, help="Only this region's digests (repeatable).")
@window_options("Earliest delivery time to verify.", "End of the deliveries to verify (exclusive).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per problem found.")
@lake_option
@aws_options
@reports_errors
def verify_cloudtrail(
    source: str,
    accounts: tuple[str, ...],
    regions: tuple[str, ...],
    since: dt.datetime | None,
    until: dt.datetime | None,
    as_json: bool,
    lake: str,
    endpoint_url: str | None,
    profile: str | None,
) -> None:
    """Verify CloudTrail's digest chain and log files in SOURCE (s3://bucket/prefix or a copied folder); keep the
    verdicts in the lake; exit 1 on any problem."""
    flt = TrailFilter(accounts, regions, since, until)
    store = open_store(source, lambda: make_client("s3", None, endpoint_url, profile))
    keys = lambda region: make_client("cloudtrail", region, endpoint_url, profile)  # noqa: E731 - one per region
    with reporting("log files hashed", "files") as progress:
        report = verify_trail(Lake(lake), store, flt, keys, progress)
    show_report(report, as_json)
    if report.problems or not report.verdicts:
        sys.exit(1)


def show_report(report: VerificationReport, as_json: bool) -> None:
    """The per account/region summary and every problem (or JSON lines), then the paragraph and any warning."""
    problems = [{c: getattr(p, c) for c in PROBLEM_COLUMNS} for p in report.problems]
    if as_json:
        for row in problems:
            click.echo(json.dumps(row, default=str))
    elif report.verdicts:
        click.echo(format_table(report.summary()), nl=False)
        if problems:
            click.echo("\nProblems:\n" + format_table(pa.Table.from_pylist(problems)), nl=False)
    click.echo(report.paragraph(), err=as_json)
    for warning in report.warnings():
        click.secho(warning, fg="yellow", err=True)
