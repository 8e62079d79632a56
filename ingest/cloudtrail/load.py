"""`keytrail ingest cloudtrail`: CloudTrail KMS events from local trail files, an S3 trail bucket or the
LookupEvents API into the lake, incrementally and idempotently."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from botocore.exceptions import ClientError

from ingest.aws import explain_client_error, make_client
from ingest.cloudtrail.originals import Originals
from ingest.cloudtrail.sources import S3Trail, TrailFilter, list_local
from ingest.cloudtrail.writer import (
    BatchResult,
    Counts,
    KmsLakeWriter,
    TrailFile,
    read_trail_files,
    records_table,
    summary_counts,
)
from ingest.errors import SourceError
from ingest.faults import crash_point
from ingest.lake.state import IngestState, ObjectVersion, RunLock
from ingest.lake.store import Lake, new_run_id, quarantine_rows
from ingest.progress import Progress, no_progress
from ingest.raw import cannot_read

STATE_SOURCE = "cloudtrail"
BATCH_BYTES = 8 * 1024 * 1024
BATCH_FILES = 2000
LOOKUP_OVERLAP = dt.timedelta(minutes=15)
LOOKUP_MAX_AGE = dt.timedelta(days=90)

# A batch made readable on local disk: (local path, source object) per file, and the objects that could not be
# read, with why.
Materialised = tuple[list[tuple[Path, str]], dict[str, str]]
# A batch made ready ahead of the writer: Materialised, and each local file read, checked and cut (SHA-256,
# records).
Prepared = tuple[list[tuple[Path, str]], dict[str, str], list[TrailFile]]


@dataclass
class IngestSummary:
    """The outcome of one ingest run, for the closing paragraph and the run record."""

    source: str
    run_id: str
    files_seen: int = 0
    files_new: int = 0
    files_vanished: int = 0
    files_unreadable: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    totals: dict[str, Any] = field(default_factory=dict)

    @property
    def quarantined(self) -> int:
        return int(self.totals.get("quarantined", 0))

    def paragraph(self) -> str:
        """One readable paragraph: files, records kept, skipped, quarantined (conflicting duplicates among them),
        duplicates dropped (the same record again: in the lake, or twice in this run), speed."""
        t = self.totals
        rate = t.get("records", 0) / self.seconds if self.seconds else 0.0
        skipped = ", ".join(f"{n} {s}" for s, n in sorted(t.get("skipped_sources", {}).items()))
        conflicts = f" ({t.get('conflicts')} of them conflicting duplicates: a taken event id, other content)"
        conflicts = conflicts if t.get("conflicts") else ""
        text = (
            f"Ingested {self.files_new} new of {self.files_seen} files from {self.source} "
            f"({self.bytes_read / 1e6:.1f} MB): {t.get('records', 0)} records read, "
            f"{t.get('kept', 0)} KMS events kept, {t.get('skipped', 0)} non-KMS records skipped"
            f"{f' ({skipped})' if skipped else ''}, {t.get('quarantined', 0)} quarantined{conflicts}, "
            f"{t.get('duplicates', 0)} duplicate records dropped; {rate:,.0f} records/s over {self.seconds:.1f} s."
        )
        if t.get("access_events"):
            text += f" {t['access_events']} of the records open or close a path to the keys: kept in access_events."
        if t.get("pruned"):
            text += f" {t['pruned']} events older than the lake's retention floor (keytrail prune) were left out."
        if self.files_vanished:
            text += f" {self.files_vanished} files disappeared between listing and reading; the next run retries them."
        if self.files_unreadable:
            text += (
                f" {self.files_unreadable} files could not be read (the quarantine says why and what to grant); "
                "the next run retries them."
            )
        if self.quarantined:
            text += ' See the quarantine with: keytrail sql "SELECT * FROM quarantine".'
        return text


@contextmanager
def lake_run(lake: Lake, command: str, source: str) -> Iterator[tuple[IngestState, str]]:
    """Lock the lake, clear what a killed run left, and record the run from start to end."""
    with RunLock(lake.state_dir / "ingest.lock"):
        lake.remove_orphans()
        shutil.rmtree(lake.work_dir / "_staging", ignore_errors=True)
        state = IngestState(lake.state_dir / "ingest.sqlite")
        run_id = new_run_id()
        state.start_run(run_id, command, source)
        try:
            yield state, run_id
            shutil.rmtree(lake.work_dir / "_staging", ignore_errors=True)
        except BaseException:
            state.end_run(run_id, "failed", {})
            raise
        finally:
            state.close()


def batches(objects: list[ObjectVersion], max_files: int = BATCH_FILES) -> Iterator[list[ObjectVersion]]:
    """Group objects into batches of bounded size, so memory stays flat whatever the input."""
    batch: list[ObjectVersion] = []
    size = 0
    for obj in objects:
        if batch and (size + (obj.size or 0) > BATCH_BYTES or len(batch) >= max_files):
            yield batch
            batch, size = [], 0
        batch.append(obj)
        size += obj.size or 0
    if batch:
        yield batch


def ingest_local(
    lake: Lake,
    root: Path,
    flt: TrailFilter,
    progress: Progress | None = None,
    batch_files: int = BATCH_FILES,
    retry_quarantined: bool = False,
    keep_raw: bool = False,
    threads: int | None = None,
) -> IngestSummary:
    """Ingest trail files under a local folder (or one file); with `retry_quarantined`, also those ingested
    before whose records were (partly) quarantined; with `keep_raw`, each KMS record's text in `raw`; `threads`:
    DuckDB's threads (default: one per core)."""
    objects = list(list_local(root, flt))
    originals = Originals(lake.state_dir / "ingest.sqlite", lambda: make_client("s3"))
    reading = Reading(_read_in_place, originals, keep_raw, threads)
    return _ingest_objects(lake, str(root), objects, reading, progress, batch_files, retry_quarantined)


def _read_in_place(batch: list[ObjectVersion], _: Path) -> Materialised:
    """Local files are read where they are; one that cannot be opened and read is set apart with the OS error."""
    files, unreadable = [], {}
    for obj in batch:
        try:
            with open(obj.key, "rb") as fh:
                fh.read(1)
        except OSError as err:
            unreadable[obj.key] = f"{cannot_read(err)}; every run retries it"
            continue
        files.append((Path(obj.key), obj.key))
    return files, unreadable


def ingest_s3(
    lake: Lake,
    trail: S3Trail,
    flt: TrailFilter,
    progress: Progress | None = None,
    batch_files: int = BATCH_FILES,
    retry_quarantined: bool = False,
    listing: Progress = no_progress,
    keep_raw: bool = False,
) -> IngestSummary:
    """Ingest trail files from an S3 bucket, downloading each batch to the lake's staging folder (`listing` is
    told of each object the S3 listing returns, before `progress` counts files ingested)."""
    objects = list(trail.list_objects(flt, listing))
    vanished: list[str] = []

    def fetch(batch: list[ObjectVersion], folder: Path) -> Materialised:
        folder.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=8) as pool:
            got = list(pool.map(lambda o: _download(trail, o, folder), enumerate(batch)))
        vanished.extend(o.key for o, path in zip(batch, got, strict=True) if path is None)
        files = [(path, o.key) for o, path in zip(batch, got, strict=True) if isinstance(path, Path)]
        return files, {o.key: problem for o, problem in zip(batch, got, strict=True) if isinstance(problem, str)}

    originals = Originals(lake.state_dir / "ingest.sqlite", lambda: trail.client)
    reading = Reading(fetch, originals, keep_raw)
    summary = _ingest_objects(lake, trail.uri, objects, reading, progress, batch_files, retry_quarantined)
    summary.files_vanished = len(vanished)
    return summary


def _download(trail: S3Trail, item: tuple[int, ObjectVersion], folder: Path) -> Path | str | None:
    """Fetch one object to a local file; None when it was deleted after the listing; why, when S3 refused it."""
    n, obj = item
    suffix = ".json.gz" if obj.key.endswith(".gz") else ".json"
    try:
        data = trail.fetch(obj.key)
    except SourceError as err:
        return f"{err}; every run retries it"
    if data is None:
        return None
    crash_point("download")
    path = folder / f"{n:06d}{suffix}"
    path.write_bytes(data)
    return path


@dataclass
class Reading:
    """How a run reads its source: `materialise` makes a batch readable on local disk; `originals` fetches the
    record a lake row points to; `keep_raw` keeps each KMS record's text in the lake; `threads`: DuckDB's."""

    materialise: Callable[[list[ObjectVersion], Path], Materialised]
    originals: Originals
    keep_raw: bool
    threads: int | None = None


def _ingest_objects(
    lake: Lake,
    source: str,
    objects: list[ObjectVersion],
    reading: Reading,
    progress: Progress | None,
    batch_files: int,
    retry_quarantined: bool = False,
) -> IngestSummary:
    started = time.perf_counter()
    with lake_run(lake, "ingest cloudtrail", source) as (state, run_id):
        known = state.known(STATE_SOURCE, retry_quarantined)
        new = [o for o in objects if state.is_new(known, o)]
        summary = IngestSummary(source, run_id, files_seen=len(objects), files_new=len(new))
        floor = state.retention_floor()
        writer = KmsLakeWriter(
            lake, run_id, threads=reading.threads, floor=floor, keep_raw=reading.keep_raw, originals=reading.originals
        )
        results: list[BatchResult] = []
        groups = list(batches(new, batch_files))
        recorder = BatchRecorder(state, run_id, progress, len(new))
        try:
            ready = prepared(reading, groups, lambda n: lake.work_dir / "_staging" / f"{run_id}-download-{n}")
            for n, (batch, (local, unreadable, read)) in enumerate(zip(groups, ready, strict=True)):
                result = writer.ingest_files(local, read) if local else BatchResult()
                result.counts.update(set_apart(lake, state, run_id, unreadable))
                summary.files_unreadable += len(unreadable)
                shutil.rmtree(lake.work_dir / "_staging" / f"{run_id}-download-{n}", ignore_errors=True)
                recorder.add(batch, local, result)
                results.append(result)
                summary.bytes_read += sum(o.size or 0 for o in batch)
            recorder.flush()
        finally:
            writer.close()
        summary.totals = summary_counts(results)
        summary.seconds = time.perf_counter() - started
        state.end_run(run_id, "quarantined" if summary.quarantined else "ok", {**summary.totals, "files": len(new)})
    return summary


class BatchRecorder:
    """Records each batch's files in the ingest state once its kms_events files are in the lake. The writer writes a
    batch while it parses the next, so a batch is recorded when the next one is handed over (`add`), or at the end
    (`flush`): a killed run never records a file whose events it did not land."""

    def __init__(self, state: IngestState, run_id: str, progress: Progress | None, total: int) -> None:
        self.state, self.run_id, self.progress, self.total = state, run_id, progress, total
        self.pending: tuple[list[ObjectVersion], list[tuple[Path, str]], BatchResult] | None = None

    def add(self, batch: list[ObjectVersion], local: list[tuple[Path, str]], result: BatchResult) -> None:
        """Hold a batch (objects, their local files, what the writer made of them), recording the one held before."""
        self.flush()
        self.pending = (batch, local, result)

    def flush(self) -> None:
        """Record the batch held, once its files are written (raises what the write raised)."""
        if self.pending is None:
            return
        batch, local, result = self.pending
        self.pending = None
        result.written.result()
        crash_point("before-state")
        done = {s for _, s in local}
        counts = [(o, result.counts[o.key].as_dict()) for o in batch if o.key in done]
        self.state.record_objects(STATE_SOURCE, self.run_id, counts, result.sha256)
        if self.progress:
            self.progress(len(batch), self.total)


def prepared(reading: Reading, groups: list[list[ObjectVersion]], folder: Callable[[int], Path]) -> Iterator[Prepared]:
    """Each batch materialised (downloaded) and its files checked and cut one batch ahead, in a thread, while the
    writer works on the batch before: downloads, gzip checks and cuts overlap DuckDB's work. Nothing is recorded
    here, so a kill at any point leaves at most a staging folder that the next run clears."""

    def prepare(n: int) -> Prepared:
        local, unreadable = reading.materialise(groups[n], folder(n))
        return local, unreadable, read_trail_files(local)

    with ThreadPoolExecutor(max_workers=1) as ahead:
        pending = [ahead.submit(prepare, 0)] if groups else []
        for n in range(1, len(groups) + 1):
            ready = pending.pop().result()
            if n < len(groups):
                pending.append(ahead.submit(prepare, n))
            yield ready


def set_apart(lake: Lake, state: IngestState, run_id: str, unreadable: dict[str, str]) -> dict[str, Counts]:
    """Quarantine an entry per object that could not be read and remember it in the state, out of
    `source_objects`: the rest of the batch lands, and the next run tries these objects again."""
    rows = quarantine_rows("kms_events", ((key, None, error, None) for key, error in unreadable.items()))
    lake.write_quarantine(rows, run_id)
    state.record_unreadable(STATE_SOURCE, run_id, unreadable)
    return {key: Counts(quarantined=1) for key in unreadable}


def ingest_lookup_events(
    lake: Lake,
    client: Any,
    region: str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    pace_seconds: float = 0.5,
    source: str | None = None,
    progress: Progress | None = None,
) -> IngestSummary:
    """Ingest KMS events through the CloudTrail LookupEvents API, resuming from the last checkpoint.

    `source` names the checkpoint (default `lookup-events:<region>`); give one per account when several
    accounts are read in the same region.
    """
    started = time.perf_counter()
    source = source or f"lookup-events:{region}"
    end = until or dt.datetime.now(dt.UTC)
    with lake_run(lake, "ingest cloudtrail --lookup-events", source) as (state, run_id):
        start = _lookup_start(state.checkpoint(source, ""), since, end)
        summary = IngestSummary(source, run_id, files_seen=1, files_new=1)
        writer = KmsLakeWriter(lake, run_id, floor=state.retention_floor())
        results = []
        try:
            for page in lookup_pages(client, start, end, pace_seconds, source):
                results.append(writer.ingest_records(page))
                if progress:
                    progress(page.num_rows, 0)
            for result in results:
                result.written.result()
        finally:
            writer.close()
        state.set_checkpoint(source, "", {"end": end.isoformat()})
        summary.totals = summary_counts(results)
        summary.seconds = time.perf_counter() - started
        state.end_run(run_id, "quarantined" if summary.quarantined else "ok", summary.totals)
    return summary


def _lookup_start(checkpoint: dict[str, Any] | None, since: dt.datetime | None, end: dt.datetime) -> dt.datetime:
    """Resume a little before the last run's end (late events), never before `since` or 90 days back."""
    floor = since or end - LOOKUP_MAX_AGE
    if checkpoint:
        return max(floor, dt.datetime.fromisoformat(checkpoint["end"]) - LOOKUP_OVERLAP)
    return floor


def lookup_pages(client: Any, start: dt.datetime, end: dt.datetime, pace: float, source: str) -> Iterator[pa.Table]:
    """Pages of LookupEvents results as (source_object, record_index, rec) tables, at most 1/pace calls/s."""
    paginator = client.get_paginator("lookup_events")
    pages = paginator.paginate(
        LookupAttributes=[{"AttributeKey": "EventSource", "AttributeValue": "kms.amazonaws.com"}],
        StartTime=start,
        EndTime=end,
    )
    index = 0
    try:
        for page in _paced(pages, pace):
            texts = [e.get("CloudTrailEvent") or "null" for e in page.get("Events", [])]
            yield records_table(source, enumerate(texts, start=index))
            index += len(texts)
    except ClientError as err:
        raise explain_client_error(err, f"CloudTrail LookupEvents in {source.split(':')[-1]}") from err


def _paced(pages: Any, pace: float) -> Iterator[dict[str, Any]]:
    """Iterate pages no faster than one per `pace` seconds (LookupEvents allows 2 per second per region)."""
    iterator = iter(pages)
    last_call = 0.0
    while True:
        wait = last_call + pace - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        last_call = time.monotonic()
        try:
            yield next(iterator)
        except StopIteration:
            return
