"""One Spark session for the test run (local[2] on loopback only, no UI, 4 shuffle partitions: the machine has two
cores), shared because starting the JVM takes seconds, and skipped with a clear message only where pyspark is not
installed (CI installs keytrail[spark] with the dev extra). Imported by conftest.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The session's SparkSession (pyspark is imported here, so the other tests never start a JVM)."""
    pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[dev]' (keytrail[spark])")
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from ingest.spark import spark_session

    session = spark_session(
        "local[2]",
        {
            "spark.sql.shuffle.partitions": "4",
            "spark.ui.enabled": "false",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.memory": "2g",
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
