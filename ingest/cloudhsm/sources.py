"""Where CloudHSM audit entries come from: CloudWatch Logs (boto3) and exported files (local folder or S3).

Both yield `Batch`es of messages; the loader writes each batch before calling its `commit`, which records
the stream checkpoint or the source objects in the ingest state.

- CloudWatch Logs: log group `/aws/cloudhsm/<cluster-id>`, one stream per HSM id. Per stream the checkpoint
  holds the last event timestamp and the CloudWatch event ids seen at that millisecond, so a rerun asks
  from that timestamp on and skips only those ids: nothing is fetched twice and nothing in the same
  millisecond is lost. It also holds `since`, the earliest time read (null: the whole stream), so a later
  run with an earlier --since backfills the older window instead of silently skipping it. Events that
  CloudWatch receives late, with a timestamp before the checkpoint, are not re-read (rerun with --since).
- Files: gzip text as `create-export-task` writes it (`<ISO8601> <message>` lines, a multi-line message
  continuing on the following lines; the HSM id is the folder the object sits in, as in
  `<prefix>/<task-id>/<hsm-id>/000000.gz`), or JSON lines of `{timestamp, message, logStreamName}`
  (also a `{"events": [...]}` document as `aws logs filter-log-events` prints).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from botocore.exceptions import ClientError

from ingest.aws import call_aws, explain_client_error
from ingest.cloudhsm.load import Batch
from ingest.cloudhsm.parse import TABLE, messages_frame
from ingest.errors import ConfigError, SourceError
from ingest.lake.schema import QUARANTINE
from ingest.lake.state import IngestState, ObjectVersion
from ingest.lake.store import quarantine_rows
from ingest.raw import NOT_UTF8, cannot_read, decode, decompress, not_utf8

LOG_GROUP_PREFIX = "/aws/cloudhsm/"
BATCH_ENTRIES = 200_000
CLUSTER_IN_PATH = re.compile(r"(cluster-[a-z0-9]+)")
LOG_SUFFIXES = {".gz", ".json", ".jsonl", ".ndjson", ".log", ".txt", ""}
JSON_EVENT = {"timestamp": pl.Int64, "message": pl.String, "logStreamName": pl.String}
EXPORT_LINE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d) "


def cluster_of_group(log_group: str) -> str:
    """The cluster id in a log group name `/aws/cloudhsm/<cluster-id>`."""
    return log_group.rstrip("/").rsplit("/", 1)[-1]


# --- CloudWatch Logs -------------------------------------------------------------------------------------


def list_log_groups(client: Any, prefix: str = LOG_GROUP_PREFIX) -> list[str]:
    """Every CloudHSM log group of the account and region."""
    what = f"log groups {prefix}*"
    return _all_names(client.describe_log_groups, what, "logGroups", "logGroupName", logGroupNamePrefix=prefix)


def list_streams(client: Any, log_group: str) -> list[str]:
    """Every log stream (one per HSM) of a log group."""
    what = f"log group {log_group}"
    return _all_names(client.describe_log_streams, what, "logStreams", "logStreamName", logGroupName=log_group)


def _all_names(call: Callable[..., Any], what: str, items: str, name: str, **kwargs: Any) -> list[str]:
    """`name` of every item of a paginated CloudWatch Logs listing, each page with throttling backoff."""
    names: list[str] = []
    token: str | None = None
    while True:
        args: dict[str, Any] = {**kwargs, **({"nextToken": token} if token else {})}
        page = call_aws(call, what, **args)
        names += [item[name] for item in page.get(items, [])]
        token = page.get("nextToken")
        if not token:
            return names


def stream_events(
    client: Any, log_group: str, stream: str, start_ms: int | None, end_ms: int | None, page_size: int | None = None
) -> Iterator[dict[str, Any]]:
    """Events of one stream in time order, page by page until no nextToken (empty pages included)."""
    kwargs: dict[str, Any] = {"logGroupName": log_group, "logStreamNames": [stream]}
    kwargs |= {k: v for k, v in (("startTime", start_ms), ("endTime", end_ms), ("limit", page_size)) if v}
    while True:
        page = call_aws(client.filter_log_events, f"log stream {log_group}/{stream}", **kwargs)
        yield from page.get("events", [])
        if not page.get("nextToken"):
            return
        kwargs["nextToken"] = page["nextToken"]


@dataclass
class CloudWatchSource:
    """CloudHSM log groups in CloudWatch Logs, read incrementally per stream."""

    client: Any
    log_groups: list[str]
    since_ms: int | None = None
    until_ms: int | None = None
    page_size: int | None = None
    batch_entries: int = BATCH_ENTRIES
    cluster_id: str | None = None

    def plan(self) -> list[tuple[str, str]]:
        """(log group, stream) pairs this source would read."""
        groups = self.log_groups or list_log_groups(self.client)
        return [(g, s) for g in groups for s in list_streams(self.client, g)]

    def batches(self, state: IngestState) -> Iterator[Batch]:
        """Batches of new events, stream by stream."""
        for group, stream in self.plan():
            yield from self._stream_batches(state, group, stream)

    def _stream_batches(self, state: IngestState, group: str, stream: str) -> Iterator[Batch]:
        checkpoint = state.checkpoint(group, stream) or {"since": self.since_ms}
        floor = checkpoint.get("since")
        if "timestamp" in checkpoint and floor is not None and self.since_ms is not None and self.since_ms < floor:
            yield from self._backfill(group, stream, checkpoint, floor)
        last_ms = checkpoint.get("timestamp")
        start = max(filter(None, (self.since_ms, last_ms)), default=None)
        seen = set(checkpoint.get("event_ids", []))
        for chunk in self._chunks(group, stream, start, self.until_ms, last_ms, seen):
            checkpoint = _next_checkpoint(checkpoint, chunk)
            yield self._batch(group, stream, chunk, checkpoint)

    def _backfill(self, group: str, stream: str, checkpoint: dict[str, Any], floor: int) -> Iterator[Batch]:
        """Events older than the checkpoint covers, when --since now reaches further back.

        Only the last batch moves the checkpoint's `since`: until then the covered time is not contiguous,
        so a crash makes the next run fetch the whole older window again (deduplication drops the repeats).
        """
        end = floor - 1 if self.until_ms is None else min(floor - 1, self.until_ms)
        done = {**checkpoint, "since": self.since_ms} if end == floor - 1 else None
        previous: list[dict[str, Any]] = []
        for chunk in self._chunks(group, stream, self.since_ms, end, None, set()):
            if previous:
                yield self._batch(group, stream, previous, None)
            previous = chunk
        yield self._batch(group, stream, previous, done)

    def _chunks(
        self, group: str, stream: str, start: int | None, end: int | None, skip_ms: int | None, skip_ids: set[str]
    ) -> Iterator[list[dict[str, Any]]]:
        """Events of one stream in lists of at most `batch_entries`, minus those already read at `skip_ms`."""
        chunk: list[dict[str, Any]] = []
        for event in stream_events(self.client, group, stream, start, end, self.page_size):
            if event["timestamp"] == skip_ms and event.get("eventId") in skip_ids:
                continue
            chunk.append(event)
            if len(chunk) >= self.batch_entries:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _batch(self, group: str, stream: str, events: list[dict[str, Any]], position: dict[str, Any] | None) -> Batch:
        """A batch of events; once written, the stream's checkpoint moves to `position` (if any)."""
        source_object = f"cloudwatch:{group}:{stream}"
        frame = messages_frame(
            [e.get("message") for e in events],
            [e.get("logStreamName") or stream for e in events],
            [cluster_of_group(group)] * len(events),
            [source_object] * len(events),
        )
        if position is None:
            return Batch(frame)
        return Batch(frame, commit=lambda state, run_id, counts: state.set_checkpoint(group, stream, position))


def _next_checkpoint(previous: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """Last timestamp read and the event ids at that millisecond (merged when it did not move)."""
    last = max(e["timestamp"] for e in events)
    ids = {e.get("eventId") for e in events if e["timestamp"] == last}
    if previous.get("timestamp") == last:
        ids |= set(previous.get("event_ids", []))
    return {**previous, "timestamp": last, "event_ids": sorted(i for i in ids if i)}


# --- Exported files -------------------------------------------------------------------------------------


@dataclass
class FileObject:
    """One exported file: its identity for the ingest state and a way to read its bytes."""

    version: ObjectVersion
    url: str
    read: Callable[[], bytes]


def local_objects(root: Path) -> list[FileObject]:
    """Files under a local folder (or the one file), in name order."""
    if not root.exists():
        raise ConfigError(f"{root} does not exist: give a folder of CloudHSM exports, an s3:// URL or 'cloudwatch'")
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    objects = []
    for path in paths:
        # Only log-like files: a folder may also hold notes, ground truth or even the lake itself.
        if path.name.startswith(".") or path.suffix.lower() not in LOG_SUFFIXES:
            continue
        st = path.stat()
        version = ObjectVersion(str(path.resolve()), None, st.st_size, st.st_mtime)
        objects.append(FileObject(version, str(path), path.read_bytes))
    return objects


def s3_objects(client: Any, url: str) -> list[FileObject]:
    """Objects under an s3://bucket/prefix URL."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    objects = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            version = ObjectVersion(key, obj.get("ETag", "").strip('"'), obj.get("Size"), None)
            objects.append(FileObject(version, f"s3://{bucket}/{key}", _s3_reader(client, bucket, key)))
    return objects


def _s3_reader(client: Any, bucket: str, key: str) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        except ClientError as err:
            raise explain_client_error(err, f"s3://{bucket}/{key}") from err

    return read


def read_export(url: str, data: bytes, cluster_id: str | None) -> tuple[pl.DataFrame, pa.Table]:
    """Messages of one exported file (gzip or plain; export text or JSON) and quarantine for bad lines. As for
    trail files, nothing is lost or altered: a damaged gzip gives up the entries before the damage, a byte-order
    mark is not part of the first entry, and an entry with bytes that are not UTF-8 is quarantined as its bytes."""
    inflated, gzip_problem = decompress(data)
    text = decode(inflated)
    bad: list[tuple[str, int | None, str, str | None]] = []
    if gzip_problem:
        text, tail = _complete_entries(text)
        bad.append((url, None, f"{gzip_problem}; the entries before it were read, the last one cut", tail or None))
    text, undecodable = _without_undecodable(url, text)
    cluster = cluster_id or _cluster_in(url)
    read = _json_messages if _is_json(text) else _export_messages
    frame, quarantine = read(url, text, cluster)
    return frame, pa.concat_tables([quarantine, quarantine_rows(TABLE, iter(bad + undecodable))])


def _is_json(text: str) -> bool:
    return text.lstrip()[:1] in ("{", "[")


def _starts(lines: list[str], json_lines: bool) -> list[int]:
    """Where each entry starts: every line of JSON lines, every timestamped line of export text."""
    return [i for i, line in enumerate(lines) if json_lines or re.match(EXPORT_LINE, line)]


def _complete_entries(text: str) -> tuple[str, str]:
    """A cut file's text up to its last entry, which the cut may have shortened, and that entry."""
    lines = text.split("\n")
    starts = _starts(lines, _is_json(text))
    last = starts[-1] if starts else 0
    return "\n".join(lines[:last]), "\n".join(lines[last:])


def _without_undecodable(url: str, text: str) -> tuple[str, list[tuple[str, int | None, str, str | None]]]:
    """Entries holding bytes that are not UTF-8 (lone surrogates after the decode) go to the quarantine whole;
    their lines are blanked, so the other entries keep their line numbers."""
    if not NOT_UTF8.search(text):
        return text, []
    lines = text.split("\n")
    starts = _starts(lines, _is_json(text)) or [0]
    bad: list[tuple[str, int | None, str, str | None]] = []
    for first, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        entry = "\n".join(lines[first:end])
        bad_byte = NOT_UTF8.search(entry)
        if bad_byte:
            bad.append((url, first + 1, not_utf8(bad_byte, 0, "entry"), entry))
            lines[first:end] = [""] * (end - first)
    return "\n".join(lines), bad


def _cluster_in(url: str) -> str | None:
    found = CLUSTER_IN_PATH.findall(url)
    return found[-1] if found else None


def _hsm_folder(url: str) -> str | None:
    """The HSM id an export object belongs to: the folder it sits in (its log stream name)."""
    parts = url.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 and parts[-2].startswith("hsm-") else None


def _export_messages(url: str, text: str, cluster: str | None) -> tuple[pl.DataFrame, pa.Table]:
    """Split export text into entries: a line with a timestamp prefix starts one, other lines continue it."""
    lines = pl.DataFrame({"line": text.split("\n")}).with_row_index("line_no", offset=1)
    lines = lines.with_columns(pl.col("line").str.contains(EXPORT_LINE).cum_sum().alias("entry"))
    entries = lines.group_by("entry", maintain_order=True).agg(
        pl.col("line").str.join("\n").str.strip_chars_end("\r\n "), pl.col("line_no").first()
    )
    orphan = entries.filter((pl.col("entry") == 0) & (pl.col("line") != ""))
    entries = entries.filter(pl.col("entry") > 0)
    messages = entries.get_column("line").str.replace(EXPORT_LINE, "").to_list()
    n = len(messages)
    frame = messages_frame(messages, [_hsm_folder(url)] * n, [cluster] * n, [url] * n, entries["line_no"].to_list())
    reason = "text before the first timestamped entry (not a CloudWatch export line)"
    bad = [(url, int(no), reason, line) for line, no in orphan.select("line", "line_no").iter_rows()]
    return frame, quarantine_rows(TABLE, iter(bad))


def _json_messages(url: str, text: str, cluster: str | None) -> tuple[pl.DataFrame, pa.Table]:
    """Events from JSON lines, or from one `{"events": [...]}` document; bad lines are quarantined."""
    stripped = text.strip()
    if stripped.startswith("{") and '"events"' in stripped[:200]:
        try:
            document = json.loads(stripped)
        except json.JSONDecodeError:
            document = None  # JSON lines whose first event has an "events" field: read line by line below
        if isinstance(document, dict) and isinstance(document.get("events"), list):
            return _json_events(url, document["events"], cluster)
    fast = _json_lines_fast(url, text, cluster)
    if fast is not None:
        return fast, QUARANTINE.empty_table()
    events, bad = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as err:
            bad.append((url, number, f"invalid JSON on line {number}: {err.msg}", line))
            continue
        if not isinstance(event, dict) or not isinstance(event.get("message"), str):
            bad.append((url, number, f"line {number} has no string 'message' field", line))
            continue
        events.append({**event, "_line": number})
    return _events_frame(url, events, cluster), quarantine_rows(TABLE, iter(bad))


def _json_events(url: str, events: list[Any], cluster: str | None) -> tuple[pl.DataFrame, pa.Table]:
    """The events of one `aws logs filter-log-events` document; events without a message are quarantined."""
    good = [
        {**e, "_line": i}
        for i, e in enumerate(events, start=1)
        if isinstance(e, dict) and isinstance(e.get("message"), str)
    ]
    bad = [
        (url, i, f"event {i} has no string 'message' field", json.dumps(e))
        for i, e in enumerate(events, start=1)
        if not (isinstance(e, dict) and isinstance(e.get("message"), str))
    ]
    return _events_frame(url, good, cluster), quarantine_rows(TABLE, iter(bad))


def _json_lines_fast(url: str, text: str, cluster: str | None) -> pl.DataFrame | None:
    """All lines read at once by polars; None when any line is blank, invalid or lacks a message (then the
    line-by-line reader finds and quarantines exactly those lines)."""
    if "\n\n" in text.strip():
        return None
    try:
        events = pl.read_ndjson(io.BytesIO(text.encode()), schema=JSON_EVENT, ignore_errors=False)
    except (pl.exceptions.PolarsError, ValueError):
        return None
    if events.get_column("message").null_count():
        return None
    stream = pl.coalesce(pl.col("logStreamName"), pl.lit(_hsm_folder(url), pl.String))
    return events.select(
        pl.col("message"),
        stream.alias("hsm_id"),
        pl.lit(cluster, pl.String).alias("cluster_id"),
        pl.lit(url).alias("source_object"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("record_index"),
    )


def _events_frame(url: str, events: list[dict[str, Any]], cluster: str | None) -> pl.DataFrame:
    n = len(events)
    folder = _hsm_folder(url)
    return messages_frame(
        [e.get("message") for e in events],
        [e.get("logStreamName") or folder for e in events],
        [cluster] * n,
        [url] * n,
        [e.get("_line", i + 1) for i, e in enumerate(events)],
    )


def _empty_messages() -> pl.DataFrame:
    return messages_frame([], [], [], [])


def _one_bad(url: str, reason: str) -> pa.Table:
    return quarantine_rows(TABLE, iter([(url, None, reason, None)]))


@dataclass
class FileSource:
    """A folder (local or s3://) of CloudWatch Logs exports; each file is read once per version."""

    root: str
    objects: Callable[[], list[FileObject]]
    cluster_id: str | None = None
    batch_entries: int = BATCH_ENTRIES
    retry_quarantined: bool = False  # read again the files that had quarantined entries

    def plan(self, state: IngestState | None = None) -> list[FileObject]:
        """Files this source would read (only new or changed ones when a state is given)."""
        objects = self.objects()
        if state is None:
            return objects
        known = state.known(self.root, self.retry_quarantined)
        return [o for o in objects if state.is_new(known, o.version)]

    def batches(self, state: IngestState) -> Iterator[Batch]:
        """Batches of whole files, about `batch_entries` messages each. A file that cannot be read is quarantined
        and remembered as unreadable, not as read: the next run tries it again."""
        pending: list[tuple[FileObject, pl.DataFrame, pa.Table, str | None]] = []
        for obj in self.plan(state):
            try:
                frame, bad = read_export(obj.url, obj.read(), self.cluster_id)
                problem = None
            except (OSError, SourceError) as err:
                problem = _cannot_read(err)
                frame, bad = _empty_messages(), _one_bad(obj.url, problem)
            pending.append((obj, frame, bad, problem))
            if sum(p[1].height for p in pending) >= self.batch_entries:
                yield self._batch(pending)
                pending = []
        if pending:
            yield self._batch(pending)

    def _batch(self, pending: list[tuple[FileObject, pl.DataFrame, pa.Table, str | None]]) -> Batch:
        frame = pl.concat([p[1] for p in pending])
        bad = pa.concat_tables([p[2] for p in pending])

        def commit(state: IngestState, run_id: str, counts: dict[str, dict[str, int]]) -> None:
            empty = {"records": 0, "kept": 0, "quarantined": 0}
            done = [(o.version, counts.get(o.url, empty)) for o, _, _, problem in pending if problem is None]
            state.record_objects(self.root, run_id, done)
            failed = {o.version.key: problem for o, _, _, problem in pending if problem is not None}
            state.record_unreadable(self.root, run_id, failed)

        return Batch(frame, bad, commit)


def _cannot_read(err: OSError | SourceError) -> str:
    return f"{err if isinstance(err, SourceError) else cannot_read(err)}; every run retries it"


# --- Choosing a source ----------------------------------------------------------------------------------


def epoch_ms(when: dt.datetime | None) -> int | None:
    """An aware datetime as CloudWatch Logs' epoch milliseconds."""
    return int(when.timestamp() * 1000) if when else None


def open_source(
    source: str | None,
    log_groups: list[str],
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    cluster_id: str | None = None,
    client: Callable[[str], Any] | None = None,
) -> CloudWatchSource | FileSource:
    """The source a command line names: 'cloudwatch' (or --log-group), an s3:// URL, or a local path."""
    make = client or (lambda service: None)
    if source in (None, "cloudwatch") or log_groups:
        if source not in (None, "cloudwatch"):
            raise ConfigError(f"give either a SOURCE ({source}) or --log-group, not both")
        groups = list(log_groups) or ([LOG_GROUP_PREFIX + cluster_id] if cluster_id else [])
        return CloudWatchSource(make("logs"), groups, epoch_ms(since), epoch_ms(until), cluster_id=cluster_id)
    if since or until:
        raise ConfigError("--since/--until apply to CloudWatch Logs; for files, point SOURCE at the files to read")
    if source.startswith("s3://"):
        s3 = make("s3")
        return FileSource(source, lambda: s3_objects(s3, source), cluster_id)
    root = Path(source)
    return FileSource(str(root.resolve()), lambda: local_objects(root), cluster_id)
