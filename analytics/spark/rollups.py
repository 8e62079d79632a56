"""`keytrail rollups --engine spark`: the stored attribution, then the dashboard's rollups (analytics/rollups.py),
computed on Spark from the same `dashboard/rollup_*.sql` files and written as the same `_rollups/` files and
manifest, so `register_rollups` on DuckDB finds them fresh.

The anomalies rollup holds the detectors' findings, computed on Spark too (analytics/spark/anomalies.py).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import pyarrow as pa

from analytics.rollups import (
    SQL_ROLLUPS,
    RollupReport,
    lake_signature,
    rollup_dir,
    rollups_fresh,
    write_rollups,
)
from analytics.spark.anomalies import find_all_anomalies_spark
from analytics.spark.attribute import spark_views, store_attribution
from analytics.spark.engine import SparkViews
from ingest.lake.state import RunLock
from ingest.lake.store import Lake
from ingest.progress import Progress, no_progress

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def refresh_rollups_spark(
    lake: str | os.PathLike[str],
    tenants: str | os.PathLike[str] | None = None,
    force: bool = False,
    spark: SparkSession | None = None,
    progress: Progress = no_progress,
) -> RollupReport:
    """What analytics.rollups.refresh_rollups does, on Spark: store the attribution of new days, then rebuild
    `<lake>/_rollups/` unless fresh (or `force`), under the lake's lock."""
    started = time.perf_counter()
    store = Lake(lake).require()
    with RunLock(store.state_dir / "ingest.lock", reentrant=True, command="rollups"):
        views = spark_views(store, tenants, spark)
        attribution = store_attribution(views, progress)
        folder, signature = rollup_dir(lake), lake_signature(lake, tenants)
        if not force and rollups_fresh(lake, tenants):
            return RollupReport(
                folder, signature, "fresh", seconds=time.perf_counter() - started, attribution=attribution
            )
        tables = compute_rollups_spark(views)
        tables["anomalies"], error = find_all_anomalies_spark(views)
        rows = write_rollups(folder, tables, signature, error)
    return RollupReport(folder, signature, "written", rows, time.perf_counter() - started, error, attribution)


def compute_rollups_spark(views: SparkViews) -> dict[str, pa.Table]:
    """Every SQL rollup as an Arrow table, computed on Spark."""
    views.sql("attributed_usage").createOrReplaceTempView("attributed_usage")
    return {name: views.collect(f"dashboard/rollup_{name}") for name in SQL_ROLLUPS}
