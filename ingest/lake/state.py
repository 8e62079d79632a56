"""Ingest state (SQLite): which source objects are in the lake, stream checkpoints, runs, and the run lock.

The state is written only after the lake files it describes are complete, so a crash at any point leaves
the state behind the lake, never ahead of it; the next run re-reads what the state lacks and the
event-id deduplication drops what the lake already holds.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ingest.errors import LockedError

SCHEMA = """
CREATE TABLE IF NOT EXISTS source_objects (
    source TEXT NOT NULL,          -- e.g. s3://bucket/prefix, a local folder, lookup-events:us-east-1
    object_key TEXT NOT NULL,      -- S3 key or file path
    etag TEXT, size INTEGER, mtime REAL,
    records INTEGER, kept INTEGER, quarantined INTEGER,
    ingested_at TEXT NOT NULL,
    run_id TEXT NOT NULL,
    sha256 TEXT,                   -- of the object's bytes as ingested: with etag and size, its identity
    PRIMARY KEY (source, object_key)
);
CREATE TABLE IF NOT EXISTS unreadable_objects (
    source TEXT NOT NULL,          -- as in source_objects: a source object keytrail could not read
    object_key TEXT NOT NULL,
    error TEXT NOT NULL,           -- the OS or AWS error and what to grant; every run retries the object
    first_failed_at TEXT NOT NULL, last_failed_at TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    run_id TEXT NOT NULL,          -- the last run that tried
    PRIMARY KEY (source, object_key)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    source TEXT NOT NULL,          -- e.g. a CloudWatch log group, lookup-events:<region>
    stream TEXT NOT NULL,          -- log stream name, or '' for a whole source
    position TEXT NOT NULL,        -- JSON: where the next run resumes
    updated_at TEXT NOT NULL,
    PRIMARY KEY (source, stream)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    source TEXT,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    status TEXT NOT NULL,          -- running | ok | quarantined | failed
    stats TEXT,                    -- JSON summary
    cwd TEXT                       -- the folder the run was started in: where its relative source paths are
);
"""


# Columns added since the first state files, added in place to an older one: objects' SHA-256 (their identity),
# runs' folders (where their relative source paths are).
ADDED_COLUMNS = (("source_objects", "sha256", "TEXT"), ("runs", "cwd", "TEXT"))


def table_columns(db: sqlite3.Connection, table: str) -> set[str]:
    """The column names of a table of a state file (an older file lacks some ADDED_COLUMNS)."""
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


# The checkpoint `keytrail prune` raises: {"before": first event date kept, "set_at": …}.
RETENTION = ("retention", "")


@dataclass(frozen=True)
class ObjectVersion:
    """What identifies one version of a source object: its key plus ETag, size and mtime."""

    key: str
    etag: str | None = None
    size: int | None = None
    mtime: float | None = None


def utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class IngestState:
    """The SQLite state file of one lake."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        for table, column, kind in ADDED_COLUMNS:
            if column not in table_columns(self.db, table):
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        self.db.close()

    def known(
        self, source: str, retry_quarantined: bool = False
    ) -> dict[str, tuple[str | None, int | None, float | None]]:
        """Ingested objects of a source: key → (etag, size, mtime); with `retry_quarantined`, not those that had
        quarantined records, so a run reads them again (after the option that was missing, say)."""
        only = " AND coalesce(quarantined, 0) = 0" if retry_quarantined else ""
        rows = self.db.execute(
            f"SELECT object_key, etag, size, mtime FROM source_objects WHERE source = ?{only}", (source,)
        )
        return {key: (etag, size, mtime) for key, etag, size, mtime in rows}

    def is_new(self, known: dict[str, tuple[str | None, int | None, float | None]], obj: ObjectVersion) -> bool:
        """True when this version of the object was never ingested."""
        return known.get(obj.key) != (obj.etag, obj.size, obj.mtime)

    def record_objects(
        self,
        source: str,
        run_id: str,
        objects: Iterable[tuple[ObjectVersion, dict[str, int]]],
        sha256: dict[str, str] | None = None,
    ) -> None:
        """Mark objects as ingested, in one transaction, after their lake files are complete; `sha256` maps an
        object key to the SHA-256 of the bytes that were read."""
        now = utcnow()
        digests = sha256 or {}
        rows = [
            (source, o.key, o.etag, o.size, o.mtime, c["records"], c["kept"], c["quarantined"], now, run_id,
             digests.get(o.key))
            for o, c in objects
        ]  # fmt: skip
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                """INSERT OR REPLACE INTO source_objects (source, object_key, etag, size, mtime, records, kept,
                   quarantined, ingested_at, run_id, sha256) VALUES (?,?,?,?,?,?,?,?,?,?,?)""",
                rows,
            )
            self.db.executemany(
                "DELETE FROM unreadable_objects WHERE source = ? AND object_key = ?", [(r[0], r[1]) for r in rows]
            )

    def record_unreadable(self, source: str, run_id: str, errors: dict[str, str]) -> None:
        """Remember objects that could not be read, with why; they stay out of `source_objects`, so every run
        retries them until one reads them."""
        now = utcnow()
        self.db.executemany(
            """INSERT INTO unreadable_objects VALUES (?,?,?,?,?,1,?)
               ON CONFLICT (source, object_key) DO UPDATE SET error = excluded.error,
               last_failed_at = excluded.last_failed_at, attempts = attempts + 1, run_id = excluded.run_id""",
            [(source, key, error, now, now, run_id) for key, error in errors.items()],
        )

    def retention_floor(self) -> dt.date | None:
        """The first event date `keytrail prune` keeps: no ingest lands anything older again."""
        floor = self.checkpoint(*RETENTION)
        return dt.date.fromisoformat(floor["before"]) if floor else None

    def checkpoint(self, source: str, stream: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT position FROM checkpoints WHERE source = ? AND stream = ?", (source, stream)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def set_checkpoint(self, source: str, stream: str, position: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO checkpoints VALUES (?,?,?,?)", (source, stream, json.dumps(position), utcnow())
        )

    def start_run(self, run_id: str, command: str, source: str) -> None:
        self.db.execute(
            "INSERT INTO runs (run_id, command, source, started_at, status, cwd) VALUES (?,?,?,?,?,?)",
            (run_id, command, source, utcnow(), "running", os.getcwd()),
        )

    def end_run(self, run_id: str, status: str, stats: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE runs SET ended_at = ?, status = ?, stats = ? WHERE run_id = ?",
            (utcnow(), status, json.dumps(stats, default=str), run_id),
        )


# Lock files held by this process with `reentrant=True` (a nightly run): nested ingests inside it pass through.
_REENTRANT: set[Path] = set()


class RunLock:
    """An exclusive lock on a lake for one writing run.

    It is an OS file lock (flock): the kernel releases it when the holder dies, even by kill -9, so a
    stale lock from a killed run never blocks the next one. The holder writes its pid, host and start time
    into the file and empties it on a clean exit; text still there when the lock is acquired means the
    previous holder died holding it, which `stale` reports (the lock is then taken over).

    A lock taken with `reentrant=True` lets nested runs of the same process on the same file through (the
    nightly job holds the lock across the ingests it runs); any other process, or a plain nested lock, is
    refused.
    """

    def __init__(self, path: Path, reentrant: bool = False, command: str = "") -> None:
        self.path = path
        self.reentrant = reentrant
        self.command = command
        self.handle: IO[str] | None = None
        self.nested = False
        self.stale: str | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.resolve() in _REENTRANT:
            self.nested = True
            return self
        handle = open(self.path, "a+")  # noqa: SIM115 - held for the life of the run
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise LockedError(
                f"another keytrail run is writing to this lake ({holder}); lock file {self.path}. "
                "Wait for it to finish, or run against another --lake."
            ) from None
        handle.seek(0)
        self.stale = handle.read().strip() or None
        handle.seek(0)
        handle.truncate()
        command = f" ({self.command})" if self.command else ""
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {utcnow()}{command}")
        handle.flush()
        os.fsync(handle.fileno())
        self.handle = handle
        if self.reentrant:
            _REENTRANT.add(self.path.resolve())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.nested:
            return
        _REENTRANT.discard(self.path.resolve())
        if self.handle:
            self.handle.seek(0)
            self.handle.truncate()  # a clean exit: an empty lock file is not stale
            self.handle.flush()
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
