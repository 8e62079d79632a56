"""`keytrail anomalies --engine spark`: the detectors of analytics/sql/anomalies/ run on Spark, translated from the
same `.sql` files, their settings bound as literals into the syntax tree (analytics/spark/translate.py).

The baselines the costly detectors read (analytics/sql/baselines/) are aggregated on Spark from the events of the
whole lake on every run (a full rescore): the stored `_baselines/` files are neither read nor written, because two
of them group by DuckDB's 64-bit `hash()`, which Spark's hash does not reproduce, so a day Spark stored could not
be merged with a day DuckDB stored. The findings are those of a full rescore, which equal the stored ones
(tests/test_baselines.py). Spark returns each detector's rows (findings, small); the driver adds the finding ids
and filters and orders them as find_anomalies does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from analytics import anomalies, baselines
from analytics.connection import ACCESS_VIEWS, register_lake
from analytics.queries import load_sql
from analytics.spark.engine import SparkViews, nullable
from ingest.integrity.hsm_sequence import SEQUENCE_SQL

# The views the baselines' SQL reads, over the whole lake (DuckDB's register_baselines with nothing stored).
BASELINE_INPUTS = {
    "baseline_operations": "SELECT * FROM key_operations",
    "baseline_kms_events": "SELECT * FROM kms_events",
}


def register_detector_inputs(views: SparkViews, names: list[str], settings: Mapping[str, Any]) -> None:
    """The relations the detectors `names` read beyond the attribution views: the access timeline, the CloudHSM
    sequence check, and their baselines aggregated from the whole lake for the resolved `settings` (cached:
    several detectors' CTEs read them more than once)."""
    for name in ACCESS_VIEWS:
        views.arrow_view(name, access_relation(views, name))
    views.spark.sql(views.translate(SEQUENCE_SQL, "hsm_sequence_gaps")).createOrReplaceTempView("hsm_sequence_gaps")
    for name, sql in {**BASELINE_INPUTS, "error_state_changes": baselines.baseline_sql("error_state_changes")}.items():
        views.spark.sql(views.translate(sql, name)).createOrReplaceTempView(name)
    for name in baselines.needed(names):
        _register_baseline(views, name, settings)


def access_relation(views: SparkViews, name: str) -> pa.Table:
    """`access_timeline` computed by DuckDB from the lake's access_events and hsm_events (not translated: its ASOF
    join on a subquery and list_zip have no translation yet; it reads the access-changing calls, hundreds of rows,
    never the KMS events)."""
    con = views.small
    register_lake(con, views.lake)
    con.execute(load_sql("macros"))
    return con.sql(load_sql(name)).to_arrow_table()


def _register_baseline(views: SparkViews, name: str, settings: Mapping[str, Any]) -> None:
    sql = baselines.baseline_sql(name)
    days = views.spark.sql(views.translate(sql, name, anomalies.detector_params(sql, settings)))
    days.createOrReplaceTempView("baseline_days")
    merged = views.spark.sql(views.translate(baselines.merge_sql(name), f"{name} (merge)"))
    merged.cache().createOrReplaceTempView(name)


def run_detector_spark(views: SparkViews, name: str, settings: Mapping[str, Any]) -> pa.Table:
    """One detector's findings computed on Spark, typed as DuckDB's and with their finding ids."""
    sql = anomalies.detector_select(name)
    rows = nullable(views.spark.sql(views.translate(sql, name, anomalies.detector_params(sql, settings))).toArrow())
    typed = anomalies.empty_findings(views.small).schema.remove(0)
    return anomalies.with_ids(rows.cast(typed))


def find_anomalies_spark(
    views: SparkViews,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    tenant: str | None = None,
    detectors: Iterable[str] | None = None,
    min_severity: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> pa.Table:
    """What analytics.anomalies.find_anomalies returns (with `stored=False`), the detectors run on Spark over the
    views of `views` (analytics.spark.attribute.spark_views)."""
    names = anomalies.checked_names(detectors)
    resolved = {**anomalies.resolve_settings(settings), "score_from": since, "score_to": until}
    register_detector_inputs(views, names, resolved)
    found = [run_detector_spark(views, name, resolved) for name in names]
    combined = pa.concat_tables(found) if found else anomalies.empty_findings(views.small)
    return anomalies.filter_findings(views.small, combined, since, until, tenant, min_severity)


def find_all_anomalies_spark(views: SparkViews) -> tuple[pa.Table, str | None]:
    """What analytics.rollups.find_all_anomalies returns, the detectors run on Spark: every finding, or no findings
    and the error text when the detectors fail."""
    try:
        return find_anomalies_spark(views), None
    except Exception as err:  # noqa: BLE001 - a broken detector must not take the usage pages down with it
        return anomalies.empty_findings(views.small), f"{type(err).__name__}: {err}"
