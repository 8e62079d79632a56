"""`keytrail status`: what a lake holds and how current it is, in one look — its size, the tenants file in effect,
the events per table, quarantine, stored attribution and rollups, the last runs, what each source has delivered
and how fresh each log stream is. It only reads (the ingest state is opened read-only)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analytics import connect, run_query
from analytics.attribution_store import stored_days
from analytics.rollups import read_manifest, rollups_fresh
from ingest.lake.store import Lake
from keytrail.output import iso


@dataclass
class LakeStatus:
    """Everything `keytrail status` shows."""

    lake: str
    size_bytes: int
    files: int
    tenants_file: str | None
    tenants_origin: str
    tables: list[dict[str, Any]]
    attribution: dict[str, int]
    rollups: str
    streams: list[dict[str, Any]]
    runs: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)


def lake_status(lake: Lake, tenants: str | None = None, now: dt.datetime | None = None) -> LakeStatus:
    """Read the status of a (local or S3) lake."""
    now = now or dt.datetime.now(dt.UTC)
    con = connect(lake.require(), tenants)
    try:
        tenants_file, origin = con.sql("SELECT tenants_file, tenants_origin FROM settings").fetchall()[0]
        size_bytes, files = _size(lake)
        status = LakeStatus(
            lake=lake.uri, size_bytes=size_bytes, files=files, tenants_file=tenants_file, tenants_origin=origin,
            tables=run_query(con, "status/tables").to_arrow_table().to_pylist(),
            attribution=_attribution(con, lake), rollups=_rollups(lake, tenants),
            streams=run_query(con, "status/streams", {"now": now}).to_arrow_table().to_pylist(),
        )  # fmt: skip
    finally:
        con.close()
    _read_state(lake.state_dir / "ingest.sqlite", status)
    return status


def _size(lake: Lake) -> tuple[int, int]:
    """(bytes, files) of the lake's data; for S3 only its tables' Parquet files."""
    if lake.remote:
        paths = [
            p
            for table in ("kms_events", "hsm_events", "access_events", "_quarantine")
            for p in lake.list_parquet(lake.root / table)
        ]
        infos = lake.fs.get_file_info([p.as_posix() for p in paths])
        return sum(i.size or 0 for i in infos), len(infos)
    files = [p for p in lake.root.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def _attribution(con: Any, lake: Lake) -> dict[str, int]:
    if lake.remote:
        return {}
    current, stale = stored_days(con, lake)
    return {"days_current": current, "days_stale": stale}


def _rollups(lake: Lake, tenants: str | None) -> str:
    if lake.remote:
        return "not kept for S3 lakes"
    if read_manifest(lake.uri) is None:
        return "never built: run keytrail rollups"
    return "fresh" if rollups_fresh(lake.uri, tenants) else "stale: run keytrail rollups (or keytrail nightly)"


def _read_state(path: Path, status: LakeStatus) -> None:
    """Runs, sources and checkpoints from the ingest state, opened read-only (status never writes)."""
    if not path.exists():
        return
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        status.runs = [
            dict(r)
            for r in db.execute(
                "SELECT started_at, command, source, status, ended_at FROM runs ORDER BY started_at DESC LIMIT 10"
            )
        ]
        status.sources = [
            dict(r)
            for r in db.execute(
                "SELECT source, count(*) AS objects, sum(kept) AS events_kept, sum(quarantined) AS quarantined, "
                "max(ingested_at) AS last_ingested FROM source_objects GROUP BY source ORDER BY source"
            )
        ]
        status.checkpoints = [
            dict(r)
            for r in db.execute("SELECT source, stream, updated_at, position FROM checkpoints ORDER BY source, stream")
        ]
    finally:
        db.close()  # fmt: skip


def as_json(status: LakeStatus) -> str:
    """One JSON object, times as ISO 8601."""
    return json.dumps(status.__dict__, default=lambda v: iso(v) if isinstance(v, dt.date) else str(v))
