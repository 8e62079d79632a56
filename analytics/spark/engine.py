"""A Spark session with the views `connect()` makes on DuckDB: the lake's tables, the tenants, the attribution maps.

`SparkViews(spark, lake, tenants)` registers, as Spark temporary views, `kms_events` and `hsm_events` read from the
lake's Parquet (a local folder, or `s3://…` read as `s3a://…`), the tenants tables, and then every map and view of
analytics/sql that the stored attribution needs, each translated from its `.sql` file (analytics/spark/translate.py).
Maps are small (resolved against the lake's distinct references) and cached; the events are never collected.
pyspark is imported here only, and only the Spark commands import this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from analytics.connection import MAPS, context_pair_sql, register_tenants, tenant_window_sql
from analytics.queries import load_sql
from analytics.spark.translate import ASOF_ROW, Macro, TranslationError, macro, shared_macros, spark_tree
from analytics.tenants import Tenants
from ingest.lake.schema import TABLES
from ingest.lake.store import Lake

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Maps that grow with the events (one row per cross-account call, per orphan CloudHSM entry): kept on the cluster.
# The others are resolved against the lake's distinct references and tenant rules, and held on the driver.
LARGE_MAPS = ("primary_copies", "hsm_orphan_sessions")


def spark_uri(lake: Lake, *parts: str) -> str:
    """Where Spark reads a lake path: `s3://` becomes `s3a://` (hadoop-aws, docs/scale.md)."""
    base = lake.uri.rstrip("/")
    uri = "s3a://" + base.removeprefix("s3://") if lake.remote else str(Path(base).resolve())
    return "/".join([uri, *parts])


class SparkViews:
    """The lake, tenants and attribution maps as temporary views of `spark` (see the module docstring)."""

    def __init__(self, spark: SparkSession, lake: Lake, tenants: Tenants) -> None:
        self.spark = spark
        self.lake = lake
        self.small = duckdb.connect()  # the tenants tables as connect() makes them, and the maps' Arrow copies
        register_tenants(self.small, tenants)
        self.macros = self._macros()
        for table in TABLES:
            self._events_view(table)
        for name in ("tenants", "tenant_rules", "settings", "operation_names"):
            self.arrow_view(name, self.small.sql(f"SELECT * FROM {name}").to_arrow_table())

    def _macros(self) -> dict[str, Macro]:
        """macros.sql, and the two macros connect() builds from the tenants (same functions, same SQL)."""
        keys = self.small.sql("SELECT context_keys FROM settings").fetchall()[0][0]
        windows = self.small.sql(
            "SELECT tenant_id, active_from, revoked_at FROM tenants "
            "WHERE active_from IS NOT NULL OR revoked_at IS NOT NULL"
        ).fetchall()
        return {
            **shared_macros(),
            **macro("context_pair", ("ec",), context_pair_sql(keys)),
            **macro("in_tenant_window", ("tenant", "ts"), tenant_window_sql(windows)),
        }

    def _events_view(self, table: str) -> None:
        """`table` over the lake's Parquet with the schema's columns (older files: missing ones read as NULL) and
        `event_date` from the folder names; only `*.parquet` (a killed writer's `.tmp` is not data)."""
        from pyspark.sql.pandas.types import from_arrow_schema

        schema = TABLES[table].append(pa.field("event_date", pa.date32()))
        if self.lake.remote or self.lake.files(table):  # (an S3 listing is left to Spark)
            reader = self.spark.read.schema(from_arrow_schema(schema)).option("pathGlobFilter", "*.parquet")
            frame = reader.parquet(spark_uri(self.lake, table))
        else:
            frame = self.spark.createDataFrame([], from_arrow_schema(schema))
        frame.createOrReplaceTempView(table)

    def arrow_view(self, name: str, table: pa.Table) -> None:
        """`table` (held on the driver) as the temporary view `name`. No rows: one empty chunk per column, as pyspark
        cannot convert a timestamp column of no chunks, which DuckDB returns for an empty result."""
        rows = table if table.num_rows else table.schema.empty_table()
        self.spark.createDataFrame(rows).createOrReplaceTempView(name)

    def sql(self, name: str) -> DataFrame:
        """Query `name` of analytics/sql, translated, as a DataFrame."""
        return self.spark.sql(self.translate(load_sql(name), name))

    def collect(self, name: str) -> pa.Table:
        """Query `name` computed on Spark, its (small, aggregated) result on the driver; every column nullable, as
        DuckDB writes them (Spark marks counts NOT NULL)."""
        return nullable(self.sql(name).toArrow())

    def translate(self, sql: str, name: str = "query", params: Mapping[str, Any] | None = None) -> str:
        """Spark SQL of a DuckDB query with its `$name` parameters bound to `params`, `UNION ALL BY NAME` resolved
        against the session's views."""
        try:
            tree = spark_tree(sql, self.macros, params)
        except TranslationError as err:
            raise TranslationError(f"{name}: {err}") from None
        _by_name_unions(self.spark, tree)
        return tree.sql(dialect="spark")

    def register_maps(self, lake_refs: DataFrame) -> None:
        """`lake_refs` (the lake's distinct references, cached), then every map of connect() and the primary copies,
        cached: the small ones on the driver."""
        lake_refs.cache().createOrReplaceTempView("lake_refs")
        probes = self.small.sql(
            "SELECT count(*) FROM tenant_rules WHERE kind = 'context' AND regexp_matches(value, '[*?\\[]')"
        ).fetchall()[0][0]
        none = "SELECT CAST(NULL AS STRING) AS pair LIMIT 0"
        self.spark.sql(self.translate(load_sql("context_probes")) if probes else none).cache().createOrReplaceTempView(
            "context_probes"
        )
        for name in (*MAPS, "primary_copies"):  # DuckDB stores primary_copies per day; Spark computes them all
            frame = self.sql(name).drop(ASOF_ROW)
            if name in LARGE_MAPS:
                frame.cache().createOrReplaceTempView(name)
            else:  # small: a local relation on the driver, broadcast to every join without a Spark job each time
                self.arrow_view(name, frame.toArrow())

    def copy_to_duckdb(self, names: tuple[str, ...]) -> duckdb.DuckDBPyConnection:
        """The DuckDB holding the tenants tables, with the Spark views `names` copied in (small maps only)."""
        for name in names:
            self.small.register(f"_{name}", self.spark.table(name).toArrow())
            self.small.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _{name}")
        return self.small


def nullable(table: pa.Table) -> pa.Table:
    """Every column nullable, as DuckDB writes them (Spark marks counts NOT NULL)."""
    return table.cast(pa.schema([field.with_nullable(True) for field in table.schema]))


def _by_name_unions(spark: SparkSession, tree: Any) -> None:
    """`a UNION ALL BY NAME b` (no Spark SQL for it): both sides select the union of their columns, in order of
    first appearance, NULL where a side has none."""
    from sqlglot import exp

    for union in reversed(list(tree.find_all(exp.Union))):  # inner first: `a BY NAME b BY NAME c` nests them
        if not union.args.get("by_name"):
            continue
        ctes = _ctes_before(union)
        sides = [union.this, union.expression]
        columns = [_columns(spark, side, ctes) for side in sides]
        every = list(dict.fromkeys(c for cols in columns for c in cols))
        for side, cols in zip(sides, columns, strict=True):
            picks = [exp.column(c, quoted=True) if c in cols else exp.Null().as_(c, quoted=True) for c in every]
            side.replace(exp.select(*picks).from_(exp.Subquery(this=side.copy(), alias="_side")))
        union.set("by_name", None)


def _ctes_before(node: Any) -> list[Any]:
    """The CTEs that `node` can see: those before the CTE holding it (all, if it is in the main query)."""
    from sqlglot import exp

    scope = node.parent  # the nearest query with a WITH around `node` (a detector's is inside a subquery)
    while scope is not None and not scope.args.get("with_"):
        scope = scope.parent
    ctes = list(scope.args["with_"].expressions) if scope is not None else []
    holder = node.find_ancestor(exp.CTE)
    return ctes[: next((i for i, cte in enumerate(ctes) if cte is holder), len(ctes))]


def _columns(spark: SparkSession, side: Any, ctes: list[Any]) -> list[str]:
    """The output columns of one side of a union (with the CTEs it sees), from Spark's analyser."""
    from sqlglot import exp

    query = side.copy()
    if ctes:
        query.set("with_", exp.With(expressions=[c.copy() for c in ctes]))
    return list(spark.sql(query.sql(dialect="spark")).columns)
