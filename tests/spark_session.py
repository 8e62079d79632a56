"""One Spark session for the test run (local[2] on loopback only, no UI), shared because starting the JVM takes
seconds, and skipped with a clear message only where pyspark is not installed (CI installs keytrail[spark] with the
dev extra). Imported by conftest.py.

Settings for lakes of a few MB: 2 shuffle partitions (the machine has two cores), and adaptive query execution off.
AQE runs every shuffle and broadcast of a query as its own job, to re-plan between them: on the sample that is
56 jobs instead of 7 for the first_seen detector and 80 instead of 15 for volume_spike, and about 3x the time, for
plans that gain nothing on tiny data. The results do not depend on it (a plan changes, not an answer)."""

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
            "spark.sql.shuffle.partitions": "2",
            "spark.sql.adaptive.enabled": "false",
            "spark.ui.enabled": "false",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.memory": "2g",
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
