"""`keytrail verify cloudtrail`: CloudTrail log-file integrity (digest signatures, chain, log file hashes)."""

from __future__ import annotations

import datetime as dt
import sys

import click
import pyarrow as pa

from ingest.aws import make_client
from ingest.cloudtrail.sources import TrailFilter
from ingest.integrity.sources import open_store
from ingest.integrity.verification import VerificationReport, verify_trail
from ingest.lake.store import Lake
from keytrail.cli import aws_options, lake_option, reports_errors, verify, window_options
from keytrail.output import Output, format_table, output_options, write_table
from keytrail.progress import reporting

PROBLEM_COLUMNS = ["status", "account_id", "region", "hour", "object_key", "detail"]


@verify.command(name="cloudtrail")
@click.argument("source")
@click.option("--account", "accounts", multiple=True, help="Only this AWS account's digests (repeatable).")
@click.option("--region", "regions", multiple=True, help="Only this region's digests (repeatable).")
@window_options("Earliest delivery time to verify.", "End of the deliveries to verify (exclusive).")
@output_options(formats=("table", "json", "csv"))
@lake_option
@aws_options
@reports_errors
def verify_cloudtrail(
    source: str,
    accounts: tuple[str, ...],
    regions: tuple[str, ...],
    since: dt.datetime | None,
    until: dt.datetime | None,
    output: Output,
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
    show_report(report, output)
    if report.problems or not report.verdicts:
        sys.exit(1)


def show_report(report: VerificationReport, output: Output) -> None:
    """The per account/region summary and every problem (-o json/csv: one row per problem), then the paragraph
    and any warning. With no digest at all, the ingested files none covers are counted, not listed."""
    problems = pa.Table.from_pylist([{c: getattr(p, c) for c in PROBLEM_COLUMNS} for p in report.problems])
    rows = problems if problems.num_rows else pa.table({c: pa.array([], pa.string()) for c in PROBLEM_COLUMNS})
    if output.fmt != "table":
        write_table(rows, output)
    elif report.has_digests():
        click.echo(format_table(report.summary()), nl=False)
        if problems.num_rows:
            click.echo("\nProblems:\n" + format_table(problems), nl=False)
    click.echo(report.paragraph(), err=output.fmt != "table")
    for warning in report.warnings():
        click.secho(warning, fg="yellow", err=True)
