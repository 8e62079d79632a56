"""`keytrail ingest cloudtrail --engine spark`: the backfill of months of trail files on a Spark session.

Spark reads the trail files (`binaryFile`: each file's bytes, from a folder or `s3a://`) and hands each task a
batch of them; the task parses them with the very code the DuckDB ingest runs (the gzip check of ingest/raw.py,
the cut of cut.py and the typing of sql/kms_rows.sql in an embedded DuckDB, the exact reader of salvage.py for the
files the cut cannot be trusted with), into rows of an explicit Spark schema: the kms_events
columns plus the event source, the quarantine reason, and each file's SHA-256. A Spark JSON reader would parse
differently (dates, trailing commas, repeated keys), lose the record's text and position, and call a whole file
corrupt for one bad record, so the parse stays the one the DuckDB ingest has.

Spark then drops repeated event ids (against the lake and within the backfill, first by source object and record
index), writes the fresh rows partitioned by event date and moves each file into `kms_events/event_date=D/`. The
few records whose id is taken by another record are compared in the driver, as the DuckDB writer does; the
quarantine, the access events and the ingest state are written by the driver through the same functions, after
the lake files, so a later DuckDB ingest of the same source skips what this one landed and a killed run reruns.
A file Spark cannot read (refused, archived) is left out of the read and set apart by the driver, as the DuckDB
ingest sets it apart: the backfill goes on, and the next run retries it.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import duckdb
import pyarrow as pa

from ingest.aws import make_client
from ingest.cloudtrail.access import EVENT_NAMES, Landed, land_access
from ingest.cloudtrail.cut import cut_records
from ingest.cloudtrail.load import BATCH_BYTES, STATE_SOURCE, IngestSummary, lake_run, set_apart
from ingest.cloudtrail.originals import Originals, OriginalUnavailable
from ingest.cloudtrail.salvage import salvage
from ingest.cloudtrail.sources import S3Trail, TrailFilter, list_local
from ingest.cloudtrail.writer import (
    CONFLICT,
    KMS_SOURCE,
    BatchResult,
    Copy,
    Counts,
    parse_fast,
    parse_records_into,
    publish,
    records_table,
    same_event,
    summary_counts,
)
from ingest.errors import ConfigError, SourceError
from ingest.faults import crash_point
from ingest.lake.schema import KMS_EVENTS
from ingest.lake.state import IngestState, ObjectVersion
from ingest.lake.store import Lake, quarantine_rows
from ingest.raw import cannot_read, content_of

# What a task gives back per row. `kind`: `record` (a parsed record, good or not: `reason` says), `problem` (what
# the exact reader could not read: `evidence` holds its bytes) or `file` (one per file: its `sha256`).
EXTRA = [
    pa.field("event_source", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("evidence", pa.binary()),
    pa.field("sha256", pa.string()),
    pa.field("kind", pa.string()),
]
PARSED = pa.schema([f.with_nullable(True) for f in KMS_EVENTS] + EXTRA)
# Why a file Spark's executors could not read is quarantined when the driver can read it.
SPARK_UNREAD = "Spark's executors could not read the file, though the driver can: their log says why"
# The most rows in one kms_events file the backfill writes (a day of an organisation trail is far more).
FILE_ROWS = 4_000_000


# Spark's settings the backfill relies on: UTC event dates, and Parquet timestamps as the lake writes them.
def spark_path(key: str) -> str:
    """Where Spark reads a source object: `s3a://` for S3 (hadoop-aws), an absolute file URI for a local file."""
    if key.startswith("s3://"):
        return "s3a://" + key.removeprefix("s3://")
    return Path(key).resolve().as_uri()


def object_key(path: str, keys: dict[str, str]) -> str:
    """The source object (as the DuckDB ingest names it) of a path Spark read."""
    if path.startswith("s3a://"):
        return "s3://" + path.removeprefix("s3a://")
    local = urlparse(path).path
    return keys.get(local) or keys[unquote(local)]


# --- in the tasks: bytes of trail files → parsed rows ---------------------------------------------------------


def parse_batches(batches: Iterator[Any], keys: dict[str, str], keep_raw: bool) -> Iterator[Any]:
    """mapInArrow's function: each batch of (path, content) files becomes PARSED rows, parsed BATCH_BYTES of gzip
    at a time (as the DuckDB ingest's batches), so a task's memory stays flat whatever its partition's size."""
    for batch in batches:
        paths, contents = batch.column("path").to_pylist(), batch.column("content").to_pylist()
        files = [(object_key(p, keys), bytes(c)) for p, c in zip(paths, contents, strict=True)]
        for chunk in chunks(files, BATCH_BYTES):
            yield from parse_files(chunk, keep_raw).to_batches()


def chunks(files: list[tuple[str, bytes]], size: int) -> Iterator[list[tuple[str, bytes]]]:
    """Consecutive groups of files of at most `size` bytes together (a larger file alone)."""
    chunk: list[tuple[str, bytes]] = []
    total = 0
    for item in files:
        if chunk and total + len(item[1]) > size:
            yield chunk
            chunk, total = [], 0
        chunk.append(item)
        total += len(item[1])
    if chunk:
        yield chunk


def parse_files(files: list[tuple[str, bytes]], keep_raw: bool) -> pa.Table:
    """Parse trail files, given as (source object, bytes), as the DuckDB ingest does: the cut for intact UTF-8
    files of one framed line, the exact reader for the others."""
    con = duckdb.connect(config={"threads": 1})
    try:
        con.execute("SET TimeZone = 'UTC'")
        exact = parse_fast(con, {key: cut_records(key, content_of(data)) for key, data in files}, keep_raw)
        problems = [parse_exact(con, key, data, keep_raw) for key, data in files if key in exact]
        return pa.concat_tables([records_out(con), *problems, files_out(files)])
    finally:
        con.close()


def parse_exact(con: duckdb.DuckDBPyConnection, key: str, data: bytes, keep_raw: bool) -> pa.Table:
    """Read one file with the exact reader: its good records join `parsed`; returns its quarantine entries."""
    result = salvage(data)
    parse_records_into(con, records_table(key, result.records), keep_raw)
    problems = [(index, reason, raw.encode("utf-8", "surrogateescape") if raw else None)
                for index, reason, raw in result.problems]  # fmt: skip
    return rows_of(
        len(problems),
        source_object=[key] * len(problems),
        record_index=[p[0] for p in problems],
        reason=[p[1] for p in problems],
        evidence=[p[2] for p in problems],
        kind=["problem"] * len(problems),
    )


def records_out(con: duckdb.DuckDBPyConnection) -> pa.Table:
    names = [*KMS_EVENTS.names, "event_source", "reason"]
    table = con.sql(f"SELECT {', '.join(names)}, 'record' AS kind FROM parsed").to_arrow_table()
    return rows_of(table.num_rows, **{name: table.column(name) for name in table.column_names})


def files_out(files: list[tuple[str, bytes]]) -> pa.Table:
    return rows_of(
        len(files),
        source_object=[key for key, _ in files],
        sha256=[hashlib.sha256(data).hexdigest() for _, data in files],
        kind=["file"] * len(files),
    )


def rows_of(n: int, **columns: Any) -> pa.Table:
    """PARSED rows: the given columns, NULL in the others."""
    return pa.table([column(columns[f.name], f.type) if f.name in columns else pa.nulls(n, f.type) for f in PARSED],
                    schema=PARSED)  # fmt: skip


def column(values: Any, kind: pa.DataType) -> pa.Array | pa.ChunkedArray:
    return values.cast(kind) if isinstance(values, pa.ChunkedArray) else pa.array(values, kind)


# --- in the driver: the run ------------------------------------------------------------------------------------


def require_local(lake: Lake) -> None:
    """A ConfigError for an S3 lake: the backfill renames Spark's files into a lake folder on the driver."""
    if lake.remote:
        raise ConfigError(
            f"--engine spark writes a local lake folder, not {lake.uri}: backfill into a folder (on the driver), "
            "then copy it to S3 (docs/backfill.md)"
        )


@dataclass
class Source:
    """What a backfill reads: the source as named in the run record, its objects, and how the driver reads one
    object's bytes again (for the few records whose event id is taken by another record)."""

    name: str
    objects: list[ObjectVersion]
    read: Callable[[str], bytes | None]
    originals: Originals


def backfill(
    lake: Lake, source: Source, spark: Any, keep_raw: bool = False, retry_quarantined: bool = False
) -> IngestSummary:
    """Ingest the source's trail files not in the ingest state yet on `spark`: the DuckDB ingest's rows, quarantine,
    event ids and state, for initial loads of months of an organisation trail."""
    require_local(lake)
    started = time.perf_counter()
    with lake_run(lake, "ingest cloudtrail --engine spark", source.name) as (state, run_id):
        known = state.known(STATE_SOURCE, retry_quarantined)
        new = [o for o in source.objects if state.is_new(known, o)]
        summary = IngestSummary(source.name, run_id, files_seen=len(source.objects), files_new=len(new))
        if new:
            run = Run(lake, source, spark, run_id, state)
            result = run.ingest(new, keep_raw)
            unreadable, vanished = run.unread(new)
            result.counts.update(set_apart(lake, state, run_id, unreadable))
            crash_point("before-state")
            read = [o for o in new if o.key in run.sha256]
            state.record_objects(STATE_SOURCE, run_id, [(o, result.counts[o.key].as_dict()) for o in read], run.sha256)
            summary.totals = summary_counts([result])
            summary.bytes_read = sum(o.size or 0 for o in read)
            summary.files_unreadable, summary.files_vanished = len(unreadable), len(vanished)
        summary.seconds = time.perf_counter() - started
        state.end_run(run_id, "quarantined" if summary.quarantined else "ok", {**summary.totals, "files": len(new)})
    return summary


# A record to quarantine: (source object, record index, reason, text or bytes).
Entry = tuple[str, int | None, str, str | bytes | None]


class Run:
    """One backfill on Spark: parse, drop repeated ids, write, then quarantine, access events and counts."""

    def __init__(self, lake: Lake, source: Source, spark: Any, run_id: str, state: IngestState) -> None:
        self.lake, self.source, self.spark, self.run_id, self.state = lake, source, spark, run_id, state
        self.floor = state.retention_floor()
        self.sha256: dict[str, str] = {}  # each file's SHA-256, its identity in the ingest state
        self.changed: set[str] = set()  # files the state recorded with other bytes
        self.texts: dict[str, dict[int, str]] = {}  # records of files read again in the driver
        self.lake_rows: Any = None  # the lake's rows on the backfill's days (`read_lake`)

    def ingest(self, objects: list[ObjectVersion], keep_raw: bool) -> BatchResult:
        """Land the objects' records; returns the counts per object."""
        from pyspark import StorageLevel

        parsed = self.parse(objects, keep_raw).persist(StorageLevel.MEMORY_AND_DISK)
        candidates = self.candidates(parsed).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            files = parsed.where("kind = 'file'").select("source_object", "sha256").collect()
            self.sha256 = {row[0]: row[1] for row in files}
            self.changed = changed_files(self.state, self.sha256)
            conflicts = self.conflicts(candidates)
            self.write(parsed, candidates, keep_raw)
            access = land_access_rows(self.lake, parsed, f"{self.run_id}-spark", self.floor)
            crash_point("written")
            self.quarantine(parsed, conflicts)
            result = BatchResult(self.count(parsed, candidates, conflicts), skipped_sources(parsed))
            access.count_into(result)
            return result
        finally:
            candidates.unpersist()
            parsed.unpersist()

    def unread(self, objects: list[ObjectVersion]) -> tuple[dict[str, str], list[str]]:
        """The objects Spark could not read (no `file` row: its reader skips a file it cannot open or read, rather
        than fail the backfill): why, as the driver finds when it reads each itself (the OS error, or S3's refusal
        and its fix; eight at a time, for S3's latency), and those deleted since the listing. Neither is recorded
        as read: the next run retries them."""
        keys = [o.key for o in objects if o.key not in self.sha256]
        with ThreadPoolExecutor(max_workers=8) as pool:
            found = dict(zip(keys, pool.map(self.why_unread, keys), strict=True))
        return {key: why for key, why in found.items() if why}, [key for key, why in found.items() if not why]

    def why_unread(self, key: str) -> str | None:
        """Why a file Spark left out cannot be read, as the driver finds it; None when it is gone."""
        try:
            data = self.source.read(key)
        except OSError as err:
            return f"{cannot_read(err)}; every run retries it"
        except SourceError as err:
            return f"{err}; every run retries it"
        return None if data is None else f"{SPARK_UNREAD}; every run retries it"

    def quarantine(self, parsed: Any, conflicts: list[Entry]) -> None:
        """Quarantine the records with a reason (their text, or their bytes when not UTF-8) and the conflicts."""
        bad = parsed.where("reason IS NOT NULL").select("source_object", "record_index", "reason", "raw", "evidence")
        entries: list[Entry] = [(r[0], r[1], r[2], r[3] if r[3] is not None else r[4]) for r in bad.collect()]
        self.lake.write_quarantine(quarantine_rows("kms_events", iter(entries + conflicts)), self.run_id)

    def parse(self, objects: list[ObjectVersion], keep_raw: bool) -> Any:
        """The objects' records as PARSED rows, parsed in Spark's tasks."""
        from pyspark.sql.pandas.types import from_arrow_schema

        keys = {str(Path(o.key).resolve()): o.key for o in objects if not o.key.startswith("s3://")}
        # Spark looks up each path given it: local files in the driver (a stat each), S3 objects in one listing
        # task per core, not one per path.
        local = not any(o.key.startswith("s3://") for o in objects)
        discovery = "spark.sql.sources.parallelPartitionDiscovery."
        self.spark.conf.set(f"{discovery}threshold", str(len(objects) + 1 if local else 32))
        self.spark.conf.set(f"{discovery}parallelism", str(self.spark.sparkContext.defaultParallelism))
        # a file it cannot read (refused, archived, gone) is left out, not the end of the backfill: see `unread`
        reader = self.spark.read.format("binaryFile").options(ignoreCorruptFiles="true", ignoreMissingFiles="true")
        files = reader.load([spark_path(o.key) for o in objects])
        return files.select("path", "content").mapInArrow(
            lambda batches: parse_batches(batches, keys, keep_raw), from_arrow_schema(PARSED)
        )

    def candidates(self, parsed: Any) -> Any:
        """The good KMS records with their event date, `nth` (1 for the first record of an event id, by source
        object and record index) and `in_lake` (the lake holds the id on a day the backfill touches)."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        first = Window.partitionBy("event_id").orderBy("source_object", "record_index")
        good = parsed.where(f"kind = 'record' AND reason IS NULL AND event_source = '{KMS_SOURCE}'")
        rows = good.select("source_object", "record_index", "event_id", F.to_date("event_time").alias("event_date"))
        rows = rows.withColumn("nth", F.row_number().over(first))
        self.lake_rows = self.read_lake(rows)
        lake_ids = self.lake_rows.select("event_id").distinct().withColumn("in_lake", F.lit(True))
        return rows.join(lake_ids, "event_id", "left").fillna(False, ["in_lake"])

    def read_lake(self, candidates: Any) -> Any:
        """The lake's kms_events rows (id, pointer, raw) on the days the backfill touches."""
        days = [row[0] for row in candidates.select("event_date").distinct().collect()]
        files = [str(f.resolve()) for day in days for f in self.lake.files("kms_events", day)]
        if not files:
            schema = "event_id STRING, source_object STRING, record_index INT, raw STRING"
            return self.spark.createDataFrame([], schema)
        base = str(self.lake.table_dir("kms_events").resolve())
        lake = self.spark.read.option("basePath", base).parquet(*files)
        return lake.select("event_id", "source_object", "record_index", "raw")

    def fresh(self, candidates: Any) -> Any:
        """The candidates that land: the first of their event id, not in the lake, not before the retention floor."""
        fresh = candidates.where("nth = 1 AND NOT in_lake")
        return fresh.where(f"event_date >= DATE'{self.floor}'") if self.floor else fresh

    def conflicts(self, candidates: Any) -> list[Entry]:
        """The records whose event id another record holds (in the lake, or first in the backfill) with other
        content: quarantine entries. A record the lake row points to, in its unchanged file, is the same event;
        the other repeats (few) are compared in the driver as the DuckDB writer compares them."""
        from pyspark.sql import functions as F

        lake = self.lake_rows
        itself = lake.select("event_id", "source_object", "record_index").withColumn("itself", F.lit(True))
        repeats = candidates.where("nth > 1 OR in_lake").join(
            itself, ["event_id", "source_object", "record_index"], "left"
        )
        same_file = F.coalesce(F.col("itself"), F.lit(False)) & ~F.col("source_object").isin(sorted(self.changed))
        rows = repeats.where(~same_file).select("source_object", "record_index", "event_id", "in_lake").collect()
        if not rows:
            return []
        ids = sorted({row[2] for row in rows})
        copies = self.copies(lake.where(F.col("event_id").isin(ids)), True)
        copies |= self.copies(candidates.where(F.col("event_id").isin(ids) & (F.col("nth") == 1)), False)
        return [
            (obj, index, CONFLICT + event_id, self.text(obj, index))
            for obj, index, event_id, in_lake in rows
            if not self.same((obj, index, None), copies.get((event_id, in_lake), []), in_lake)
        ]

    def copies(self, rows: Any, in_lake: bool) -> dict[tuple[str, bool], list[Copy]]:
        """(event id, in lake) → the copies holding it: (source object, record index, raw)."""
        raw = "raw" if in_lake else "CAST(NULL AS STRING) AS raw"
        found: dict[tuple[str, bool], list[Copy]] = {}
        for event_id, obj, index, text in rows.selectExpr("event_id", "source_object", "record_index", raw).collect():
            found.setdefault((event_id, in_lake), []).append((obj, index, text))
        return found

    def same(self, record: Copy, copies: list[Copy], in_lake: bool) -> bool:
        """True when a record is the same event as one of the copies that hold its id."""
        mine = same_event(self.text(record[0], record[1]) or "")
        texts = [self.lake_text(c) for c in copies] if in_lake else [self.text(c[0], c[1]) for c in copies]
        return any(mine == same_event(text) for text in texts if text is not None)

    def text(self, obj: str, index: int) -> str | None:
        """A record of the backfill, read again exactly from its file (once per file)."""
        if obj not in self.texts:
            data = self.source.read(obj)
            self.texts[obj] = dict(salvage(data).records) if data is not None else {}
        return self.texts[obj].get(index)

    def lake_text(self, copy: Copy) -> str | None:
        """A lake row's text: its raw, its file in this backfill (unchanged), else its original through the pointer
        (None when gone or changed: the record under the same id is then held)."""
        obj, index, raw = copy
        if raw is not None:
            return raw
        if obj in self.sha256 and obj not in self.changed:
            return self.text(obj, index)
        try:
            return self.source.originals.record(obj, index)
        except OriginalUnavailable:
            return None

    def write(self, parsed: Any, candidates: Any, keep_raw: bool) -> None:
        """Write the fresh rows partitioned by event date (one task per day, sorted by time, FILE_ROWS per file at
        most) into staging, then move each file into kms_events (`raw` only with keep_raw)."""
        from pyspark.sql import functions as F

        columns = [
            F.col(n) if n != "raw" or keep_raw else F.lit(None).cast("string").alias(n) for n in KMS_EVENTS.names
        ]
        fresh = self.fresh(candidates).select("source_object", "record_index")
        rows = parsed.where("kind = 'record'").join(fresh, ["source_object", "record_index"], "left_semi")
        rows = rows.select(*columns, F.to_date("event_time").alias("event_date"))
        staging = self.lake.work_dir / "_staging" / f"{self.run_id}-spark"
        out = rows.repartition("event_date").sortWithinPartitions("event_time", "event_id").write
        out.option("maxRecordsPerFile", FILE_ROWS).partitionBy("event_date").parquet(str(staging.resolve()))
        publish(staging, self.lake, "kms_events", f"{self.run_id}-spark")

    def count(self, parsed: Any, candidates: Any, conflicts: list[Entry]) -> dict[str, Counts]:
        """Records, kept, quarantined, skipped, duplicates, conflicts and pruned per object, as the writer counts."""
        from pyspark.sql import functions as F

        good = f"kind = 'record' AND reason IS NULL AND event_source = '{KMS_SOURCE}'"
        pruned = f"{good} AND to_date(event_time) < DATE'{self.floor}'" if self.floor else "false"
        landed = self.fresh(candidates).select("source_object", "record_index", F.lit(1).alias("landed"))
        rows = parsed.where("kind <> 'file'").join(landed, ["source_object", "record_index"], "left")
        totals = rows.groupBy("source_object").agg(
            F.count(F.when(F.expr("kind = 'record' OR record_index IS NOT NULL"), 1)),
            F.count(F.when(F.expr("reason IS NOT NULL"), 1)),
            F.count(F.when(F.expr(f"kind = 'record' AND reason IS NULL AND event_source <> '{KMS_SOURCE}'"), 1)),
            F.count("landed"),
            F.count(F.when(F.expr(pruned), 1)),
        )
        counts = {key: Counts() for key in self.sha256}
        for obj, records, quarantined, skipped, kept, old in totals.collect():
            counts[obj] = Counts(records, kept, quarantined, skipped, pruned=old)
        for obj, *_ in conflicts:
            counts[obj].quarantined += 1
            counts[obj].conflicts += 1
        for c in counts.values():
            c.duplicates = c.records - c.quarantined - c.skipped - c.kept - c.pruned
        return counts


def skipped_sources(parsed: Any) -> Counter[str]:
    """The non-KMS event sources of the good records, counted."""
    rows = parsed.where(f"kind = 'record' AND reason IS NULL AND event_source <> '{KMS_SOURCE}'")
    return Counter({source: n for source, n in rows.groupBy("event_source").count().collect()})


def changed_files(state: IngestState, sha256: dict[str, str]) -> set[str]:
    """The files the ingest state recorded with other bytes than the ones read now."""
    rows = state.db.execute("SELECT object_key, sha256 FROM source_objects WHERE source = ?", (STATE_SOURCE,))
    return {key for key, sha in rows if key in sha256 and sha != sha256[key]}


def land_access_rows(lake: Lake, parsed: Any, tag: str, floor: Any) -> Landed:
    """The access events among the parsed records (few: grants, key policies, network paths), landed by the
    DuckDB ingest's own land_access in the driver."""
    from pyspark.sql import functions as F

    rows = parsed.where("kind = 'record' AND reason IS NULL").where(F.col("event_name").isin(list(EVENT_NAMES)))
    table = rows.select("source_object", "record_index", "event_name", "event_source", "raw", "reason").toArrow()
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("access_in", table)
        con.execute("CREATE TEMP TABLE parsed AS SELECT * FROM access_in")
        return land_access(con, lake, tag, floor)
    finally:
        con.close()


def local_source(root: Path, flt: TrailFilter, state_file: Path) -> Source:
    """The trail files under a local folder, named as the DuckDB ingest names them."""
    originals = Originals(state_file, lambda: make_client("s3"))
    return Source(str(root), list(list_local(root, flt)), lambda key: Path(key).read_bytes(), originals)


def s3_source(trail: S3Trail, flt: TrailFilter, state_file: Path) -> Source:
    """The trail files of an S3 bucket or prefix, listed with boto3 here and read by Spark through s3a://."""
    return Source(trail.uri, list(trail.list_objects(flt)), trail.fetch, Originals(state_file, lambda: trail.client))
