"""`keytrail verify cloudtrail`: check a trail's digest chain and log files, and keep the verdicts in the lake.

For the digests of the window (ingest/integrity/sources.py lists them), in order:

1. read every digest (threads, for S3 latency); one that is not a gzip'd JSON digest is `digest_unreadable`;
2. check that it sits where it says it was delivered (`digest_moved`) and its signature with CloudTrail's key
   of its region and fingerprint (`valid`, `signature_invalid`; a copy without signatures: `signature_unchecked`);
3. walk each chain back from its newest digest (`digest_missing`, `chain_broken`);
4. hash every log file a trusted digest lists (threads: gunzip and SHA-256 release the GIL): `valid`,
   `log_file_modified`, `log_file_missing`, `log_file_unreadable` (corrupt or truncated gzip, junk after it, or
   refused: the detail names the decompression or access error; the other files are still checked);
5. every file of this source that the ingest state records, in the window, that no trusted digest lists:
   `not_covered`, whatever its name or place (files delivered in the last two hours wait for their digest and
   the next run; a name claiming a delivery in the future does not wait);
6. write the verdicts to `<lake>/trail_verification/part-<run>.parquet` and the run to the state's `runs`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

from ingest.cloudtrail.load import STATE_SOURCE, lake_run
from ingest.cloudtrail.sources import TRAIL_PATH, TrailFilter
from ingest.integrity.digests import (
    STATUSES,
    TRUSTED,
    BadDigest,
    Digest,
    DigestName,
    Verdict,
    chain_verdicts,
    digest_verdict,
    hour_of,
    log_file_verdict,
    read_digest,
    signature_problem,
    trail_file_time,
    verdict,
)
from ingest.integrity.sources import DIGEST_LAG, DigestStore, PublicKeys, window_end
from ingest.lake.schema import TRAIL_VERIFICATION
from ingest.lake.state import IngestState
from ingest.lake.store import Lake
from ingest.progress import Progress, no_progress
from ingest.raw import Unreadable

# How long after its delivery a trail file must be listed by a digest: the hour it falls in, plus an hour.
DIGEST_DUE = dt.timedelta(hours=2)
COMMAND = "verify cloudtrail"
TABLE = "trail_verification"
WORKERS = 8
PROBLEMS = tuple(s for s in STATUSES if s not in TRUSTED)


@dataclass
class VerificationReport:
    """The verdicts of one verification run."""

    source: str
    run_id: str
    verdicts: list[Verdict]
    seconds: float = 0.0

    @property
    def problems(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.status in PROBLEMS]

    def counts(self) -> dict[str, int]:
        """Verdicts per status, in the order of STATUSES."""
        found = Counter(v.status for v in self.verdicts)
        return {s: found[s] for s in STATUSES if found[s]}

    def table(self) -> pa.Table:
        """The verdicts as rows of the trail_verification table."""
        now = dt.datetime.now(dt.UTC)
        rows = [{**asdict(v), "checked_at": now, "run_id": self.run_id, "source": self.source} for v in self.verdicts]
        return pa.Table.from_pylist(rows, schema=TRAIL_VERIFICATION)

    def summary(self) -> pa.Table:
        """Per account and region: hours with a digest, valid digests and log files, problems."""
        groups: dict[tuple[str, str], Counter[str]] = {}
        for v in self.verdicts:
            c = groups.setdefault((v.account_id or "", v.region or ""), Counter())
            c[f"{v.object_kind}:{v.status}"] += 1
            c["problems"] += v.status in PROBLEMS
        hours = Counter((a, r) for a, r, _ in {(v.account_id, v.region, v.hour) for v in self._digests()})
        rows = [
            {"account_id": a, "region": r, "hours": hours[(a, r)], "digests_valid": c["digest:valid"],
             "log_files_valid": c["log_file:valid"], "unsigned_digests": c["digest:signature_unchecked"],
             "problems": c["problems"]}
            for (a, r), c in sorted(groups.items())
        ]  # fmt: skip
        return pa.Table.from_pylist(rows)

    def _digests(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.object_kind == "digest" and v.status != "digest_missing"]

    def paragraph(self) -> str:
        """One readable paragraph: what was verified, what was found, where the verdicts are."""
        c = self.counts()
        digests = self._digests()
        files = [v for v in self.verdicts if v.object_kind == "log_file" and v.status != "not_covered"]
        found = ", ".join(f"{n} {s}" for s, n in c.items() if s in PROBLEMS) or "no problems"
        return (
            f"Verified {self.source}: {len(digests)} digests ({_valid(digests)} valid), "
            f"{len(files)} log files listed ({_valid(files)} valid); {found}. "
            f"Run {self.run_id}, {self.seconds:.1f} s."
        )

    def has_digests(self) -> bool:
        """Whether any digest of the window was found (else every ingested file is merely not covered)."""
        return any(v.object_kind == "digest" for v in self.verdicts)

    def warnings(self) -> list[str]:
        """What the verdicts cannot prove: no digest found, or digests whose signature could not be checked."""
        if not self.has_digests():
            return [
                f"Found no digest files in {self.source} for these filters (looked for AWSLogs/[o-…/]<account>/"
                "CloudTrail-Digest/<region>/YYYY/MM/DD/*.json.gz): is log file validation on for the trail? "
                "(aws cloudtrail update-trail --name TRAIL --enable-log-file-validation)"
            ]
        unsigned = self.counts().get("signature_unchecked", 0)
        if not unsigned:
            return []
        return [
            f"{unsigned} digests have no signature beside them (a copy outside S3): their log files were checked by "
            "SHA-256 only and the digests themselves are not authenticated. Verify s3://… directly, or add "
            "<digest>.sig sidecars (docs/integrity.md)."
        ]


def _valid(verdicts: list[Verdict]) -> int:
    return sum(v.status == "valid" for v in verdicts)


def verify_trail(
    lake: Lake,
    store: DigestStore,
    flt: TrailFilter,
    key_client: Callable[[str], Any],
    progress: Progress = no_progress,
) -> VerificationReport:
    """Verify the digests the filter admits and write the verdicts to the lake (module docstring).

    Args:
        key_client: a CloudTrail client for a region (ListPublicKeys).
        progress: told of each log file hashed, of all the digests list.
    """
    started = time.perf_counter()
    with lake_run(lake, COMMAND, store.uri) as (state, run_id):
        verdicts = check_store(store, flt, PublicKeys(state.db, key_client), ingested(state, store), progress)
        report = VerificationReport(store.uri, run_id, verdicts, time.perf_counter() - started)
        if verdicts:
            lake.write_parquet(report.table(), lake.table_dir(TABLE) / f"part-{run_id}.parquet")
        state.end_run(run_id, "ok", report.counts())
    return report


def check_store(
    store: DigestStore,
    flt: TrailFilter,
    keys: PublicKeys,
    ingested_files: dict[str, dt.datetime],
    progress: Progress = no_progress,
) -> list[Verdict]:
    """Every verdict about the digests the filter admits, their chains, their log files and the ingested files."""
    digests, verdicts = read_digests(store, flt)
    keys.load(d for d in digests if d.has_metadata)
    checked = [check_digest(d, store, keys) for d in digests]
    untrusted = {v.object_key for v in [*verdicts, *checked] if v.status not in TRUSTED}
    trusted = [d for d in digests if d.location not in untrusted]
    files = check_log_files(store, trusted, {v.object_key: v.signature_checked for v in checked}, progress)
    listed = {v.object_key for v in files}
    return [
        *verdicts,
        *checked,
        *chain_verdicts(digests, store.locate, flt.since, untrusted),
        *files,
        *not_covered(ingested_files, listed, flt),
    ]


def read_digests(store: DigestStore, flt: TrailFilter) -> tuple[list[Digest], list[Verdict]]:
    """The digests the filter admits, and a `digest_unreadable` verdict for each that does not parse."""
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = list(pool.map(lambda item: _read_one(store, *item), store.list_digests(flt)))
    return [r for r in results if isinstance(r, Digest)], [r for r in results if isinstance(r, Verdict)]


def _read_one(store: DigestStore, location: str, name: DigestName) -> Digest | Verdict | None:
    try:
        stored = store.read(location)
        if stored is None:
            return None  # deleted after the listing: the link from the next digest reports it
        return read_digest(stored[0], location, name, stored[1])
    except (BadDigest, Unreadable) as err:
        return verdict("digest", "digest_unreadable", location, name, name.end - DIGEST_LAG, detail=str(err))


def check_digest(digest: Digest, store: DigestStore, keys: PublicKeys) -> Verdict:
    """The verdict on one digest: where it is, and its signature."""
    recorded = store.locate(digest.location, digest.bucket, digest.key)
    if recorded != digest.location:
        detail = f"it records that it was delivered to {digest.recorded}: copied or moved, so it proves nothing here"
        return digest_verdict(digest, "digest_moved", detail, False)
    if not digest.has_metadata:
        detail = "no signature beside this copy: add <digest>.sig sidecars (docs/integrity.md) to check it"
        return digest_verdict(digest, "signature_unchecked", detail, False)
    problem = signature_problem(digest, keys.get(digest.name.region, digest.fingerprint))
    return digest_verdict(digest, "signature_invalid" if problem else "valid", problem or "", True)


def check_log_files(
    store: DigestStore, digests: list[Digest], signed: dict[str, bool], progress: Progress = no_progress
) -> list[Verdict]:
    """Hash every log file the digests list, in threads, and compare with the digest."""
    work = [(d, e, store.locate(d.location, e.bucket, e.key)) for d in digests for e in d.log_files]
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        hashes = []
        for found in pool.map(lambda item: _content_sha256(store, item[2]), work):
            hashes.append(found)
            progress(1, len(work))
    return [
        log_file_verdict(d, e, where, sha, signed[d.location], problem)
        for (d, e, where), (sha, problem) in zip(work, hashes, strict=True)
    ]


def _content_sha256(store: DigestStore, location: str) -> tuple[str | None, str]:
    """The SHA-256 of a log file's content (None: not there), or why it cannot be read: one damaged or refused
    file gets its own verdict and never stops the others."""
    try:
        return store.content_sha256(location), ""
    except Unreadable as err:
        return None, str(err)


def ingested(state: IngestState, store: DigestStore) -> dict[str, dt.datetime]:
    """Trail files of this source that keytrail ingested (object keys of the ingest state), with when."""
    rows = state.db.execute("SELECT object_key, ingested_at FROM source_objects WHERE source = ?", (STATE_SOURCE,))
    return {key: dt.datetime.fromisoformat(at) for key, at in rows if store.contains(key)}


NOT_LISTED = "ingested, but no valid digest lists it: its digest is missing or invalid, or validation was off"
NOT_A_TRAIL_FILE = (
    "ingested, but not where or under the name CloudTrail delivers a log file (AWSLogs/[o-org/]<account>/"
    "CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<id>.json.gz): no digest "
    "can list it; CloudTrail did not deliver it"
)


def not_covered(ingested_files: dict[str, dt.datetime], listed: set[str], flt: TrailFilter) -> list[Verdict]:
    """A `not_covered` verdict for each ingested file of the window that no trusted digest lists.

    CloudTrail delivers a digest every hour, empty or not, about an hour after the hour it covers; so every file
    delivered more than DIGEST_DUE ago must be listed, even one whose digest was the newest and was deleted.
    Newer files wait for the next run. A file whose path or name is not CloudTrail's, or whose name claims a
    delivery in the future, can never be listed: it is not covered whatever the window (its hour is when
    keytrail ingested it)."""
    now = dt.datetime.now(dt.UTC)
    until = window_end(flt)
    decidable = min(until, now - DIGEST_DUE) if until else now - DIGEST_DUE
    found = []
    for key, ingested_at in ingested_files.items():
        if key not in listed:
            found += _uncovered(key, ingested_at, flt, decidable, now)
    return found


def _uncovered(
    key: str, ingested_at: dt.datetime, flt: TrailFilter, decidable: dt.datetime, now: dt.datetime
) -> list[Verdict]:
    match, delivered = TRAIL_PATH.search(key), trail_file_time(key)
    account, region = (match["account"], match["region"]) if match else (None, None)
    if not flt.admits(key):  # another account, region or day (a path outside the layout is always admitted)
        return []
    if match is None or delivered is None:
        detail, hour = NOT_A_TRAIL_FILE, hour_of(ingested_at)
    elif flt.since and delivered < flt.since:
        return []
    elif delivered > now:
        detail = f"its name claims a delivery at {delivered:%Y-%m-%d %H:%M} UTC, in the future: CloudTrail did not "
        detail += "deliver it, and no digest will list it"
        hour = hour_of(ingested_at)
    elif delivered >= decidable:
        return []  # its digest may not be written yet: the next run decides
    else:
        detail, hour = NOT_LISTED, hour_of(delivered)
    return [Verdict("log_file", "not_covered", key, account, region, None, hour, detail=detail)]
