"""`--engine duckdb|spark` for the commands that attribute, roll up and detect: DuckDB on this machine (the
default), or Apache Spark (`pip install 'keytrail[spark]'`, docs/scale.md)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

import click

from ingest.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
ENGINES = ("duckdb", "spark")


def engine_option(func: F) -> F:
    """--engine: where the work runs."""
    return click.option(
        "--engine",
        type=click.Choice(ENGINES),
        default="duckdb",
        show_default=True,
        help="duckdb on this machine, or spark: the session spark-submit gives, else local[*] (docs/scale.md).",
    )(func)


def spark_module(name: str) -> ModuleType:
    """analytics.spark.<name>, or a clear error when keytrail[spark] is not installed."""
    for needed in ("pyspark", "sqlglot"):
        try:
            importlib.import_module(needed)
        except ImportError:
            raise ConfigError(
                f"--engine spark needs {needed}, which is not installed: pip install 'keytrail[spark]' "
                "(and a Java 17 runtime), or leave out --engine spark to run on DuckDB"
            ) from None
    return importlib.import_module(f"analytics.spark.{name}")
