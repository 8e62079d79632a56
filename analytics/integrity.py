"""CloudTrail log-file integrity for the dashboard and notebooks, from the `trail_verification` view (the
verdicts `keytrail verify cloudtrail` keeps in the lake; the newest run that checked an object speaks for it)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os

import duckdb
import pyarrow as pa

from analytics.queries import run_query
from ingest.lake.store import Lake

TABLE = "trail_verification"


def verified_events(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date) -> pa.Table:
    """day, verification (verified | hash only | problem | not verified), events: which KMS events rest on
    verified trail files."""
    return run_query(con, "integrity/verified_events", {"start": start, "end": end}).to_arrow_table()


def verification_summary(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Per account and region: hours, valid digests and log files, problems, signatures checked, last verified."""
    return run_query(con, "integrity/verification_summary").to_arrow_table()


def verification_problems(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date) -> pa.Table:
    """Every problem of the newest verdicts whose hour falls on a day in [start, end]."""
    return run_query(con, "integrity/verification_problems", {"start": start, "end": end}).to_arrow_table()


def verification_signature(lake: str | os.PathLike[str]) -> str:
    """A hash of the verdict files' names (immutable once written): changes exactly when a verification ran."""
    store = Lake(lake)
    names = [p.name for p in store.list_parquet(store.root / TABLE)]
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
