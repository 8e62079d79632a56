"""Where CloudTrail log files come from: a local folder or file, or an S3 trail bucket.

Both list `TrailObject`s; S3 listing walks the trail layout (`AWSLogs/[o-org/]<account>/CloudTrail/<region>/
YYYY/MM/DD/`) with the list_objects_v2 paginator and prunes by account, region and delivery date first.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ingest.aws import explain_client_error
from ingest.errors import ConfigError
from ingest.lake.state import ObjectVersion
from ingest.progress import Progress, no_progress

TRAIL_PATH = re.compile(
    r"AWSLogs/(?:(?P<org>o-[a-z0-9]+)/)?(?P<account>[^/]+)/CloudTrail/(?P<region>[^/]+)/"
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
)
# Trail files sit beside digest and Insights files that are not KMS records.
SKIP_PARTS = ("CloudTrail-Digest", "CloudTrail-Insight")
# Keys per list_objects_v2 page (S3's own maximum).
PAGE_SIZE = 1000
# The path date is the delivery date: a file can arrive after its events' day.
DEFAULT_LATE_DAYS = 2


@dataclass(frozen=True)
class TrailFilter:
    """Which trail files to take: accounts, regions and an event time window (UTC)."""

    accounts: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    late_days: int = DEFAULT_LATE_DAYS

    def delivery_days(self, today: dt.date) -> list[dt.date] | None:
        """Delivery dates that can hold events of the window, or None for no date pruning."""
        if self.since is None:
            return None
        last = (self.last_day() or today) + dt.timedelta(days=self.late_days)
        first = self.since.date()
        return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]

    def last_day(self) -> dt.date | None:
        """The last day the window touches: `until` is exclusive, so an until of midnight ends the day before."""
        return (self.until - dt.timedelta(microseconds=1)).date() if self.until else None

    def admits(self, path: str) -> bool:
        """True when a trail path passes the filters (paths outside the trail layout pass)."""
        if any(part in path for part in SKIP_PARTS):
            return False
        match = TRAIL_PATH.search(path)
        if not match:
            return True
        if self.accounts and match["account"] not in self.accounts:
            return False
        if self.regions and match["region"] not in self.regions:
            return False
        day = dt.date(int(match["y"]), int(match["m"]), int(match["d"]))
        days = self.delivery_days(dt.datetime.now(dt.UTC).date())
        return days is None or days[0] <= day <= days[-1]


def is_trail_file(name: str) -> bool:
    return name.endswith((".json.gz", ".json"))


def list_local(root: Path, flt: TrailFilter) -> Iterator[ObjectVersion]:
    """Trail files under a folder (any layout, recursively) or a single file."""
    if not root.exists():
        raise ConfigError(
            f"{root} does not exist: give a folder of CloudTrail log files, a file, or s3://bucket/prefix"
        )
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and is_trail_file(p.name))
    for path in paths:
        if flt.admits(path.as_posix()):
            stat = path.stat()
            yield ObjectVersion(str(path), None, stat.st_size, stat.st_mtime)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/prefix → (bucket, prefix without leading slash)."""
    if not uri.startswith("s3://") or len(uri) <= 5:
        raise ConfigError(f"{uri!r} is not an S3 URI: write it as s3://bucket/prefix")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix


class S3Trail:
    """A CloudTrail bucket (or prefix) read with boto3."""

    folder = "CloudTrail/"  # the folder of each account that listing walks into

    def __init__(self, client: Any, uri: str) -> None:
        self.client = client
        self.uri = uri
        self.bucket, self.prefix = parse_s3_uri(uri)

    def list_objects(self, flt: TrailFilter, progress: Progress = no_progress) -> Iterator[ObjectVersion]:
        """Every trail file the filter admits, listing only the prefixes that can hold them (`progress` is told of
        each object listed)."""
        try:
            for prefix in self._listing_prefixes(flt):
                for obj in self._objects(prefix):
                    progress(1, 0)
                    key = obj["Key"]
                    if is_trail_file(key) and flt.admits(key):
                        yield ObjectVersion(f"s3://{self.bucket}/{key}", obj["ETag"].strip('"'), obj["Size"], None)
        except ClientError as err:
            raise explain_client_error(err, f"s3://{self.bucket}/{self.prefix}") from err

    def fetch(self, key_uri: str) -> bytes | None:
        """The object's bytes as stored (trail files stay gzip-compressed); None when it was deleted after
        the listing. A missing bucket or a refusal is an error."""
        key = key_uri.removeprefix(f"s3://{self.bucket}/")
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            return bytes(body.read())
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise explain_client_error(err, key_uri) from err

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": PAGE_SIZE}
        )
        for page in pages:
            yield from page.get("Contents", [])

    def _children(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
        return [cp["Prefix"] for page in pages for cp in page.get("CommonPrefixes", [])]

    def _listing_prefixes(self, flt: TrailFilter) -> Iterator[str]:
        base = self.prefix.rstrip("/")
        logs = f"{base}/" if base.endswith("AWSLogs") else f"{base}/AWSLogs/".lstrip("/")
        owners = self._children(logs)
        if not owners:
            yield self.prefix  # not the trail layout: list everything under the prefix
            return
        for region_prefix in self._region_prefixes(owners, flt):
            days = flt.delivery_days(dt.datetime.now(dt.UTC).date())
            if days is None:
                yield region_prefix
            else:
                yield from (f"{region_prefix}{d:%Y/%m/%d}/" for d in days)

    def _region_prefixes(self, owners: list[str], flt: TrailFilter) -> Iterator[str]:
        for account_prefix in self._account_prefixes(owners, flt):
            for region_prefix in self._children(f"{account_prefix}{self.folder}"):
                region = region_prefix.rstrip("/").rsplit("/", 1)[-1]
                if not flt.regions or region in flt.regions:
                    yield region_prefix

    def _account_prefixes(self, owners: list[str], flt: TrailFilter) -> Iterator[str]:
        for owner in owners:
            name = owner.rstrip("/").rsplit("/", 1)[-1]
            accounts = self._children(owner) if name.startswith("o-") else [owner]
            for account_prefix in accounts:
                account = account_prefix.rstrip("/").rsplit("/", 1)[-1]
                if not flt.accounts or account in flt.accounts:
                    yield account_prefix
