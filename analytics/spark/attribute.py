"""`keytrail attribute --engine spark`: the stored per-day attribution (analytics/attribution_store.py) computed on
Spark, written under the same names, so DuckDB sessions read it as if DuckDB had written it.

Spark computes every stale day's `lake_refs` and `attributed_usage` over the whole lake; the driver collects
only those per-day aggregates (hours × tenants × keys × operations, not events) and writes one Parquet file per
day, renamed into place like the DuckDB writer does. One file per day keeps the layout the DuckDB reader
expects (no part-file folders) and each day's file appears atomically.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analytics.attribute import (
    AttributionReport,
    remove_stale_files,
    scratch_dir,
    stored_operations,
)
from analytics.attribution_store import LAKE_MAPS, STORED, LakeDays, basis, split_days, store_dir, stored_file
from analytics.connection import ATTRIBUTION_VIEWS
from analytics.spark.engine import SparkViews, nullable
from analytics.tenants import load_tenants, remember_tenants
from ingest.errors import KeytrailError
from ingest.faults import crash_point
from ingest.lake.state import RunLock
from ingest.lake.store import Lake
from ingest.progress import Progress, no_progress
from ingest.spark import spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_views(lake: Lake, tenants: str | os.PathLike[str] | None, spark: SparkSession | None) -> SparkViews:
    """The lake's views on `spark` (default: spark_session()) with the maps and attribution views registered."""
    views = SparkViews(spark or spark_session(), lake, load_tenants(tenants, lake.state_dir))
    views.register_maps(views.sql("lake_refs"))
    for name in ATTRIBUTION_VIEWS:
        views.sql(name).createOrReplaceTempView(name)
    return views


def refresh_attribution_spark(
    lake: str | os.PathLike[str] | Lake,
    tenants: str | os.PathLike[str] | None = None,
    spark: SparkSession | None = None,
    progress: Progress = no_progress,
) -> AttributionReport:
    """What analytics.attribute.refresh_attribution does, computed on Spark: every stale day stored, days the lake
    lost removed, under the lake's lock."""
    started = time.perf_counter()
    lake = (lake if isinstance(lake, Lake) else Lake(lake)).require()
    if lake.remote:
        raise KeytrailError(
            f"{lake.uri}: stored attribution is kept for local lakes only (DuckDB computes an S3 lake's on the fly); "
            "run `keytrail attribute --engine spark` on a local copy or mount of the lake"
        )
    with RunLock(lake.state_dir / "ingest.lock", command="attribute"):
        report = store_attribution(spark_views(lake, tenants, spark), progress)
    report.seconds = time.perf_counter() - started
    return report


def store_attribution(views: SparkViews, progress: Progress = no_progress) -> AttributionReport:
    """Write every stale day of every stored result from `views` (the caller holds the lake's lock), drop the files
    no signature names any more."""
    lake = views.lake
    report = AttributionReport(store_dir(lake))
    shutil.rmtree(scratch_dir(lake), ignore_errors=True)  # what a killed refresh left
    con = views.copy_to_duckdb(LAKE_MAPS)
    signatures = {name: LakeDays.of(lake).signatures(basis(con, name)) for name in STORED}
    fresh, report.written = split_days(lake, "attributed_usage", signatures["attributed_usage"])
    report.kept = sorted(fresh)
    work = {name: split_days(lake, name, signatures[name])[1] for name in STORED}
    total = sum(len(days) for days in work.values())
    for name, to_write in work.items():  # one Spark job per result: its rows are per-day aggregates
        if to_write:
            _write_days(views, lake, name, to_write, signatures[name])
            progress(len(to_write), total)
    report.operations = stored_operations(con, lake, report.written, signatures["attributed_usage"])
    report.removed = remove_stale_files(lake, signatures)
    report.tenants_file, report.tenants_origin = con.sql(
        "SELECT tenants_file, tenants_origin FROM settings"
    ).fetchall()[0]
    remember_tenants(lake.state_dir, report.tenants_file)
    return report


def _write_days(views: SparkViews, lake: Lake, name: str, days: list[str], signatures: dict[str, str]) -> None:
    """Compute `name` for `days` on Spark, collect the per-day rows, publish one file per day."""
    from pyspark.sql import functions as F

    frame = views.spark.table(name) if name == "lake_refs" else views.sql(name)
    rows = nullable(frame.where(F.col("day").isin([F.lit(d).cast("date") for d in days])).toArrow())
    scratch = scratch_dir(lake)
    scratch.mkdir(parents=True)
    for day in days:
        target = scratch / f"{day}.parquet"
        day_rows = rows.filter(pc.equal(rows["day"], pa.scalar(dt.date.fromisoformat(day))))
        pq.write_table(day_rows, target, compression="zstd")
        crash_point("attribution_publish")
        lake.put_file(target, stored_file(lake, name, day, signatures[day]))
    shutil.rmtree(scratch)
