"""Audit-trail integrity of CloudHSM logs: gaps, resets and duplicates in each HSM's sequence numbers.

The query lives in `ingest/integrity/sql/hsm_sequence_gaps.sql` (it reads a view named `hsm_events`); the
dashboard and the detectors read the same file through `SEQUENCE_SQL`. Here it runs on an in-memory DuckDB over
the lake.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from ingest.cloudhsm.parse import TABLE
from ingest.errors import ConfigError
from ingest.lake.schema import HSM_EVENTS
from ingest.lake.store import Lake

SQL_FILE = Path(__file__).resolve().parent / "sql" / "hsm_sequence_gaps.sql"
SEQUENCE_SQL = SQL_FILE.read_text()
COLUMNS = ["hsm_id", "reboot_counter", "kind", "missing", "after_seq", "before_seq", "after_time", "before_time"]


def sequence_findings(hsm_events: pa.Table) -> pa.Table:
    """Every gap, reset and duplicate in the sequence numbers of the given hsm_events rows."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("hsm_events", hsm_events)
        return con.sql(SEQUENCE_SQL).to_arrow_table()
    finally:
        con.close()


def lake_sequence_findings(lake: Lake) -> pa.Table:
    """Sequence findings over every hsm_events file of a lake."""
    paths = lake.files(TABLE)
    files = [str(p) for p in paths]
    if not files:
        raise ConfigError(f"no CloudHSM events in lake {lake.uri}: run `keytrail ingest cloudhsm` first")
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET memory_limit = '1GB'")
        columns = "hsm_id, reboot_counter, sequence_no, event_time"
        if lake.remote:  # an S3 lake: read through pyarrow's S3 filesystem
            con.register("lake_hsm", lake.dataset(paths, HSM_EVENTS))
            con.execute(f"CREATE VIEW hsm_events AS SELECT {columns} FROM lake_hsm")
        else:
            con.execute(f"CREATE VIEW hsm_events AS SELECT {columns} FROM read_parquet({files!r})")
        return con.sql(SEQUENCE_SQL).to_arrow_table()
    finally:
        con.close()
