"""The original text of a lake row's record, fetched through its pointer: the trail file it came from (a local
file or an S3 object, `source_object`) and its index in the file's `Records` (`record_index`).

The lake keeps no copy of a record's text unless asked to (keep_raw): the evidence is the trail file, which
CloudTrail signs through its digest files. Before a record is taken from a file, the file is checked to be the
one ingested: the identity the ingest state holds for it (S3 ETag, size, SHA-256 of its bytes). A file that is
gone or changed is said to be so, never read as if it were the same.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ingest.aws import explain_client_error
from ingest.cloudtrail.salvage import salvage
from ingest.cloudtrail.sources import parse_s3_uri
from ingest.errors import KeytrailError
from ingest.lake.state import table_columns

# Trail files an Originals keeps in memory, the most recently fetched: the records of one file are often wanted
# together (a file delivered twice), and a run must not keep every file it fetched.
CACHED_FILES = 16


class OriginalUnavailable(KeytrailError):
    """The original record cannot be read from its source: the object is gone, changed, or was never a file."""


@dataclass(frozen=True)
class Identity:
    """What the ingest state recorded of one source object when it was read."""

    etag: str | None
    size: int | None
    sha256: str | None
    folder: str | None = None  # the folder the recording run started in (a relative local path is relative to it)


def recorded_identity(state_file: Path, object_key: str) -> Identity | None:
    """The identity the ingest state holds for an object, read without writing to the state (None: not there)."""
    if not state_file.exists():
        return None
    db = sqlite3.connect(f"file:{state_file}?mode=ro", uri=True)
    try:
        sha = "o.sha256" if "sha256" in table_columns(db, "source_objects") else "NULL"
        cwd = "r.cwd" if "cwd" in table_columns(db, "runs") else "NULL"
        row = db.execute(
            f"SELECT o.etag, o.size, {sha}, {cwd} FROM source_objects AS o LEFT JOIN runs AS r USING (run_id) "
            "WHERE o.object_key = ? ORDER BY o.ingested_at DESC LIMIT 1",
            (object_key,),
        ).fetchone()
    finally:
        db.close()
    return Identity(*row) if row else None


def record_at(data: bytes, index: int, source_object: str) -> str:
    """The text of record `index` of a trail file's bytes, exactly as the file holds it."""
    records = dict(salvage(data).records)
    if index not in records:
        raise OriginalUnavailable(f"{source_object} has no readable record {index}: the file is not the one ingested")
    return records[index]


class Originals:
    """Fetches original records from local trail files and S3 (`s3_client` makes a boto3 S3 client when one is
    first needed), checked against the identity in the ingest state file."""

    def __init__(self, state_file: Path, s3_client: Callable[[], Any]) -> None:
        self.state_file = state_file
        self.s3_client = s3_client
        self._client: Any = None
        self._files: dict[tuple[str, str | None], bytes] = {}

    def record(self, source_object: str, index: int, sha256: str | None = None) -> str:
        """The record's text as its source holds it; OriginalUnavailable says why not. `sha256`: the file's as a
        run that has not recorded it in the state yet read it (its lake rows point into those bytes)."""
        return record_at(self.object_bytes(source_object, sha256), index, source_object)

    def object_bytes(self, source_object: str, sha256: str | None = None) -> bytes:
        """The bytes of the source object, once checked to be the version that was ingested (the one the state
        recorded, or the one with `sha256`)."""
        if source_object.startswith("lookup-events:"):
            raise OriginalUnavailable(f"{source_object} is not a file: its records' text is kept in the lake's raw")
        if (source_object, sha256) not in self._files:
            identity = Identity(None, None, sha256) if sha256 else recorded_identity(self.state_file, source_object)
            if identity is None:
                raise OriginalUnavailable(
                    f"{source_object} is not in the ingest state ({self.state_file}): keytrail cannot tell "
                    "whether it is the file that was ingested"
                )
            remote = source_object.startswith("s3://")
            data = self._fetch_s3(source_object, identity) if remote else _read_local(source_object, identity)
            check_identity(source_object, data, identity)
            if len(self._files) >= CACHED_FILES:
                self._files.pop(next(iter(self._files)))
            self._files[source_object, sha256] = data
        return self._files[source_object, sha256]

    def _fetch_s3(self, source_object: str, identity: Identity) -> bytes:
        bucket, key = parse_s3_uri(source_object)
        if self._client is None:
            self._client = self.s3_client()
        try:
            got = self._client.get_object(Bucket=bucket, Key=key)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise OriginalUnavailable(
                    f"{source_object} is gone from S3: the record's original is lost unless the bucket keeps "
                    "versions; ingest with --keep-raw (keep_raw = true) for sources deleted after ingest"
                ) from None
            raise explain_client_error(err, source_object) from err
        etag = str(got.get("ETag", "")).strip('"')
        if identity.etag and etag != identity.etag:
            raise OriginalUnavailable(
                f"{source_object} changed since it was ingested: ETag {identity.etag} then, {etag} now"
            )
        return bytes(got["Body"].read())


def _read_local(source_object: str, identity: Identity) -> bytes:
    """A local trail file's bytes; a relative path is read from the folder the run that recorded it started in
    (`keytrail ingest cloudtrail trails/` then `keytrail event … --raw` from elsewhere)."""
    try:
        return (Path(identity.folder or ".") / source_object).read_bytes()
    except FileNotFoundError:
        raise OriginalUnavailable(
            f"{source_object} is gone: the record's original is lost; ingest with --keep-raw (keep_raw = true) "
            "for sources deleted after ingest"
        ) from None
    except OSError as err:
        raise OriginalUnavailable(f"cannot read {source_object}: {err.strerror or err}") from None


def check_identity(source_object: str, data: bytes, identity: Identity) -> None:
    """Raise OriginalUnavailable when the bytes are not those of the version that was ingested."""
    if identity.size is not None and len(data) != identity.size:
        raise OriginalUnavailable(
            f"{source_object} changed since it was ingested: {identity.size} bytes then, {len(data)} now"
        )
    sha256 = hashlib.sha256(data).hexdigest()
    if identity.sha256 and sha256 != identity.sha256:
        raise OriginalUnavailable(
            f"{source_object} changed since it was ingested: SHA-256 {identity.sha256} then, {sha256} now"
        )
