"""CloudTrail digest files: parse them, check their signature and their chain, hash log files.

Pure: bytes in, verdicts out (where the bytes come from is ingest/integrity/sources.py). What is checked, as the
CloudTrail user guide describes it ("CloudTrail digest file structure", "Custom implementations of CloudTrail
log file integrity validation") and the AWS CLI's `validate-logs` implements it:

- A digest's signature is not in the file: it is hex in the digest object's S3 metadata (`signature`, with
  `signature-algorithm` = SHA256withRSA).
- The signed string is ``digestEndTime \\n digestS3Bucket/digestS3Object \\n hex SHA-256 of the uncompressed
  digest \\n previousDigestSignature`` (the literal `null` for a starting digest), checked with RSA PKCS#1 v1.5
  over SHA-256.
- The key is the CloudTrail public key of the digest's region whose fingerprint equals
  `digestPublicKeyFingerprint`; the fingerprint is the hex MD5 of the key's DER bytes as ListPublicKeys returns
  them (PKCS#1; checked against the key in the AWS CLI's `list-public-keys` example).
- Each log file the digest lists has the SHA-256 of its uncompressed content in `hashValue`; each digest
  names the previous one (`previousDigestS3Object`, `previousDigestHashValue`, `previousDigestSignature`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ingest.errors import KeytrailError
from ingest.raw import GZIP_MAGIC, Unreadable, inflate

# The one vocabulary of verification verdicts (the `status` column of the trail_verification table).
STATUSES = {
    "valid": "digest: the signature checks out; log file: its SHA-256 equals the digest's",
    "signature_unchecked": "digest without a signature (a copy outside S3, no sidecar): only hashes were checked",
    "log_file_missing": "a digest lists the log file, but it is not there",
    "log_file_modified": "the log file's SHA-256 differs from the one its digest recorded",
    "digest_missing": "a newer digest points to this digest, but it is not there",
    "log_file_unreadable": "the log file cannot be read back to its content: corrupt or truncated gzip, or refused",
    "digest_unreadable": "not a gzip'd JSON CloudTrail digest (corrupt or truncated gzip, bad JSON), or refused",
    "signature_invalid": "the digest's signature does not verify with CloudTrail's public key (altered or forged)",
    "digest_moved": "the digest is not at the bucket/key recorded inside it",
    "chain_broken": "no link to the previous digest: log file validation was off, or the chain was tampered with",
    "not_covered": "a trail file keytrail ingested that no valid digest lists",
}
# Digests whose log files count as covered (their own verdict row says how far they were checked).
TRUSTED = ("valid", "signature_unchecked")
SIGNATURE_ALGORITHM = "SHA256withRSA"

DIGEST_PATH = re.compile(
    r"AWSLogs/(?:(?P<org>o-[a-z0-9]+)/)?(?P<account>\d{12})/CloudTrail-Digest/(?P<region>[a-z0-9-]+)/"
    r"\d{4}/\d{2}/\d{2}/(?P=account)_CloudTrail-Digest_(?P=region)_(?P<trail>.+)_(?P<home>[a-z]{2}(?:-[a-z]+)+-\d+)_"
    r"(?P<stamp>\d{8}T\d{6}Z)\.json\.gz$"
)
# A trail file's delivery time in its name: <account>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<unique>.json.gz
TRAIL_STAMP = re.compile(r"_CloudTrail_[a-z0-9-]+_(\d{8}T\d{4}Z)_[^/]+$")


class BadDigest(KeytrailError):
    """A digest file is not a gzip'd CloudTrail digest (bad gzip, bad JSON, or fields missing)."""


@dataclass(frozen=True)
class DigestName:
    """What a digest's path says: whose chain it belongs to and when it ends."""

    org: str | None
    account: str
    region: str
    trail: str
    home_region: str
    end: dt.datetime

    @property
    def chain(self) -> tuple[str, str, str, str]:
        """One chain per account, region, trail and home region."""
        return self.account, self.region, self.trail, self.home_region


def parse_digest_name(path: str) -> DigestName | None:
    """The chain and end time of a digest path in the CloudTrail layout; None for any other path."""
    m = DIGEST_PATH.search(path)
    if not m:
        return None
    end = dt.datetime.strptime(m["stamp"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    return DigestName(m["org"], m["account"], m["region"], m["trail"], m["home"], end)


def trail_file_time(path: str) -> dt.datetime | None:
    """The delivery time (to the minute) in a trail file's name; None if the name has none."""
    m = TRAIL_STAMP.search(path)
    return dt.datetime.strptime(m[1], "%Y%m%dT%H%MZ").replace(tzinfo=dt.UTC) if m else None


@dataclass(frozen=True)
class LogFileEntry:
    """One log file as a digest lists it."""

    bucket: str
    key: str
    sha256: str
    oldest: dt.datetime | None
    newest: dt.datetime | None


@dataclass(frozen=True)
class Digest:
    """One digest file: its fields, the SHA-256 of its content, and the signature kept beside it."""

    location: str  # where it was read: s3://bucket/key, or a local path
    name: DigestName
    start: dt.datetime
    end_text: str  # digestEndTime exactly as written: it is signed verbatim
    bucket: str
    key: str
    fingerprint: str
    previous_bucket: str | None
    previous_key: str | None
    previous_sha256: str | None
    previous_signature: str | None
    log_files: tuple[LogFileEntry, ...]
    sha256: str
    signature: str | None  # hex, from the S3 metadata or a sidecar
    signature_algorithm: str | None
    has_metadata: bool  # False for a copy outside S3 without a sidecar: its signature cannot be checked

    @property
    def end(self) -> dt.datetime:
        return _time(self.end_text) or self.name.end

    @property
    def recorded(self) -> str:
        """The bucket/key the digest says it was delivered to."""
        return f"{self.bucket}/{self.key}"


def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(dt.UTC)


def parse_digest(raw: bytes, location: str, name: DigestName, metadata: dict[str, str] | None = None) -> Digest:
    """A digest from its uncompressed JSON, with the signature from its S3 metadata (or a sidecar)."""
    try:
        doc = json.loads(raw)
        entries = tuple(_log_entry(e) for e in doc.get("logFiles") or [])
        return Digest(
            location=location,
            name=name,
            start=_time(doc["digestStartTime"]) or name.end,
            end_text=str(doc["digestEndTime"]),
            bucket=str(doc["digestS3Bucket"]),
            key=str(doc["digestS3Object"]),
            fingerprint=str(doc["digestPublicKeyFingerprint"]),
            previous_bucket=doc.get("previousDigestS3Bucket"),
            previous_key=doc.get("previousDigestS3Object"),
            previous_sha256=doc.get("previousDigestHashValue"),
            previous_signature=doc.get("previousDigestSignature"),
            log_files=entries,
            sha256=hashlib.sha256(raw).hexdigest(),
            signature=(metadata or {}).get("signature"),
            signature_algorithm=(metadata or {}).get("signature-algorithm"),
            has_metadata=metadata is not None,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise BadDigest(f"{location} is not a CloudTrail digest: {type(err).__name__} {err}") from None


def read_digest(data: bytes, location: str, name: DigestName, metadata: dict[str, str] | None = None) -> Digest:
    """A digest from its gzip'd bytes as stored."""
    if not data.startswith(GZIP_MAGIC):
        raise BadDigest(f"{location} is not a CloudTrail digest: not gzip")
    try:
        raw = b"".join(inflate([data]))
    except Unreadable as err:
        raise BadDigest(f"{location} is not a CloudTrail digest: {err}") from None
    return parse_digest(raw, location, name, metadata)


def _log_entry(entry: dict[str, Any]) -> LogFileEntry:
    return LogFileEntry(
        str(entry["s3Bucket"]),
        str(entry["s3Object"]),
        str(entry["hashValue"]).lower(),
        _time(entry.get("oldestEventTime")),
        _time(entry.get("newestEventTime")),
    )


# --- signatures -------------------------------------------------------------------------------------


def string_to_sign(digest: Digest) -> bytes:
    """What CloudTrail signed: end time, bucket/key, SHA-256 of the digest, previous signature (or `null`)."""
    previous = digest.previous_signature if digest.previous_signature is not None else "null"
    return f"{digest.end_text}\n{digest.recorded}\n{digest.sha256}\n{previous}".encode()


def public_key(der: bytes) -> rsa.RSAPublicKey:
    """An RSA public key from DER, in PKCS#1 (what ListPublicKeys returns) or SubjectPublicKeyInfo form."""
    key = load_der_public_key(der)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"a CloudTrail digest key is RSA, this one is {type(key).__name__}")
    return key


def fingerprint(der: bytes) -> str:
    """A public key's fingerprint as CloudTrail writes it: hex MD5 of its DER bytes."""
    return hashlib.md5(der, usedforsecurity=False).hexdigest()


def signature_problem(digest: Digest, key: rsa.RSAPublicKey | None) -> str | None:
    """Why the digest's signature does not verify, or None when it does."""
    if not digest.signature:
        return "the digest object has no `signature` metadata, which CloudTrail writes on every digest"
    if digest.signature_algorithm != SIGNATURE_ALGORITHM:
        return f"signature-algorithm is {digest.signature_algorithm!r}, not {SIGNATURE_ALGORITHM}"
    if key is None:
        return (
            f"no CloudTrail public key of {digest.name.region} has fingerprint {digest.fingerprint} "
            "(ListPublicKeys for the digest's time): it was not signed by CloudTrail"
        )
    try:
        key.verify(bytes.fromhex(digest.signature), string_to_sign(digest), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return f"the signature does not verify with the key {digest.fingerprint}: the digest was altered or forged"
    return None


# --- log files -----------------------------------------------------------------------------------------


def sha256_of_content(chunks: Iterable[bytes]) -> str:
    """Hex SHA-256 of a file's uncompressed content, read in chunks (see `inflate`; raises Unreadable). zlib and
    hashlib release the GIL, so threads run it in parallel."""
    digest = hashlib.sha256()
    for piece in inflate(chunks):
        digest.update(piece)
    return digest.hexdigest()


# --- verdicts ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One row of the trail_verification table: what was found about a digest, a log file or a chain link."""

    object_kind: str  # digest | log_file | chain
    status: str  # a key of STATUSES
    object_key: str  # s3://bucket/key or a local path; for log files the `source_object` of their KMS events
    account_id: str | None
    region: str | None
    trail_name: str | None
    hour: dt.datetime | None  # the UTC hour the digest covers (not covered files: their delivery hour)
    digest_key: str | None = None
    expected_sha256: str | None = None
    actual_sha256: str | None = None
    oldest_event_time: dt.datetime | None = None
    newest_event_time: dt.datetime | None = None
    signature_checked: bool = False
    detail: str = ""


def hour_of(when: dt.datetime) -> dt.datetime:
    return when.replace(minute=0, second=0, microsecond=0)


def verdict(kind: str, status: str, key: str, name: DigestName, when: dt.datetime, **fields: Any) -> Verdict:
    """A verdict about an object of the chain `name` belongs to, in the hour of `when`."""
    return Verdict(kind, status, key, name.account, name.region, name.trail, hour_of(when), **fields)


def digest_verdict(digest: Digest, status: str, detail: str, signature_checked: bool) -> Verdict:
    """The verdict row of one digest."""
    return verdict(
        "digest", status, digest.location, digest.name, digest.start,
        digest_key=digest.location, actual_sha256=digest.sha256, signature_checked=signature_checked, detail=detail,
    )  # fmt: skip


def log_file_verdict(
    digest: Digest, entry: LogFileEntry, location: str, actual: str | None, signed: bool, problem: str = ""
) -> Verdict:
    """The verdict row of one log file a digest lists, from the SHA-256 of its content (None: not found) or
    why its content could not be read (`problem`)."""
    if problem:
        status, detail = "log_file_unreadable", f"{problem} (digest {digest.location})"
    elif actual is None:
        status, detail = "log_file_missing", f"listed by {digest.location} but not found at {location}"
    elif actual != entry.sha256:
        status, detail = "log_file_modified", f"its content changed after delivery (digest {digest.location})"
    else:
        status, detail = "valid", ""
    return verdict(
        "log_file", status, location, digest.name, digest.start,
        digest_key=digest.location, expected_sha256=entry.sha256, actual_sha256=actual,
        oldest_event_time=entry.oldest, newest_event_time=entry.newest, signature_checked=signed, detail=detail,
    )  # fmt: skip


# (location of the digest that recorded it, recorded bucket, recorded key) -> where the store keeps that object
Locate = Callable[[str, str, str], str]


def chain_verdicts(
    digests: list[Digest], locate: Locate, listed_from: dt.datetime | None, untrusted: set[str]
) -> list[Verdict]:
    """Walk every chain from its newest digest back and report each broken link: a previous digest that is
    missing (only where the listing could have found it, from `listed_from` on), a starting digest with older
    digests behind it (validation was off in between), a previous digest other than the one recorded."""
    chains: dict[tuple[str, str, str, str], list[Digest]] = {}
    for d in digests:
        chains.setdefault(d.name.chain, []).append(d)
    listed = {d.location: d for d in digests}
    found: list[Verdict] = []
    for chain in chains.values():
        chain.sort(key=lambda d: d.name.end, reverse=True)
        for newer, older in zip(chain, [*chain[1:], None], strict=True):
            found += _link(newer, older, locate, listed, listed_from, untrusted)
    return found


def _link(
    newer: Digest,
    older: Digest | None,
    locate: Locate,
    listed: dict[str, Digest],
    listed_from: dt.datetime | None,
    untrusted: set[str],
) -> list[Verdict]:
    if newer.previous_key is None:
        if older is None:
            return []  # the start of the chain: the trail or its validation began here
        detail = (
            f"{newer.location} starts a new chain although {older.location} (ending {older.end_text}) comes "
            "before it: log file validation or logging was off in between, so those hours have no digest"
        )
        return [verdict("chain", "chain_broken", newer.location, newer.name, older.end, digest_key=newer.location,
                        detail=detail)]  # fmt: skip
    previous = locate(newer.location, newer.previous_bucket or "", newer.previous_key)
    if previous in untrusted:
        return []  # unreadable, moved or badly signed: reported on its own row
    if previous in listed:
        return _check_link(newer, listed[previous])
    name = parse_digest_name(previous)
    if name is None or (listed_from is not None and name.end < listed_from):
        return []  # outside what was listed: not checked
    detail = f"{newer.location} names it as the previous digest; deleted or moved (its log files are unverified)"
    return [verdict("digest", "digest_missing", previous, name, name.end - dt.timedelta(hours=1),
                    digest_key=newer.location, expected_sha256=newer.previous_sha256, detail=detail)]  # fmt: skip


def _check_link(newer: Digest, previous: Digest) -> list[Verdict]:
    same = previous.sha256 == (newer.previous_sha256 or "").lower()
    if same and (previous.signature is None or previous.signature == newer.previous_signature):
        return []
    detail = f"{newer.location} recorded another previous digest (SHA-256 or signature differ from {previous.location})"
    return [verdict("chain", "chain_broken", newer.location, newer.name, previous.end, digest_key=newer.location,
                    expected_sha256=newer.previous_sha256, actual_sha256=previous.sha256, detail=detail)]  # fmt: skip
