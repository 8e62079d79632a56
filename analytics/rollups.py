"""Materialised rollups for the dashboard: small Parquet files in `<lake>/_rollups/`, rebuilt after an ingest.

Scanning ten million events for every page view is too slow for a dashboard, so the aggregates its pages read
(hourly usage, principals per day, failed operations per day with their caller, events per stream and day,
key administration events, keys, anomaly findings) are computed once and written beside the lake:

    _rollups/usage_hourly.parquet  principals_daily.parquet  errors_daily.parquet  events_daily.parquet
             key_events.parquet  keys.parquet  anomalies.parquet  manifest.json

`manifest.json` records the lake's signature (the names and sizes of its immutable Parquet files and a hash of
the tenants file) the rollups were built from. `register_rollups` loads them when the signature still
matches, and otherwise computes the same tables in memory, so a stale or missing rollup is slower, never
wrong. The nightly job (and `keytrail dashboard` before it starts) calls `refresh_rollups`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from analytics import anomalies
from analytics.attribute import AttributionReport, refresh_attribution
from analytics.attribution_store import code_digest
from analytics.connection import connect
from analytics.queries import load_sql
from analytics.tenants import load_tenants
from ingest.lake.state import RunLock
from ingest.lake.store import TMP_SUFFIX, Lake
from ingest.progress import Progress, no_progress

ROLLUP_DIR = "_rollups"
MANIFEST = "manifest.json"
# name → the SQL file that computes it (anomalies come from analytics.anomalies instead)
SQL_ROLLUPS = ("usage_hourly", "principals_daily", "errors_daily", "events_daily", "key_events", "keys")
ROLLUPS = (*SQL_ROLLUPS, "anomalies")
TABLE_PREFIX = "dash_"


@dataclass
class RollupReport:
    """What refresh_rollups or register_rollups did: per rollup, its rows and where it came from."""

    folder: Path
    signature: str
    status: str  # fresh (files used as they were) | written | computed (in memory, files stale or missing)
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    anomaly_error: str | None = None
    attribution: AttributionReport | None = None  # what refresh_rollups stored of the attribution first


def rollup_dir(lake: str | os.PathLike[str]) -> Path:
    """The rollup folder of a lake."""
    return Path(lake) / ROLLUP_DIR


def lake_signature(lake: str | os.PathLike[str], tenants: str | os.PathLike[str] | None = None) -> str:
    """A hash of what the rollups depend on: the names of the lake's Parquet files (local or on S3), and the
    tenants file.

    Lake files are immutable once renamed into place under a name no other write uses, so the names change exactly
    when the data does; the analytics code and SQL are hashed too, so an upgrade that changes attribution or a
    detector rebuilds them.
    """
    store = Lake(lake)
    digest = hashlib.sha256()
    for folder in ("kms_events", "hsm_events", "_quarantine"):
        for f in store.list_parquet(store.root / folder):
            digest.update(f"{f.relative_to(store.root)}\n".encode())
    path = load_tenants(tenants, store.state_dir).path
    digest.update(b"tenants\0" + (Path(path).read_bytes() if path else b""))
    digest.update(b"code\0" + code_digest().encode())
    return digest.hexdigest()[:32]


def read_manifest(lake: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The rollup manifest, or None when the rollups were never written (or the manifest is unreadable)."""
    path = rollup_dir(lake) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def rollups_fresh(lake: str | os.PathLike[str], tenants: str | os.PathLike[str] | None = None) -> bool:
    """True when every rollup file exists and was built from the lake and tenants file as they are now."""
    manifest = read_manifest(lake)
    if not manifest or manifest.get("signature") != lake_signature(lake, tenants):
        return False
    return all((rollup_dir(lake) / f"{name}.parquet").is_file() for name in ROLLUPS)


def compute_rollups(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, pa.Table], str | None]:
    """Every rollup as an Arrow table, from a connection made by `analytics.connect`; plus the anomaly
    detectors' error, if they failed (the anomalies rollup is then empty)."""
    tables = {name: con.sql(load_sql(f"dashboard/rollup_{name}")).to_arrow_table() for name in SQL_ROLLUPS}
    anomalies, error = find_all_anomalies(con)
    tables["anomalies"] = anomalies
    return tables, error


def find_all_anomalies(con: duckdb.DuckDBPyConnection) -> tuple[pa.Table, str | None]:
    """All findings of every detector; an empty table and the error text when the detectors fail."""
    try:
        return anomalies.find_anomalies(con), None
    except Exception as err:  # noqa: BLE001 - a broken detector must not take the usage pages down with it
        return anomalies.empty_findings(con), f"{type(err).__name__}: {err}"


def refresh_rollups(
    lake: str | os.PathLike[str],
    tenants: str | os.PathLike[str] | None = None,
    force: bool = False,
    memory_limit: str = "2GB",
    progress: Progress = no_progress,
) -> RollupReport:
    """Store the attribution of new lake days (analytics/attribute.py), then rebuild `<lake>/_rollups/`
    unless it is already fresh (or `force`), all under the lake's lock (the nightly job's run passes through);
    files are written atomically and the manifest last, so a reader never pairs new files with an old manifest
    as fresh."""
    started = time.perf_counter()
    with RunLock(Lake(lake).require().state_dir / "ingest.lock", reentrant=True, command="rollups"):
        attribution = refresh_attribution(lake, tenants, memory_limit=memory_limit, progress=progress)
        folder = rollup_dir(lake)
        signature = lake_signature(lake, tenants)
        if not force and rollups_fresh(lake, tenants):
            seconds = time.perf_counter() - started
            return RollupReport(folder, signature, "fresh", seconds=seconds, attribution=attribution)
        con = connect(lake, tenants, memory_limit=memory_limit)
        try:
            tables, error = compute_rollups(con)
        finally:
            con.close()
        rows = write_rollups(folder, tables, signature, error)
    return RollupReport(folder, signature, "written", rows, time.perf_counter() - started, error, attribution)


def write_rollups(folder: Path, tables: dict[str, pa.Table], signature: str, error: str | None) -> dict[str, int]:
    """Each rollup file by rename, then the manifest (removed first, so a crash in between leaves it stale)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    for name, table in tables.items():
        tmp = folder / f"{name}.parquet{TMP_SUFFIX}"
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, folder / f"{name}.parquet")
    rows = {name: t.num_rows for name, t in tables.items()}
    manifest = {
        "signature": signature,
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rows": rows,
        "anomaly_error": error,
    }
    tmp = folder / f"{MANIFEST}{TMP_SUFFIX}"
    tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)
    return rows


def register_rollups(
    con: duckdb.DuckDBPyConnection, lake: str | os.PathLike[str], tenants: str | os.PathLike[str] | None = None
) -> RollupReport:
    """Tables `dash_<rollup>` on `con` (made by `analytics.connect` for the same lake and tenants): loaded from
    the rollup files when fresh, else computed now from the lake (slower on a large lake, same result)."""
    started = time.perf_counter()
    folder = rollup_dir(lake)
    signature = lake_signature(lake, tenants)
    error: str | None = None
    if rollups_fresh(lake, tenants):
        status = "fresh"
        error = (read_manifest(lake) or {}).get("anomaly_error")
        for name in ROLLUPS:
            path = str(folder / f"{name}.parquet").replace("'", "''")
            con.execute(f"CREATE OR REPLACE TABLE {TABLE_PREFIX}{name} AS SELECT * FROM read_parquet('{path}')")
    else:
        status = "computed"
        tables, error = compute_rollups(con)
        for name, table in tables.items():
            con.register("_rollup_in", table)
            con.execute(f"CREATE OR REPLACE TABLE {TABLE_PREFIX}{name} AS SELECT * FROM _rollup_in")
            con.unregister("_rollup_in")
    rows = {name: int(con.sql(f"SELECT count(*) FROM {TABLE_PREFIX}{name}").fetchall()[0][0]) for name in ROLLUPS}
    return RollupReport(folder, signature, status, rows, time.perf_counter() - started, error)


def describe(report: RollupReport) -> str:
    """What happened to the stored attribution (if refreshed) and the rollups, one line each, for a person."""
    lines = [report.attribution.describe()] if report.attribution else []
    if report.status == "fresh" and not report.rows:
        return "\n".join([*lines, f"Rollups in {report.folder} are up to date"])
    total = sum(report.rows.values())
    where = f" in {report.folder}" if report.status != "computed" else ""
    note = f"; anomaly detectors failed: {report.anomaly_error}" if report.anomaly_error else ""
    return "\n".join([*lines, f"Rollups {report.status}{where}: {total:,} rows in {report.seconds:.1f} s{note}"])
