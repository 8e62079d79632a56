"""One Spark session for the test run (local[2], 4 shuffle partitions, UTC, loopback only), skipped with a clear
message only where pyspark is not installed (CI installs keytrail[spark] with the dev extra)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[dev]' (keytrail[spark])")
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from analytics.spark.engine import spark_session

    session = spark_session("local[2]", {"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false"})
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
