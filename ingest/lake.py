"""The Parquet lake: Hive-partitioned tables written atomically, and the quarantine beside them.

Layout under the lake root::

    kms_events/event_date=2026-11-29/part-<run>-<n>.parquet
    hsm_events/event_date=…/part-….parquet
    _quarantine/<table>/part-<run>-<n>.parquet
    _state/ingest.sqlite

A file is written under a `.tmp` name and renamed when complete, so a reader never sees half a file and a
killed writer leaves at worst a temp file, which `remove_orphans` deletes on the next run.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.schema import QUARANTINE, TABLES

DEFAULT_LAKE = "keytrail-lake"
TMP_SUFFIX = ".tmp"


class Lake:
    """A lake folder on local disk."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def table_dir(self, table: str) -> Path:
        return self.root / table

    def partition_dir(self, table: str, day: dt.date) -> Path:
        return self.table_dir(table) / f"event_date={day.isoformat()}"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "_quarantine"

    @property
    def state_dir(self) -> Path:
        return self.root / "_state"

    def files(self, table: str, day: dt.date | None = None) -> list[Path]:
        """Complete Parquet files of a table (or of one day's partition), oldest name first."""
        base = self.partition_dir(table, day) if day else self.table_dir(table)
        return sorted(base.rglob("*.parquet")) if base.exists() else []

    def days(self, table: str) -> list[dt.date]:
        """The event dates that have a partition folder."""
        base = self.table_dir(table)
        if not base.exists():
            return []
        names = (p.name.removeprefix("event_date=") for p in base.iterdir() if p.is_dir())
        return sorted(dt.date.fromisoformat(n) for n in names)

    def write_partition(self, table: str, day: dt.date, rows: pa.Table, run_id: str) -> Path:
        """Write one day's rows of a table as a new immutable file; returns its final path."""
        target = self.partition_dir(table, day) / f"part-{run_id}-{uuid.uuid4().hex[:8]}.parquet"
        write_atomic(rows.cast(TABLES[table]), target)
        return target

    def write_quarantine(self, rows: pa.Table, run_id: str) -> Path | None:
        """Append quarantined records (with reason and origin); nothing is written for no rows."""
        if rows.num_rows == 0:
            return None
        target = self.quarantine_dir / f"part-{run_id}-{uuid.uuid4().hex[:8]}.parquet"
        write_atomic(rows.cast(QUARANTINE), target)
        return target

    def remove_orphans(self) -> list[Path]:
        """Delete temp files a killed writer left behind."""
        orphans = list(self.root.rglob(f"*{TMP_SUFFIX}")) if self.root.exists() else []
        for path in orphans:
            path.unlink(missing_ok=True)
        return orphans


def write_atomic(rows: pa.Table, target: Path) -> None:
    """Write a zstd Parquet file under a temp name, fsync it, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + TMP_SUFFIX)
    pq.write_table(
        rows,
        tmp,
        compression="zstd",
        compression_level=3,
        row_group_size=256_000,
        use_dictionary=True,
        write_statistics=True,
    )
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)


def new_run_id() -> str:
    """A sortable, unique id for one ingest run: UTC time plus a random suffix."""
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{now}-{uuid.uuid4().hex[:6]}"


def quarantine_rows(table: str, items: Iterator[tuple[str, int | None, str, str | None]]) -> pa.Table:
    """Build quarantine rows from (source_object, record_index, reason, raw) tuples."""
    rows = list(items)
    now = dt.datetime.now(dt.UTC)
    return pa.table(
        {
            "table_name": [table] * len(rows),
            "source_object": [r[0] for r in rows],
            "record_index": [r[1] for r in rows],
            "reason": [r[2] for r in rows],
            "raw": [r[3] for r in rows],
            "quarantined_at": [now] * len(rows),
        },
        schema=QUARANTINE,
    )
