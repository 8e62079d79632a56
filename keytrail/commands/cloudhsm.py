"""`keytrail ingest cloudhsm` and `keytrail verify hsm-sequence`: CloudHSM audit logs into the lake, and
their completeness check."""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import replace
from functools import partial

import click

from ingest.aws import make_client
from ingest.cloudhsm.load import run_ingest
from ingest.cloudhsm.sources import LOG_SUFFIXES, CloudWatchSource, FileSource, open_source
from ingest.errors import ConfigError, SourceError
from ingest.integrity.hsm_sequence import lake_sequence_findings
from ingest.lake.store import Lake
from keytrail.cli import EXIT_QUARANTINED, aws_options, ingest, lake_option, reports_errors, verify, window_options
from keytrail.output import Output, output_options, write_table
from keytrail.progress import reporting


@ingest.command(name="cloudhsm")
@click.argument("source", required=False)
@click.option("--log-group", "log_groups", multiple=True, help="/aws/cloudhsm/<cluster-id> (repeatable; default: all).")
@window_options("CloudWatch only: events from.", "CloudWatch only: events before.")
@click.option("--cluster-id", help="Cluster of files whose path has no cluster-… folder (or the log group to read).")
@click.option("--region", help="AWS region (default: from your AWS config).")
@click.option("--dry-run", is_flag=True, help="List the streams or files that would be read; write nothing.")
@click.option("--retry-quarantined", is_flag=True, help="Files only: read again those that had quarantined entries.")
@lake_option
@aws_options
@reports_errors
def ingest_cloudhsm(
    source: str | None,
    log_groups: tuple[str, ...],
    since: dt.datetime | None,
    until: dt.datetime | None,
    cluster_id: str | None,
    region: str | None,
    dry_run: bool,
    retry_quarantined: bool,
    lake: str,
    endpoint_url: str | None,
    profile: str | None,
) -> None:
    """Read CloudHSM audit logs into the lake: SOURCE is 'cloudwatch' (default), a folder or an s3:// URL."""
    client = partial(make_client, region=region, endpoint_url=endpoint_url, profile=profile)
    src = files_listed_once(open_source(source, list(log_groups), since, until, cluster_id, client), retry_quarantined)
    if dry_run:
        plan = src.plan()
        for item in plan:
            click.echo(f"Would read {'/'.join(item) if isinstance(item, tuple) else item.url}")
        return
    name = src.root if not isinstance(src, CloudWatchSource) else "cloudwatch"
    with reporting("CloudHSM entries", "entries") as progress:
        stats = run_ingest(Lake(lake), name, src.batches, progress)
    click.echo(stats.paragraph(lake))
    if stats.quarantined:
        sys.exit(EXIT_QUARANTINED)


def files_listed_once(src: CloudWatchSource | FileSource, retry: bool) -> CloudWatchSource | FileSource:
    """A file source listed once here: none found is an error (a wrong path in cron must be noticed), and the
    run reads the same listing; --retry-quarantined applies to files only."""
    if isinstance(src, CloudWatchSource):
        if retry:
            raise ConfigError("--retry-quarantined reads export files again; for CloudWatch Logs, rerun with --since")
        return src
    listed = src.objects()
    if not listed:
        kinds = ", ".join(f"*{s}" for s in sorted(LOG_SUFFIXES) if s)
        raise SourceError(f"no CloudHSM export files in {src.root} ({kinds}, any depth): check the path")
    return replace(src, objects=lambda: listed, retry_quarantined=retry)


@verify.command(name="hsm-sequence")
@output_options(formats=("table", "json", "csv"))
@lake_option
@reports_errors
def hsm_sequence(output: Output, lake: str) -> None:
    """Check every HSM's audit sequence numbers: report gaps, resets and duplicates; exit 1 if any."""
    findings = lake_sequence_findings(Lake(lake).require())
    if output.fmt != "table" or findings.num_rows:
        write_table(findings, output)
    if findings.num_rows:
        click.secho(f"{findings.num_rows} break(s) in the CloudHSM audit trail.", fg="red", err=True)
        sys.exit(1)
    click.echo("CloudHSM audit trail complete: no gaps, resets or duplicates.", err=output.fmt != "table")
