"""`connect()`: an in-memory DuckDB over the Parquet lake with every keytrail view registered.

Order matters: the lake views first, then the tenants file as small tables, then the attribution maps
(resolved once against the *distinct* principals, keys and aliases of the lake: `lake_refs`), then the views on
top. What analytics/attribution_store.py stored per day is read from its files, the rest computed. The maps are a
snapshot taken at connect(); reconnect (or call `refresh(con, lake)`) after an ingest.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import duckdb
import pyarrow as pa

from analytics.attribution_store import LakeDays, register_stored
from analytics.queries import literal, load_sql
from analytics.sandbox import lock_down
from analytics.tenants import Tenants, context_keys, load_tenants, rules_table, tenants_table
from analytics.vocabulary import operation_names
from ingest.lake.schema import FINDING_ACTIONS, QUARANTINE, TABLES, TRAIL_VERIFICATION
from ingest.lake.store import DEFAULT_LAKE, Lake

MAPS = (
    "aliases", "identity_map", "principal_ids", "key_map", "context_map", "hsm_user_map", "hsm_orphan_sessions",
    "hsm_key_map", "operation_classes",
)  # fmt: skip
# Stored per day once attributed (analytics/attribution_store.py), else computed: lake_refs before the maps,
# primary_copies after them (a view: a query on some days reads only theirs), attributed_usage between these two
# groups of views.
ATTRIBUTION_VIEWS = ("attributed_operations", "key_operations")
USAGE_VIEWS = ("usage_hourly", "usage_daily", "tenant_cost")
# Over access_events, hsm_events and the tenants (docs/access.md).
ACCESS_VIEWS = ("access_timeline",)
# Columns the SQL relies on even if an older schema.py or older files lack them.
EXTRA_COLUMNS = {"hsm_events": {"cluster_event_id": "VARCHAR", "session_user_name": "VARCHAR"}}


def connect(
    lake: str | os.PathLike[str] | Lake = DEFAULT_LAKE,
    tenants: str | os.PathLike[str] | None = None,
    memory_limit: str = "2GB",
    threads: int | None = None,
    read_only: bool = True,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake, tenants, attribution and usage views registered.

    Args:
        lake: the lake folder, or `s3://bucket/prefix` (read through pyarrow datasets; endpoint from
            $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL), or a `Lake`.
        tenants: the tenants file; default $KEYTRAIL_TENANTS, else the file the lake was last attributed with,
            else ./tenants.toml if present, else none (the `settings` table says which, and why).
        memory_limit: DuckDB's memory limit (it spills to disk beyond it).
        threads: DuckDB worker threads (default: all cores).
        read_only: lock the connection in DuckDB's sandbox once the views are set up (analytics/sandbox.py):
            files only under the lake folder, no extensions, configuration locked. `read_only=False` is for
            keytrail's own writers (`keytrail attribute` stores its results with COPY) and for notebooks that
            knowingly read other files; it is never used for SQL typed into keytrail sql or the dashboard.
    """
    con = duckdb.connect(config={"memory_limit": memory_limit, **({"threads": threads} if threads else {})})
    con.execute("SET TimeZone = 'UTC'")
    store = (lake if isinstance(lake, Lake) else Lake(lake)).require()
    register_lake(con, store)
    register_tenants(con, load_tenants(tenants, store.state_dir))
    refresh(con)
    if read_only:
        lock_down(con, store)
    return con


def refresh(con: duckdb.DuckDBPyConnection, lake: str | os.PathLike[str] | Lake | None = None) -> None:
    """Rebuild the attribution maps and (re)create the views; with `lake`, re-list its files first (after an ingest)."""
    if lake is not None:
        register_lake(con, lake if isinstance(lake, Lake) else Lake(lake))
    lake_uri = con.sql("SELECT uri FROM lake_info").fetchall()[0][0]
    days = None if Lake.is_remote(lake_uri) else LakeDays.of(Lake(lake_uri))  # nothing is stored for S3 lakes
    con.execute(load_sql("macros"))
    keys = con.sql("SELECT context_keys FROM settings").fetchall()[0][0]
    con.execute(f"CREATE OR REPLACE MACRO context_pair(ec) AS {context_pair_sql(keys)}")
    windows = con.sql(
        "SELECT tenant_id, active_from, revoked_at FROM tenants WHERE active_from IS NOT NULL OR revoked_at IS NOT NULL"
    ).fetchall()
    con.execute(f"CREATE OR REPLACE MACRO in_tenant_window(tenant, ts) AS {tenant_window_sql(windows)}")
    register_stored(con, days, "lake_refs", kind="TABLE")  # read by three maps: scan the lake once
    register_context_probes(con)
    for name in MAPS:
        con.execute(f"CREATE OR REPLACE TABLE {name} AS {load_sql(name)}")
    # a view, read for the days a query asks for; on S3 (nothing stored) computed once, as the other maps
    register_stored(con, days, "primary_copies", kind="TABLE" if days is None else "VIEW")
    for name in ATTRIBUTION_VIEWS:
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {load_sql(name)}")
    register_stored(con, days, "attributed_usage")
    for name in USAGE_VIEWS + ACCESS_VIEWS:
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {load_sql(name)}")


def register_context_probes(con: duckdb.DuckDBPyConnection) -> None:
    """The table `context_probes` that glob context rules are resolved against: the lake's distinct probes when a
    rule has a glob (one scan of the encryption contexts), else empty (no scan)."""
    globs = con.sql("SELECT count(*) FROM tenant_rules WHERE kind = 'context' AND regexp_matches(value, '[*?\\[]')")
    probes = load_sql("context_probes") if globs.fetchall()[0][0] else "SELECT NULL::VARCHAR AS pair LIMIT 0"
    con.execute(f"CREATE OR REPLACE TABLE context_probes AS {probes}")


def context_pair_sql(keys: list[str]) -> str:
    """SQL of context_pair(ec): the value of the one context key, else the first of `keys` present as "key=value"."""
    if len(keys) == 1:
        return f"ec[{literal(keys[0])}]"
    pairs = [f"{literal(k + '=')} || ec[{literal(k)}]" for k in keys]
    return f"coalesce({', '.join(pairs)})" if pairs else "NULL::VARCHAR"


def tenant_window_sql(windows: list[tuple[str, dt.datetime | None, dt.datetime | None]]) -> str:
    """SQL of in_tenant_window(tenant, ts): NULL without a tenant, else whether `ts` is inside the tenant's access
    window (from active_from, before revoked_at). A CASE over the few tenants that have a window, so events need
    no join to `tenants` (and without windows it is a constant)."""
    cases = []
    for tenant, active_from, revoked_at in windows:
        bounds = [f"ts >= {_timestamp(active_from)}"] if active_from else []
        bounds += [f"ts < {_timestamp(revoked_at)}"] if revoked_at else []
        cases.append(f"WHEN tenant = {literal(tenant)} THEN {' AND '.join(bounds)}")
    return f"CASE WHEN tenant IS NULL THEN NULL {' '.join(cases)} ELSE true END"


def _timestamp(value: dt.datetime) -> str:
    return f"TIMESTAMPTZ {literal(value.isoformat())}"


def register_lake(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """Views `kms_events`, `hsm_events` (with `event_date`), `quarantine`, `trail_verification` and the triage
    views (`register_findings`); empty but typed if no files; and the table `lake_info` (the lake's uri)."""
    con.execute("CREATE OR REPLACE TABLE lake_info AS SELECT $uri AS uri", {"uri": lake.uri})
    register_findings(con, lake)
    if lake.remote:
        _dataset_views(con, lake)
        return
    for table, schema in TABLES.items():
        _parquet_view(con, table, lake.files(table), schema, hive=True)
    quarantined = sorted(lake.quarantine_dir.rglob("*.parquet")) if lake.quarantine_dir.exists() else []
    _parquet_view(con, "quarantine", quarantined, QUARANTINE, hive=False)
    _parquet_view(con, "trail_verification", lake.files("trail_verification"), TRAIL_VERIFICATION, hive=False)


def register_findings(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """Views `finding_history` (every triage action in `_findings/`) and `finding_status` (the newest action per
    finding; a finding with none is open). A snapshot like the other views: `refresh(con, lake)` shows later ones."""
    files = lake.list_parquet(lake.findings_dir)
    if lake.remote and files:
        con.register("_lake_finding_history", lake.dataset(files, FINDING_ACTIONS))
        con.execute("CREATE OR REPLACE VIEW finding_history AS SELECT * FROM _lake_finding_history")
    else:
        _parquet_view(con, "finding_history", files, FINDING_ACTIONS, hive=False)
    con.execute(
        "CREATE OR REPLACE VIEW finding_status AS SELECT * FROM finding_history "
        "QUALIFY row_number() OVER (PARTITION BY finding_id ORDER BY acted_at DESC, action_id DESC) = 1"
    )


def _dataset_views(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """The same views over an S3 lake: each table a pyarrow dataset (pyarrow's S3 filesystem) that DuckDB
    scans, with the schema's columns (missing ones read as NULL) and `event_date` from the folder names."""
    flat = [("quarantine", QUARANTINE, False), ("trail_verification", TRAIL_VERIFICATION, False)]
    for name, schema, hive in [*((t, s, True) for t, s in TABLES.items()), *flat]:
        files = lake.list_parquet(lake.quarantine_dir) if name == "quarantine" else lake.files(name)
        if not files:
            _parquet_view(con, name, [], schema, hive)
            continue
        con.register(f"_lake_{name}", lake.dataset(files, schema, lake.table_dir(name) if hive else None))
        types = _duck_types(con, schema) | EXTRA_COLUMNS.get(name, {})
        present = set(schema.names) | ({"event_date"} if hive else set())
        columns = [f'"{c}"' if c in present else f'NULL::{t} AS "{c}"' for c, t in types.items()]
        columns += ['"event_date"'] if hive else []
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {', '.join(columns)} FROM _lake_{name}")


def _parquet_view(con: duckdb.DuckDBPyConnection, name: str, files: list[Path], schema: pa.Schema, hive: bool) -> None:
    """A view with exactly the schema's columns: columns missing from the files (older files) read as NULL."""
    types = _duck_types(con, schema) | EXTRA_COLUMNS.get(name, {})
    if hive:
        types["event_date"] = "DATE"
    present: set[str] = set()
    source = "(SELECT 1) WHERE false"
    if files:
        file_list = "[" + ", ".join(literal(str(f)) for f in files) + "]"
        options = ", hive_partitioning = true, hive_types = {'event_date': DATE}" if hive else ""
        source = f"read_parquet({file_list}, union_by_name = true{options})"
        present = {row[0] for row in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    columns = ", ".join(f'"{c}"' if c in present else f'NULL::{t} AS "{c}"' for c, t in types.items())
    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {columns} FROM {source}")


def _duck_types(con: duckdb.DuckDBPyConnection, schema: pa.Schema) -> dict[str, str]:
    """DuckDB type names of an Arrow schema's columns."""
    rel = con.from_arrow(schema.empty_table())
    return {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}


def register_tenants(con: duckdb.DuckDBPyConnection, tenants: Tenants) -> None:
    """Tables `tenants`, `tenant_rules`, `settings` and `operation_names` from the tenants file and vocabulary."""
    settings = pa.table(
        {
            "price_per_10k_requests": pa.array([tenants.price_per_10k_requests], pa.float64()),
            "hsm_security_groups": pa.array([list(tenants.hsm_security_groups)], pa.list_(pa.string())),
            "context_keys": pa.array([context_keys(tenants)], pa.list_(pa.string())),
            "tenants_file": pa.array([str(tenants.path) if tenants.path else None], pa.string()),
            "tenants_origin": pa.array([tenants.origin], pa.string()),
        }
    )
    tables = {
        "tenants": tenants_table(tenants),
        "tenant_rules": rules_table(tenants),
        "settings": settings,
        "operation_names": operation_names(),
    }
    for name, arrow in tables.items():
        con.register("_arrow_in", arrow)
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _arrow_in")
        con.unregister("_arrow_in")
