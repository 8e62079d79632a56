"""The Parquet lake: Hive-partitioned tables written atomically, and the quarantine beside them.

Layout under the lake root (a local folder or `s3://bucket/prefix`)::

    kms_events/event_date=2026-11-29/part-<run>-<n>.parquet
    hsm_events/event_date=…/part-….parquet
    _quarantine/<table>/part-<run>-<n>.parquet
    _findings/<at>-<n>.parquet    (one triage action each, analytics/triage.py)
    _rollups/usage_hourly.parquet
    _state/ingest.sqlite          (local lakes; an S3 lake keeps its state and lock in a local `state_dir`)

On local disk a file is written under a `.tmp` name and renamed when complete, so a reader never sees half a
file and a killed writer leaves at worst a temp file, which `remove_orphans` deletes on the next run. On S3
a file is written through pyarrow's S3 filesystem straight to its final key: an object (single or multipart
upload) only becomes visible once complete, which gives the same guarantee. Scratch work (DuckDB spill,
downloads, files being staged) always happens on local disk, in `work_dir`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import pyarrow.dataset as ds

from ingest.errors import ConfigError
from ingest.lake.schema import QUARANTINE, TABLES

DEFAULT_LAKE = "keytrail-lake"
TMP_SUFFIX = ".tmp"
# What only a keytrail lake has at its top: its tables, or the ingest state of a run that found nothing yet.
LAKE_MARKERS = ("kms_events", "hsm_events", "_state")
# Where an S3 lake keeps its lock, SQLite state and scratch space unless told otherwise.
DEFAULT_REMOTE_STATE = "keytrail-state"


class Lake:
    """A lake folder on local disk, or under `s3://bucket/prefix` (read and written through pyarrow's S3
    filesystem; the endpoint comes from `endpoint_url`, else $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        state_dir: str | os.PathLike[str] | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        self.uri = str(root)
        self.remote = self.is_remote(self.uri)
        if self.remote:
            self.fs: pafs.FileSystem = s3_filesystem(endpoint_url)
            self.root = Path(self.uri.removeprefix("s3://").rstrip("/"))  # bucket/prefix on self.fs
            default_state = Path(os.environ.get("KEYTRAIL_STATE_DIR", DEFAULT_REMOTE_STATE)) / _slug(self.uri)
            self._state_dir = Path(state_dir) if state_dir else default_state
            self.work_dir = self._state_dir / "work"
        else:
            self.fs = pafs.LocalFileSystem()
            self.root = Path(root)
            self._state_dir = Path(state_dir) if state_dir else self.root / "_state"
            self.work_dir = self.root
        self._quarantine_keys: set[QuarantineKey] | None = None

    def __repr__(self) -> str:
        return f"Lake({self.uri!r})"

    @staticmethod
    def is_remote(uri: str) -> bool:
        """True for an `s3://` lake."""
        return uri.startswith("s3://")

    def require(self) -> Lake:
        """This lake, or a ConfigError naming the path when it is not one: only ingest and nightly create a lake,
        so a typo in --lake is an error, not an empty answer."""
        where = "--lake (or $KEYTRAIL_LAKE)"
        if not self.remote and self.root.is_file():
            raise ConfigError(f"{self.uri} is a file, not a keytrail lake folder: check {where}")
        markers = [(self.root / name).as_posix() for name in LAKE_MARKERS]
        if not any(info.type != pafs.FileType.NotFound for info in self.fs.get_file_info(markers)):
            raise ConfigError(
                f"{self.uri} is not a keytrail lake (it has none of {', '.join(LAKE_MARKERS)}): check {where}, or "
                f"create it with `keytrail ingest cloudtrail SOURCE --lake {self.uri}`"
            )
        return self

    def table_dir(self, table: str) -> Path:
        return self.root / table

    def partition_dir(self, table: str, day: dt.date) -> Path:
        return self.table_dir(table) / f"event_date={day.isoformat()}"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "_quarantine"

    @property
    def findings_dir(self) -> Path:
        """Triage actions on anomaly findings, one file each (analytics/triage.py)."""
        return self.root / "_findings"

    @property
    def state_dir(self) -> Path:
        """Local folder of the lock and the SQLite ingest state (never on S3: SQLite and flock need a disk)."""
        return self._state_dir

    def files(self, table: str, day: dt.date | None = None) -> list[Path]:
        """Complete Parquet files of a table (or of one day's partition), oldest name first.

        For an S3 lake the paths are `bucket/prefix/…` on `self.fs`; read them through `dataset()`.
        """
        base = self.partition_dir(table, day) if day else self.table_dir(table)
        return self.list_parquet(base)

    def list_parquet(self, base: Path) -> list[Path]:
        """Complete Parquet files under a folder of the lake (temp files excluded), sorted."""
        if not self.remote:
            return sorted(base.rglob("*.parquet")) if base.exists() else []
        infos = self.fs.get_file_info(pafs.FileSelector(base.as_posix(), recursive=True, allow_not_found=True))
        return sorted(Path(i.path) for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet"))

    def partitions(self, table: str) -> dict[dt.date, list[Path]]:
        """Files of each event-date partition of a table, from one listing."""
        found: dict[dt.date, list[Path]] = {}
        for path in self.files(table):
            name = path.parent.name
            if name.startswith("event_date="):
                found.setdefault(dt.date.fromisoformat(name.removeprefix("event_date=")), []).append(path)
        return dict(sorted(found.items()))

    def days(self, table: str) -> list[dt.date]:
        """The event dates that have a partition folder."""
        if self.remote:
            return list(self.partitions(table))
        base = self.table_dir(table)
        if not base.exists():
            return []
        names = (p.name.removeprefix("event_date=") for p in base.iterdir() if p.is_dir())
        return sorted(dt.date.fromisoformat(n) for n in names)

    def dataset(self, files: list[Path], schema: pa.Schema | None = None, hive_base: Path | None = None) -> ds.Dataset:
        """A pyarrow dataset over lake files (local or S3), for DuckDB to scan (`con.register`).

        With `hive_base` (a table folder) the `event_date` partition column is added as a DATE.
        """
        import pyarrow.dataset as ds  # here, not at the top: it loads pandas (0.2 s), which a local ingest never needs

        partitioning = None
        if hive_base is not None:
            partitioning = ds.partitioning(pa.schema([("event_date", pa.date32())]), flavor="hive")
            if schema is not None:
                schema = schema.append(pa.field("event_date", pa.date32()))
        return ds.dataset(
            [p.as_posix() for p in files],
            schema=schema,
            format="parquet",
            filesystem=self.fs,
            partitioning=partitioning,
            partition_base_dir=hive_base.as_posix() if hive_base is not None else None,
        )

    def write_partition(self, table: str, day: dt.date, rows: pa.Table, run_id: str) -> Path:
        """Write one day's rows of a table as a new immutable file; returns its final path."""
        target = self.partition_dir(table, day) / f"part-{run_id}-{uuid.uuid4().hex[:8]}.parquet"
        self.write_parquet(rows.cast(TABLES[table]), target)
        return target

    def write_quarantine(self, rows: pa.Table, run_id: str) -> Path | None:
        """Append quarantined records (with reason and origin) that the quarantine does not hold yet: a record
        is there once per (table, source object, record index, content SHA-256), whether a killed run is rerun
        or its file is copied again. Nothing is written for no new rows."""
        known = self._quarantined()
        keep = []
        for key in _quarantine_keys(rows):
            keep.append(key not in known)
            known.add(key)
        rows = rows.filter(pa.array(keep, pa.bool_()))
        if rows.num_rows == 0:
            return None
        target = self.quarantine_dir / f"part-{run_id}-{uuid.uuid4().hex[:8]}.parquet"
        self.write_parquet(rows.cast(QUARANTINE), target)
        return target

    def _quarantined(self) -> set[QuarantineKey]:
        """The keys of every quarantined record, read once per Lake (a run holds the lock: nobody else adds)."""
        if self._quarantine_keys is None:
            files = self.list_parquet(self.quarantine_dir)
            table = self.dataset(files, QUARANTINE).to_table() if files else QUARANTINE.empty_table()
            self._quarantine_keys = set(_quarantine_keys(table))
        return self._quarantine_keys

    def write_parquet(self, rows: pa.Table, target: Path) -> None:
        """Write a complete Parquet file at `target`: temp + rename on disk, one atomic upload on S3."""
        if not self.remote:
            write_atomic(rows, target)
            return
        pq.write_table(rows, target.as_posix(), filesystem=self.fs, **PARQUET_OPTIONS)

    def put_file(self, local: Path, target: Path) -> None:
        """Move a complete local file into the lake at `target` (fsync + rename on disk, upload then delete on
        S3), so it is durable before it becomes visible."""
        if not self.remote:
            target.parent.mkdir(parents=True, exist_ok=True)
            fsync(local)
            os.replace(local, target)
            return
        local_fs = pafs.LocalFileSystem()
        pafs.copy_files(str(local), target.as_posix(), source_filesystem=local_fs, destination_filesystem=self.fs)
        local.unlink()

    def delete(self, path: Path) -> None:
        """Remove one lake file (missing is fine: a rerun may finish what a killed run started)."""
        if not self.remote:
            path.unlink(missing_ok=True)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(path.as_posix())

    def exists(self, path: Path) -> bool:
        if not self.remote:
            return path.exists()
        return bool(self.fs.get_file_info(path.as_posix()).type == pafs.FileType.File)

    def remove_partition_dir(self, table: str, day: dt.date) -> None:
        """Remove an emptied partition folder (S3 has no folders to remove)."""
        if not self.remote:
            shutil.rmtree(self.partition_dir(table, day), ignore_errors=True)

    def remove_orphans(self) -> list[Path]:
        """Delete temp files a killed writer left behind (on S3 an unfinished upload is never visible)."""
        base = self.work_dir
        orphans = list(base.rglob(f"*{TMP_SUFFIX}")) if base.exists() else []
        for path in orphans:
            path.unlink(missing_ok=True)
        return orphans


def s3_filesystem(endpoint_url: str | None = None) -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem with the standard AWS credential chain; the endpoint from the argument or the
    standard $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL variables (S3-compatible stores, a local test server)."""
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if not endpoint:
        return pafs.S3FileSystem(region=region)
    parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
    return pafs.S3FileSystem(region=region, endpoint_override=parsed.netloc, scheme=parsed.scheme)


def _slug(uri: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", uri.removeprefix("s3://")).strip("_")


PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "row_group_size": 256_000,
    "use_dictionary": True,
    "write_statistics": True,
}


def write_atomic(rows: pa.Table, target: Path) -> None:
    """Write a zstd Parquet file under a temp name, fsync it, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + TMP_SUFFIX)
    pq.write_table(rows, tmp, **PARQUET_OPTIONS)
    fsync(tmp)
    os.replace(tmp, target)


def fsync(path: Path) -> None:
    """Flush a file's bytes to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_run_id() -> str:
    """A sortable, unique id for one ingest run: UTC time plus a random suffix."""
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{now}-{uuid.uuid4().hex[:6]}"


# (table_name, source_object, record_index, content_sha256): one quarantined record.
QuarantineKey = tuple[str, str, int | None, str]


def quarantine_rows(table: str, items: Iterator[tuple[str, int | None, str, str | bytes | None]]) -> pa.Table:
    """Build quarantine rows from (source_object, record_index, reason, raw) tuples. `raw` is the record as the
    source gave it: bytes, or text (lone surrogates from a `surrogateescape` decode stand for the bytes that were
    not UTF-8). Valid UTF-8 lands in `raw`; anything else, never altered, in `raw_base64`."""
    rows = [(obj, index, reason, *_evidence(raw, reason)) for obj, index, reason, raw in items]
    now = dt.datetime.now(dt.UTC)
    return pa.table(
        {
            "table_name": [table] * len(rows),
            "source_object": [r[0] for r in rows],
            "record_index": [r[1] for r in rows],
            "reason": [r[2] for r in rows],
            "raw": [r[3] for r in rows],
            "quarantined_at": [now] * len(rows),
            "raw_base64": [r[4] for r in rows],
            "content_sha256": [r[5] for r in rows],
        },
        schema=QUARANTINE,
    )


def _evidence(raw: str | bytes | None, reason: str) -> tuple[str | None, str | None, str]:
    """(raw text if UTF-8, base64 of the bytes otherwise, SHA-256 of the bytes or of the reason)."""
    if raw is None:
        return None, None, hashlib.sha256(reason.encode()).hexdigest()
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    sha = hashlib.sha256(data).hexdigest()
    try:
        return data.decode("utf-8"), None, sha
    except UnicodeDecodeError:
        return None, base64.b64encode(data).decode("ascii"), sha


def _quarantine_keys(rows: pa.Table) -> list[QuarantineKey]:
    """The key of each quarantine row (rows written before `content_sha256` existed: hashed from raw/reason)."""
    columns = ["table_name", "source_object", "record_index", "content_sha256", "raw", "reason"]
    return [
        (table, obj, index, sha or _evidence(raw, reason)[2])
        for table, obj, index, sha, raw, reason in zip(*(rows.column(c).to_pylist() for c in columns), strict=True)
    ]
