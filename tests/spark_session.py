"""A SparkSession for the tests: local[2] on loopback only, no UI, few shuffle partitions (the machine has two
cores), shared by the whole session because starting the JVM takes seconds. Imported by conftest.py."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The session's SparkSession (pyspark is imported here, so the other tests never start a JVM)."""
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ["PYSPARK_PYTHON"] = sys.executable  # the workers run this venv's Python, with keytrail importable
    from ingest.cloudtrail.spark import session

    spark = session(
        "local[2]",
        {
            "spark.sql.shuffle.partitions": "4",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.memory": "2g",
        },
    )
    yield spark
    spark.stop()
