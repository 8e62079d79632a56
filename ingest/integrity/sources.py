"""What CloudTrail log-file verification reads: digests and log files in an S3 trail bucket or in a local folder
copied out of one, and CloudTrail's public keys (ListPublicKeys), cached in the ingest state.

A folder copy has lost the S3 metadata that holds each digest's signature. Beside a digest `X.json.gz`, a
sidecar `X.json.gz.sig` can bring it back: the JSON that `aws s3api head-object --bucket B --key K` prints
(its `Metadata` object is read), or just `{"signature": "…", "signature-algorithm": "SHA256withRSA"}`. A
digest without one is checked by hash only, and its verdict says so (`signature_unchecked`).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import rsa

from ingest.aws import explain_client_error
from ingest.cloudtrail.sources import S3Trail, TrailFilter
from ingest.errors import ConfigError
from ingest.integrity.digests import (
    DIGEST_PATH,
    Digest,
    DigestName,
    fingerprint,
    parse_digest_name,
    public_key,
    sha256_of_content,
)
from ingest.lake.state import utcnow
from ingest.raw import CHUNK, Unreadable, cannot_read

SIDECAR = ".sig"
# A digest ends up to an hour after the last delivery it lists.
DIGEST_LAG = dt.timedelta(hours=1)

KEYS_TABLE = """
CREATE TABLE IF NOT EXISTS cloudtrail_public_keys (
    region TEXT NOT NULL,
    fingerprint TEXT NOT NULL,     -- hex MD5 of the DER key, as digests name it
    value BLOB NOT NULL,           -- DER, as ListPublicKeys returned it
    valid_from TEXT, valid_until TEXT,
    fetched_at TEXT NOT NULL,
    PRIMARY KEY (region, fingerprint)
);
"""


class DigestStore(Protocol):
    """Where verification reads digests and log files (S3Digests or LocalDigests)."""

    uri: str

    def list_digests(self, flt: TrailFilter) -> list[tuple[str, DigestName]]:
        """Locations of the digests the filter admits, with what their path says."""
        ...

    def read(self, location: str) -> tuple[bytes, dict[str, str] | None] | None:
        """A digest's stored bytes and its signature metadata (None: a copy without any); None if it is gone.
        Raises Unreadable when the store refuses it."""
        ...

    def locate(self, near: str, bucket: str, key: str) -> str:
        """Where this store keeps the object a digest at `near` recorded as bucket/key."""
        ...

    def content_sha256(self, location: str) -> str | None:
        """Hex SHA-256 of an object's uncompressed content; None when it is not there. Raises Unreadable when
        it cannot be read back to its content (corrupt or truncated gzip, refused)."""
        ...

    def contains(self, object_key: str) -> bool:
        """True when an ingested object key (ingest state) lies under this source."""
        ...


def window_end(flt: TrailFilter) -> dt.datetime | None:
    """The end of the last delivery day the window touches (as for the listing)."""
    last = flt.last_day()
    return dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC) if last else None


def admits_digest(name: DigestName, flt: TrailFilter) -> bool:
    """True for a digest of an admitted account and region that covers deliveries from `since` to `until`."""
    if (flt.accounts and name.account not in flt.accounts) or (flt.regions and name.region not in flt.regions):
        return False
    if flt.since and name.end < flt.since:
        return False
    end = window_end(flt)
    return not (end and name.end > end + DIGEST_LAG)


class S3Digests(S3Trail):
    """The digests of a CloudTrail bucket (or prefix), listed day by day as trail files are."""

    folder = "CloudTrail-Digest/"

    def list_digests(self, flt: TrailFilter) -> list[tuple[str, DigestName]]:
        found = []
        try:
            for prefix in self._listing_prefixes(flt):
                for obj in self._objects(prefix):
                    name = parse_digest_name(obj["Key"])
                    if name and admits_digest(name, flt):
                        found.append((f"s3://{self.bucket}/{obj['Key']}", name))
        except ClientError as err:
            raise explain_client_error(err, self.uri) from err
        return found

    def read(self, location: str) -> tuple[bytes, dict[str, str] | None] | None:
        obj = self._get(location)
        return (bytes(obj["Body"].read()), dict(obj.get("Metadata") or {})) if obj else None

    def locate(self, near: str, bucket: str, key: str) -> str:
        return f"s3://{bucket}/{key}"

    def content_sha256(self, location: str) -> str | None:
        obj = self._get(location)
        return sha256_of_content(obj["Body"].iter_chunks(CHUNK)) if obj else None

    def contains(self, object_key: str) -> bool:
        return object_key.startswith(f"s3://{self.bucket}/{self.prefix}")

    def _get(self, location: str) -> dict[str, Any] | None:
        bucket, _, key = location.removeprefix("s3://").partition("/")
        try:
            return dict(self.client.get_object(Bucket=bucket, Key=key))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise Unreadable(str(explain_client_error(err, location))) from err


class LocalDigests:
    """Digests and log files in a folder with the bucket's layout (`…/AWSLogs/…`), e.g. from `aws s3 sync`."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise ConfigError(
                f"{root} is not a folder: give the folder copied out of the trail bucket (the one holding "
                "AWSLogs/), or s3://bucket/prefix"
            )
        self.root = root
        self.uri = str(root)

    def list_digests(self, flt: TrailFilter) -> list[tuple[str, DigestName]]:
        found = []
        for path in sorted(self.root.rglob("*_CloudTrail-Digest_*.json.gz")):
            name = parse_digest_name(path.as_posix())
            if name and admits_digest(name, flt):
                found.append((str(path), name))
        return found

    def read(self, location: str) -> tuple[bytes, dict[str, str] | None] | None:
        path = Path(location)
        if not path.is_file():
            return None
        try:
            data = path.read_bytes()
        except OSError as err:
            raise Unreadable(cannot_read(err)) from None
        return data, read_sidecar(path)

    def locate(self, near: str, bucket: str, key: str) -> str:
        # The copy keeps the layout from AWSLogs/ on; what came before it (bucket, prefix) is the local root.
        match = DIGEST_PATH.search(near)
        base = near[: match.start()] if match else ""
        return base + key[key.find("AWSLogs/") :] if "AWSLogs/" in key else base + key

    def content_sha256(self, location: str) -> str | None:
        path = Path(location)
        if not path.is_file():
            return None
        try:
            with path.open("rb") as fh:
                return sha256_of_content(iter(lambda: fh.read(CHUNK), b""))
        except OSError as err:
            raise Unreadable(cannot_read(err)) from None

    def contains(self, object_key: str) -> bool:
        return object_key.startswith(str(self.root).rstrip("/") + "/")


def read_sidecar(digest: Path) -> dict[str, str] | None:
    """The signature metadata kept beside a copied digest (`<digest>.sig`), or None when there is none."""
    path = digest.with_name(digest.name + SIDECAR)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
        meta = doc.get("Metadata", doc)
        return {"signature": str(meta["signature"]), "signature-algorithm": str(meta["signature-algorithm"])}
    except (ValueError, KeyError, AttributeError, TypeError):
        raise ConfigError(
            f"{path} is not a signature sidecar: write it with `aws s3api head-object --bucket BUCKET "
            f'--key <the digest\'s key> > {path.name}`, or as {{"signature": "…", "signature-algorithm": '
            '"SHA256withRSA"}'
        ) from None


def open_store(source: str, client: Callable[[], Any]) -> S3Digests | LocalDigests:
    """The store of an s3://bucket/prefix (its client made only then) or of a local folder."""
    return S3Digests(client(), source) if source.startswith("s3://") else LocalDigests(Path(source))


class PublicKeys:
    """CloudTrail's digest-signing public keys by region and fingerprint. ListPublicKeys is called once per
    region for the time span of the digests whose key is not cached yet; keys are kept in the ingest state
    (a key never changes; new ones appear as they rotate)."""

    def __init__(self, db: sqlite3.Connection, client_for: Callable[[str], Any]) -> None:
        self.db = db
        self.client_for = client_for
        db.executescript(KEYS_TABLE)

    def load(self, digests: Iterable[Digest]) -> None:
        """Fetch the keys of every region where a digest names a fingerprint that is not cached."""
        spans: dict[str, tuple[dt.datetime, dt.datetime]] = {}
        for d in digests:
            if self._value(d.name.region, d.fingerprint) is None:
                low, high = spans.get(d.name.region, (d.start, d.end))
                spans[d.name.region] = (min(low, d.start), max(high, d.end))
        for region, (start, end) in spans.items():
            self._store(region, self._fetch(region, start, end))

    def get(self, region: str, key_fingerprint: str) -> rsa.RSAPublicKey | None:
        """The key, or None when CloudTrail has none with that fingerprint in that region."""
        value = self._value(region, key_fingerprint)
        return public_key(value) if value is not None else None

    def _value(self, region: str, key_fingerprint: str) -> bytes | None:
        row = self.db.execute(
            "SELECT value FROM cloudtrail_public_keys WHERE region = ? AND fingerprint = ?", (region, key_fingerprint)
        ).fetchone()
        return bytes(row[0]) if row else None

    def _fetch(self, region: str, start: dt.datetime, end: dt.datetime) -> Iterator[dict[str, Any]]:
        client = self.client_for(region)
        try:
            for page in client.get_paginator("list_public_keys").paginate(StartTime=start, EndTime=end):
                yield from page.get("PublicKeyList", [])
        except ClientError as err:
            raise explain_client_error(err, f"the CloudTrail public keys of {region}") from err

    def _store(self, region: str, keys: Iterable[dict[str, Any]]) -> None:
        now = utcnow()
        rows = [
            (region, k.get("Fingerprint") or fingerprint(k["Value"]), k["Value"], _iso(k.get("ValidityStartTime")),
             _iso(k.get("ValidityEndTime")), now)
            for k in keys
        ]  # fmt: skip
        self.db.executemany("INSERT OR REPLACE INTO cloudtrail_public_keys VALUES (?,?,?,?,?,?)", rows)


def _iso(when: dt.datetime | None) -> str | None:
    return when.isoformat() if when else None
