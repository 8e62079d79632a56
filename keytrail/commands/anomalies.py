"""`keytrail anomalies`: run the anomaly detectors over the lake and print what they found."""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from pathlib import Path
from typing import Any

import click

from analytics import connect
from analytics.anomalies import SEVERITIES, detector_names, find_anomalies
from ingest.errors import ConfigError
from ingest.lake.store import Lake
from keytrail.cli import cli, lake_option, reports_errors, window_options
from keytrail.engine import engine_option, spark_module
from keytrail.output import Output, output_options, outside_lake, require_tenant, tenants_in_effect, write_relation

CONFIG_ENV = "KEYTRAIL_CONFIG"
COLUMNS = "severity, detector, tenant_id, window_start, window_end, observed, expected, explanation"


def load_anomaly_settings(path: str | None) -> dict[str, Any]:
    """The detector settings of a keytrail.toml, `[anomalies.settings]` (the file the nightly job reads; see
    docs/nightly.md): --config, else $KEYTRAIL_CONFIG, else ./keytrail.toml if present, else none."""
    chosen = path or os.environ.get(CONFIG_ENV) or ("keytrail.toml" if Path("keytrail.toml").is_file() else None)
    if chosen is None:
        return {}
    try:
        doc = tomllib.loads(Path(chosen).read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read config file {chosen}: {err.strerror}. Pass --config FILE.") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{chosen}: not valid TOML: {err}") from None
    section = doc.get("anomalies", {})
    settings = section.get("settings", {}) if isinstance(section, dict) else None
    if not isinstance(settings, dict):
        raise ConfigError(f"{chosen}: [anomalies.settings] must be a table of settings, e.g. spike_min_volume = 20")
    return settings


@cli.command(name="anomalies")
@window_options("Only findings ending at or after this time.", "Only findings starting before this time.")
@click.option("--tenant", help="Only this tenant's findings.")
@click.option("--detector", "detectors", multiple=True, type=click.Choice(detector_names()), help="Repeatable.")
@click.option("--min-severity", type=click.Choice(SEVERITIES), help="Hide findings below this severity.")
@click.option("--all-columns", is_flag=True, help="Table with every column (key, principal, score, evidence).")
@click.option(
    "--full",
    is_flag=True,
    help="Aggregate every baseline from the events instead of reading those the nightly job stored beside the lake.",
)
@click.option("--config", type=click.Path(dir_okay=False), help="keytrail.toml with [anomalies.settings].")
@click.option("--tenants", type=click.Path(dir_okay=False), help="Tenants file (default $KEYTRAIL_TENANTS).")
@output_options()
@lake_option
@engine_option
@reports_errors
def anomalies_command(
    since: dt.datetime | None, until: dt.datetime | None, tenant: str | None, detectors: tuple[str, ...],
    min_severity: str | None, all_columns: bool, full: bool, config: str | None, tenants: str | None, output: Output,
    lake: str, engine: str,
) -> None:  # fmt: skip
    """Find unusual key use: volume spikes, error bursts, use after revocation, cross-tenant use, destructive key
    changes, logging gaps and CloudHSM events; most severe first. Exits 0 whether or not anything is found."""
    settings = load_anomaly_settings(config)
    if engine == "spark":  # every baseline aggregated on Spark (docs/scale.md): --full changes nothing
        views = spark_module("attribute").spark_views(Lake(lake).require(), tenants, None)
        con = views.small
        require_tenant(con, tenant)
        find = spark_module("anomalies").find_anomalies_spark
        found = find(views, since, until, tenant, detectors or None, min_severity, settings)
    else:
        con = connect(lake, tenants)
        require_tenant(con, tenant)
        found = find_anomalies(con, since, until, tenant, detectors or None, min_severity, settings, stored=not full)
    tenants_in_effect(con)
    rel = con.from_arrow(found)
    write_relation(rel if output.fmt != "table" or all_columns else rel.select(COLUMNS), outside_lake(output, lake))
