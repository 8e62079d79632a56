"""`keytrail nightly` (the scheduled job) and `keytrail prune` (retention)."""

from __future__ import annotations

import sys

import click

from ingest.lake.store import DEFAULT_LAKE, Lake
from ingest.logs import setup_logging
from ingest.times import parse_duration
from keytrail.cli import cli, reports_errors
from keytrail.jobs.config import DEFAULT_CONFIG, LOG_FORMATS, load_config
from keytrail.jobs.nightly import open_lake, plan_nightly, run_nightly
from keytrail.jobs.prune import describe, prune
from keytrail.output import Output, output_options

config_option = click.option(
    "--config",
    "config_path",
    default=DEFAULT_CONFIG,
    show_default=True,
    envvar="KEYTRAIL_CONFIG",
    help="The keytrail.toml to run (or $KEYTRAIL_CONFIG).",
)


@cli.command()
@config_option
@click.option("--dry-run", is_flag=True, help="Say what each source would fetch; write nothing.")
@click.option("-v", "--verbose", is_flag=True, help="With --dry-run: every file and stream too.")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), help="Log lines on stderr (default: from the config).")
@reports_errors
def nightly(config_path: str, dry_run: bool, verbose: bool, log_format: str | None) -> None:
    """Ingest every configured source, compact, refresh rollups, detect anomalies, alert; exit 0 ok, 1 some
    source or step failed, 2 bad config."""
    cfg = load_config(config_path)
    setup_logging(log_format or cfg.log_format)
    if dry_run:
        click.echo("\n".join(plan_nightly(cfg, verbose=verbose)))
        return
    result = run_nightly(cfg)
    failed = ", ".join(result.failed_sources) or "none"
    click.echo(
        f"Run {result.run_id} {result.status}: {len(result.sources)} sources ({failed} failed), "
        f"{len(result.compaction)} partitions compacted, {result.anomalies.get('found', 0)} anomalies."
    )
    sys.exit(result.exit_code)


@cli.command(name="prune")
@click.option("--older-than", required=True, help="Age of the partitions to remove, e.g. 400d.")
@click.option("--yes", is_flag=True, help="Remove them (without it: only list what would go).")
@click.option("--config", "config_path", envvar="KEYTRAIL_CONFIG", help="Take the lake from this keytrail.toml.")
@click.option("--lake", envvar="KEYTRAIL_LAKE", help="Lake folder or s3:// URI (instead of --config).")
@output_options(formats=("table", "json"))
@reports_errors
def prune_command(older_than: str, yes: bool, config_path: str | None, lake: str | None, output: Output) -> None:
    """Remove event-date partitions older than --older-than, and their ingest state (a dry run without --yes)."""
    target = open_lake(load_config(config_path)) if config_path else Lake(lake or DEFAULT_LAKE)
    plan = prune(target, parse_duration(older_than), yes=yes)
    click.echo(describe(plan) if output.fmt == "json" else "\n".join(plan.lines()))
