"""The Spark session keytrail runs on, for the backfill ingest and the analytics alike (docs/scale.md).

pyspark is imported inside the function only: nothing on the DuckDB path starts a JVM or needs keytrail[spark].
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from typing import Any

# What every keytrail session needs: UTC as DuckDB runs (`SET TimeZone = 'UTC'`), Parquet as the lake writes it.
SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.compression.codec": "zstd",
}
# Settings for a session keytrail starts itself (a spark-submit session keeps its own, except the above).
LOCAL_CONFIG = {"spark.ui.showConsoleProgress": "false", "spark.sql.shuffle.partitions": "8"}


def spark_session(master: str | None = None, config: Mapping[str, str] | None = None) -> Any:
    """The session `spark-submit` (or a notebook) made, else a new one on `master` (`local[*]`) with
    LOCAL_CONFIG and `config`; SETTINGS either way."""
    from pyspark.sql import SparkSession

    # keytrail hands Spark Arrow (mapInArrow, Arrow tables, toArrow), never pandas: pyspark's warning that it does
    # not fully support pandas 3 (which streamlit brings) is about calls keytrail does not make
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    active = SparkSession.getActiveSession()
    if active is None:
        builder = SparkSession.builder.appName("keytrail")
        if master or not launched_by_spark_submit():
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # local workers run this Python, keytrail in it
            builder = builder.master(master or "local[*]")
            for name, value in {**LOCAL_CONFIG, **(config or {})}.items():
                builder = builder.config(name, value)
        active = builder.getOrCreate()
    for name, value in SETTINGS.items():
        active.conf.set(name, value)
    return active


def launched_by_spark_submit() -> bool:
    """Whether spark-submit (or the pyspark shell) started this process: it starts the JVM first and hands its
    gateway over in the environment, with the master and settings it was given."""
    return "PYSPARK_GATEWAY_PORT" in os.environ
