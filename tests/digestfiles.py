"""A CloudTrail trail with hourly digest files signed as CloudTrail signs them, by RSA keys made in the test.

The string to sign is written out here from the CloudTrail user guide, not taken from ingest/integrity/digests.py, so a
mistake there cannot hide in both.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.stub import ANY, Stubber
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.trailfiles import fresh_records, trail_text

ACCOUNT = "111122223333"
T0 = dt.datetime(2026, 11, 20, 0, 1, 31, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


@functools.cache
def rsa_key(n: int) -> rsa.RSAPrivateKey:
    """RSA key pair number n, made once per session (2048 bits, as CloudTrail's)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def der(key: rsa.RSAPrivateKey, form: str = "pkcs1") -> bytes:
    """The public key's DER: PKCS#1 (what ListPublicKeys returns) or SubjectPublicKeyInfo."""
    fmt = serialization.PublicFormat.PKCS1 if form == "pkcs1" else serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(serialization.Encoding.DER, fmt)


def key_fingerprint(key: rsa.RSAPrivateKey) -> str:
    return hashlib.md5(der(key)).hexdigest()


def sign(key: rsa.RSAPrivateKey, end: str, bucket: str, digest_key: str, raw: bytes, previous: str | None) -> str:
    """CloudTrail's signature: end time, bucket/key, SHA-256 of the digest, previous signature or null."""
    text = f"{end}\n{bucket}/{digest_key}\n{hashlib.sha256(raw).hexdigest()}\n{previous or 'null'}"
    return key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256()).hex()


@dataclass
class Hour:
    """One hour of a trail: its log files and its digest (None when validation was off)."""

    logs: list[str]
    digest: str | None


@dataclass
class Trail:
    """Objects of a trail bucket: key -> (bytes, S3 user metadata)."""

    bucket: str
    objects: dict[str, tuple[bytes, dict[str, str]]] = field(default_factory=dict)
    hours: list[Hour] = field(default_factory=list)

    def upload(self, s3: Any) -> None:
        s3.create_bucket(Bucket=self.bucket)
        for key, (body, meta) in self.objects.items():
            s3.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=meta)

    def copy_to(self, folder: Path, sidecars: bool = False) -> None:
        """The bucket copied to a folder (S3 metadata lost), with `aws s3api head-object` sidecars if asked."""
        for key, (body, meta) in self.objects.items():
            path = folder / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            if sidecars and meta:
                head = {"ContentLength": len(body), "ContentType": "application/x-gzip", "Metadata": meta}
                path.with_name(path.name + ".sig").write_text(json.dumps(head))


def build_trail(
    bucket: str = "trail-bucket",
    hours: int = 3,
    files: int = 2,
    region: str = "us-east-1",
    account: str = ACCOUNT,
    org: str | None = None,
    prefix: str = "",
    signer: Callable[[int], rsa.RSAPrivateKey] = lambda h: rsa_key(0),
    validation_off: tuple[int, ...] = (),
    records: int = 3,
) -> Trail:
    """`hours` hours of a trail from T0, `files` log files an hour, a digest an hour (none in `validation_off`;
    the digest after such an hour starts a new chain), each signed by `signer(hour)`; `records` KMS records a file."""
    trail = Trail(bucket)
    base = f"{prefix}/" if prefix else ""
    owner = f"{org}/{account}" if org else account
    previous: tuple[str, bytes, str] | None = None
    for h in range(hours):
        start = T0 + h * HOUR
        logs = [_log_file(trail, base, owner, account, region, start + dt.timedelta(minutes=10 + 30 * f / files),
                          h * 100 + f, records)
                for f in range(files)]  # fmt: skip
        if h in validation_off:
            trail.hours.append(Hour([k for k, _ in logs], None))
            previous = None
            continue
        end = start + HOUR
        key = (
            f"{base}AWSLogs/{owner}/CloudTrail-Digest/{region}/{end:%Y/%m/%d}/"
            f"{account}_CloudTrail-Digest_{region}_main-trail_{region}_{end:%Y%m%dT%H%M%SZ}.json.gz"
        )
        raw = _digest_json(bucket, key, account, start, end, signer(h), logs, previous)
        signature = sign(signer(h), f"{end:%Y-%m-%dT%H:%M:%SZ}", bucket, key, raw, previous and previous[2])
        trail.objects[key] = (gzip.compress(raw), {"signature": signature, "signature-algorithm": "SHA256withRSA"})
        trail.hours.append(Hour([k for k, _ in logs], key))
        previous = (key, raw, signature)
    return trail


def _log_file(
    trail: Trail, base: str, owner: str, account: str, region: str, delivered: dt.datetime, seed: int, records: int
) -> tuple[str, str]:
    recs = fresh_records(records, seed=seed + 100_000 * len(trail.bucket), day=f"{delivered:%Y-%m-%d}")
    text = trail_text(recs).encode()
    key = (
        f"{base}AWSLogs/{owner}/CloudTrail/{region}/{delivered:%Y/%m/%d}/"
        f"{account}_CloudTrail_{region}_{delivered:%Y%m%dT%H%MZ}_{seed:016x}.json.gz"
    )
    trail.objects[key] = (gzip.compress(text), {})
    return key, hashlib.sha256(text).hexdigest()


def _digest_json(
    bucket: str,
    key: str,
    account: str,
    start: dt.datetime,
    end: dt.datetime,
    signer: rsa.RSAPrivateKey,
    logs: list[tuple[str, str]],
    previous: tuple[str, bytes, str] | None,
) -> bytes:
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    doc = {
        "awsAccountId": account,
        "digestStartTime": start.strftime(stamp),
        "digestEndTime": end.strftime(stamp),
        "digestS3Bucket": bucket,
        "digestS3Object": key,
        "digestPublicKeyFingerprint": key_fingerprint(signer),
        "digestSignatureAlgorithm": "SHA256withRSA",
        "newestEventTime": (end - dt.timedelta(minutes=5)).strftime(stamp) if logs else None,
        "oldestEventTime": (start + dt.timedelta(minutes=5)).strftime(stamp) if logs else None,
        "previousDigestS3Bucket": bucket if previous else None,
        "previousDigestS3Object": previous[0] if previous else None,
        "previousDigestHashValue": hashlib.sha256(previous[1]).hexdigest() if previous else None,
        "previousDigestHashAlgorithm": "SHA-256" if previous else None,
        "previousDigestSignature": previous[2] if previous else None,
        "logFiles": [{"s3Bucket": bucket, "s3Object": k, "hashValue": h, "hashAlgorithm": "SHA-256"} for k, h in logs],
    }
    return json.dumps(doc, indent=2).encode()


class KeyService:
    """CloudTrail's ListPublicKeys, answered by botocore's Stubber (moto has no ListPublicKeys): one client per
    region, each answer queued with `publish`."""

    def __init__(self) -> None:
        self.clients: dict[str, Any] = {}
        self.stubs: dict[str, Stubber] = {}

    def client(self, region: str) -> Any:
        if region not in self.clients:
            self.clients[region] = boto3.client("cloudtrail", region_name=region)
            self.stubs[region] = Stubber(self.clients[region])
            self.stubs[region].activate()
        return self.clients[region]

    def publish(self, region: str, *keys: tuple[rsa.RSAPrivateKey, str]) -> None:
        """Queue one ListPublicKeys answer: each (key, DER form) valid over the whole test trail."""
        self.client(region)
        listed = [
            {"Value": der(k, form), "Fingerprint": key_fingerprint(k), "ValidityStartTime": T0 - 30 * HOUR * 24,
             "ValidityEndTime": T0 + 30 * HOUR * 24}
            for k, form in keys
        ]  # fmt: skip
        params = {"StartTime": ANY, "EndTime": ANY}
        self.stubs[region].add_response("list_public_keys", {"PublicKeyList": listed}, params)

    def deny(self, region: str) -> None:
        self.client(region)
        self.stubs[region].add_client_error("list_public_keys", "AccessDeniedException", "not allowed", 400)

    def assert_all_asked(self) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()
