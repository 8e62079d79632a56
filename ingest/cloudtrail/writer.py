"""Trail records → kms_events files: split, parse, validate, deduplicate and write.

The hot path never copies a record in Python: each trail file is read, CRC-checked and inflated once, its records
are cut out of the content as Arrow views into it (cut.py), and DuckDB parses and types them where they lie
(sql/kms_rows.sql) on all cores; a second connection writes each batch's Parquet files, one per event date, in a
thread of its own while the next batch is parsed (load.py records a batch in the state once they are in). Files
the cut cannot be trusted with go to the exact reader in ingest/cloudtrail/salvage.py, whose good records rejoin
the same SQL.

A KMS row keeps its record's text (`raw`) only with keep_raw; otherwise its pointer (`source_object`,
`record_index`) leads back to the original (ingest/cloudtrail/originals.py). Between parsing and landing, the
`parsed` table of a batch holds every record of the batch, typed, with `event_source`, `reason` and `raw`:
`raw` is there for KMS records with keep_raw, for every record to quarantine, for LookupEvents records, for
the records of TEXT_SOURCES, which are no KMS events but may open or close a path to the keys, and for the KMS
records that do (access.EVENT_NAMES: grants, key policies, key stores), which land_access reads; kms_events
itself gets `raw` only with keep_raw.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import pyarrow as pa

from ingest.cloudtrail.access import EVENT_NAMES, access_rows, land_access
from ingest.cloudtrail.cut import RECORDS_CUT, cut_records
from ingest.cloudtrail.originals import Originals, OriginalUnavailable, recorded_identity
from ingest.cloudtrail.salvage import salvage
from ingest.faults import crash_point
from ingest.lake.schema import KMS_EVENTS
from ingest.lake.store import Lake, quarantine_rows
from ingest.raw import inspect_file

SQL_DIR = Path(__file__).parent / "sql"
# The quarantine reason of a record whose event id is taken by a different record: CONFLICT + the id.
CONFLICT = "conflicting duplicate of event "
KMS_SOURCE = "kms.amazonaws.com"
# Non-KMS event sources whose records keep their text in `parsed` for a step that reads them (they are rare).
TEXT_SOURCES = ("ec2.amazonaws.com", "cloudhsm.amazonaws.com")


@functools.cache
def load_sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text()


def parsed_sql(keep_raw: bool) -> str:
    """The rows of a batch's `parsed` table from the view `records`: `raw` only where it is kept (see the
    module's doc)."""
    text_sources = ", ".join(f"'{s}'" for s in TEXT_SOURCES)
    access = ", ".join(f"'{name}'" for name in EVENT_NAMES)
    needed = f"reason IS NOT NULL OR event_source IN ({text_sources}) OR event_name IN ({access})"
    kept = "true" if keep_raw else needed
    return f"SELECT * REPLACE (CASE WHEN {kept} THEN raw END AS raw) FROM ({load_sql('kms_rows')})"


def parse_fast(con: duckdb.DuckDBPyConnection, cut: Mapping[str, pa.RecordBatch | None], keep_raw: bool) -> set[str]:
    """Parse files' records, cut out ahead (cut.py `cut_records`: None for a file the cut cannot be trusted with),
    into a new table `parsed`; returns the files whose records need the exact parser: those not cut, and those
    with a record that is not one JSON object (a wrong cut)."""
    batches = [batch for batch in cut.values() if batch is not None]
    parse_records_into(con, pa.Table.from_batches(batches, RECORDS_CUT), keep_raw, replace=True)
    exact = {row[0] for row in con.execute("SELECT DISTINCT source_object FROM parsed WHERE exact_parse").fetchall()}
    if exact:
        con.execute("DELETE FROM parsed WHERE list_contains($exact, source_object)", {"exact": sorted(exact)})
    return exact | {source_object for source_object, batch in cut.items() if batch is None}


def parse_records_into(
    con: duckdb.DuckDBPyConnection, records: pa.Table, keep_raw: bool, replace: bool = False
) -> None:
    """Parse records (a RECORDS or RECORDS_CUT table) into `parsed`, or into a new `parsed` with `replace`. Records
    cut out of their files have no `parsable` yet: a text with what looks like a trailing comma is not parsed here
    (its file goes to the exact reader)."""
    con.register("incoming", records)
    check = f"NOT regexp_matches(rec, '{TRAILING_COMMA.pattern}') AS parsable"
    columns = "*" if "parsable" in records.column_names else f"*, {check}"
    con.execute(f"CREATE OR REPLACE TEMP VIEW records AS SELECT {columns} FROM incoming")
    into = "CREATE OR REPLACE TABLE parsed AS" if replace else "INSERT INTO parsed"
    con.execute(f"{into} {parsed_sql(keep_raw)}")
    con.unregister("incoming")


# Records cut out of their files one by one: what `records_table` builds and the parse SQL reads.
RECORDS = pa.schema(
    [("source_object", pa.string()), ("record_index", pa.int64()), ("rec", pa.string()), ("parsable", pa.bool_())]
)
# A comma before a closing bracket: DuckDB's JSON reader forgives it, other tools would choke on such a raw record.
TRAILING_COMMA = re.compile(r",\s*[}\]]")


def records_table(source_object: str, records: Iterable[tuple[int, str]]) -> pa.Table:
    """A RECORDS table of one source's records, given as (index, JSON text)."""
    pairs = list(records)
    return pa.table(
        {
            "source_object": [source_object] * len(pairs),
            "record_index": [i for i, _ in pairs],
            "rec": [text for _, text in pairs],
            "parsable": [parsable(text) for _, text in pairs],
        },
        schema=RECORDS,
    )


def parsable(text: str) -> bool:
    """Whether DuckDB may parse a record's text: it has no trailing comma, or what looks like one is inside a
    string (a strict parser, Python's, takes the text)."""
    if TRAILING_COMMA.search(text) is None:
        return True
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


# A record and where its text is: (source_object, record_index, raw or None).
Copy = tuple[str, int, str | None]


@dataclass
class Counts:
    """What happened to the records of one source object."""

    records: int = 0
    kept: int = 0
    quarantined: int = 0
    skipped: int = 0
    duplicates: int = 0
    conflicts: int = 0  # records quarantined because their event id belongs to another record
    pruned: int = 0  # events older than the lake's retention floor (keytrail prune): not landed again

    def as_dict(self) -> dict[str, int]:
        return {"records": self.records, "kept": self.kept, "quarantined": self.quarantined}


def completed() -> Future[None]:
    """A future already done: a batch that writes no files."""
    future: Future[None] = Future()
    future.set_result(None)
    return future


@dataclass
class BatchResult:
    """Per-object counts of one batch, the non-KMS event sources it skipped, and the SHA-256 of each file read."""

    counts: dict[str, Counts] = field(default_factory=dict)
    skipped_sources: Counter[str] = field(default_factory=Counter)
    access_events: int = 0  # records that open or close a path to the keys, landed in access_events
    sha256: dict[str, str] = field(default_factory=dict)
    # Done when the batch's kms_events files are in the lake (KmsLakeWriter writes them while the next batch is
    # parsed): the batch may be recorded in the ingest state only then. `result()` raises what the write raised.
    written: Future[None] = field(default_factory=completed)


class KmsLakeWriter:
    """Writes batches of trail records into the lake's kms_events table, never twice the same eventID."""

    def __init__(
        self,
        lake: Lake,
        run_id: str,
        memory_limit: str = "600MB",
        threads: int | None = None,
        floor: dt.date | None = None,
        keep_raw: bool = False,
        originals: Originals | None = None,
    ) -> None:
        """`floor`: the lake's retention floor; older events are what `keytrail prune` removed, and stay out.
        `keep_raw`: keep each KMS record's text in `raw`. `originals`: where the text of a lake row without
        `raw` is fetched when a record of the batch repeats its event id."""
        self.lake = lake
        self.run_id = run_id
        self.floor = floor
        self.keep_raw = keep_raw
        self.originals = originals
        self.local: dict[str, Path] = {}  # the batch's source objects as local files
        self.sha256: dict[str, str] = {}  # and the SHA-256 of each
        # The SHA-256 of the files of the batch last handed to the copier: in the lake once written, and not in the
        # ingest state until the next batch is parsed (load.py BatchRecorder records the batches before it).
        self.handed: dict[str, str] = {}
        self.unchanged: dict[str, bool] = {}  # whether each is the version the state recorded (`_unchanged`)
        self.texts: dict[str, dict[int, str]] = {}  # records of batch files read again for their exact text
        self.batch_no = 0
        self.loaded_days: set[dt.date] = set()
        self.con = duckdb.connect()
        spill = lake.work_dir / "_staging" / f"{run_id}-spill"
        spill.parent.mkdir(parents=True, exist_ok=True)
        for setting in (
            "SET TimeZone = 'UTC'",
            f"SET memory_limit = '{memory_limit}'",
            f"SET temp_directory = '{spill}'",
            "SET preserve_insertion_order = false",
        ):
            self.con.execute(setting)
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self.con.execute("CREATE TABLE seen (event_id VARCHAR, event_date DATE)")
        # Writes each batch's kms_events files on its own connection, while `con` parses the next batch.
        self.copier = self.con.cursor()
        self.copier.execute("SET TimeZone = 'UTC'")
        self.writing = ThreadPoolExecutor(max_workers=1)
        self.last_write: Future[None] = completed()

    def close(self) -> None:
        self.writing.shutdown(wait=True)
        self.copier.close()
        self.con.close()

    def ingest_files(self, files: list[tuple[Path, str]], read: list[TrailFile] | None = None) -> BatchResult:
        """Ingest local trail files, given as (path to read, source object name); `read`: their
        `read_trail_files`, when a caller made it ahead."""
        read = read_trail_files(files) if read is None else read
        self.local, self.texts, self.unchanged = {s: p for p, s in files}, {}, {}
        self.sha256 = {s: file.sha256 for (_, s), file in zip(files, read, strict=True)}
        cut = {s: file.records for (_, s), file in zip(files, read, strict=True)}
        exact = parse_fast(self.con, cut, self.keep_raw)
        problems = self._parse_exact(sorted(exact))
        result = self._land(problems, [s for _, s in files], self.keep_raw)
        result.sha256 = self.sha256
        return result

    def ingest_records(self, records: pa.Table) -> BatchResult:
        """Ingest records already cut out of their files: a table of (source_object, record_index, rec). They have
        no file to fetch again (LookupEvents), so their text is always kept."""
        parse_records_into(self.con, records, keep_raw=True, replace=True)
        return self._land([], records.column("source_object").unique().to_pylist(), keep_raw=True)

    def _parse_exact(self, objects: list[str]) -> list[tuple[str, int | None, str, str | None]]:
        """Read files record by record with the forgiving parser; returns their quarantine entries."""
        problems: list[tuple[str, int | None, str, str | None]] = []
        for source_object in objects:
            result = salvage(self.local[source_object].read_bytes())
            problems += [(source_object, i, reason, raw) for i, reason, raw in result.problems]
            parse_records_into(self.con, records_table(source_object, result.records), self.keep_raw)
        return problems

    def _land(
        self, problems: list[tuple[str, int | None, str, str | None]], objects: Iterable[str], keep_raw: bool
    ) -> BatchResult:
        """Quarantine the bad records of `parsed`, drop repeated records, write the rest; count per object."""
        self._load_seen_days()
        # The ids already in the lake that this batch repeats: `seen` (every id of the run's days) is only
        # scanned, the hash table is built on the batch's ids, so the cost does not grow with the lake.
        self.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE candidates AS
                SELECT source_object, record_index, event_id, event_time::DATE AS event_date,
                       row_number() OVER (PARTITION BY event_id ORDER BY source_object, record_index) AS nth
                FROM parsed WHERE reason IS NULL AND event_source = '{KMS_SOURCE}'"""
        )
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE known AS SELECT * FROM seen SEMI JOIN candidates USING (event_id)"
        )
        self.con.execute(
            """CREATE OR REPLACE TABLE fresh AS
               SELECT source_object, record_index, event_id, event_date FROM candidates ANTI JOIN known USING (event_id)
               WHERE nth = 1 AND ($floor::DATE IS NULL OR event_date >= $floor)""",
            {"floor": self.floor},
        )
        self._quarantine_conflicts()
        self.batch_no += 1
        access = land_access(self.con, self.lake, f"{self.run_id}-{self.batch_no}", self.floor)  # docs/access.md
        bad = self.con.execute(
            "SELECT source_object, record_index, reason, raw FROM parsed WHERE reason IS NOT NULL"
        ).fetchall()
        self.lake.write_quarantine(quarantine_rows("kms_events", iter(problems + bad)), self.run_id)
        self.con.execute("INSERT INTO seen SELECT event_id, event_date FROM fresh")
        result = self._count(objects, problems)
        access.count_into(result)
        result.written = self._write_fresh(keep_raw)
        return result

    def _quarantine_conflicts(self) -> None:
        """A record whose event id is already taken (in the lake, or by an earlier record of the batch) is dropped
        only when it is the same event: equal as JSON, whatever the key order or spacing (CloudTrail can deliver
        a record twice), or the very record the lake row points to (a file read again). A different record under
        a taken id is evidence too: it goes to the quarantine with its original text. Only the few colliding ids
        are compared, so the hot path stays a join on ids."""
        repeats = self.con.execute(
            """WITH repeats AS MATERIALIZED (
                   SELECT source_object, record_index, event_id, event_id IN (SELECT event_id FROM known) AS in_lake
                   FROM candidates WHERE nth > 1 OR event_id IN (SELECT event_id FROM known)
               )
               SELECT r.source_object, r.record_index, r.event_id, p.raw, r.in_lake
               FROM repeats r JOIN parsed p USING (source_object, record_index)"""
        ).fetchall()
        if not repeats:
            return
        taken = self._lake_copies({r[2] for r in repeats if r[4]}) | self._batch_firsts({r[2] for r in repeats})
        conflicts = [(obj, index, raw) for obj, index, event_id, raw, in_lake in repeats
                     if not self._same((obj, index, raw), taken.get((event_id, in_lake), []), in_lake)]  # fmt: skip
        if conflicts:
            self.con.register("conflicts", pa.table({"source_object": [c[0] for c in conflicts],
                                                     "record_index": [c[1] for c in conflicts],
                                                     "text": [self._text(c) for c in conflicts]}))  # fmt: skip
            self.con.execute(
                f"""UPDATE parsed SET reason = '{CONFLICT}' || event_id, raw = c.text
                   FROM conflicts c WHERE parsed.source_object = c.source_object
                   AND parsed.record_index = c.record_index"""
            )
            self.con.unregister("conflicts")

    def _same(self, record: Copy, copies: list[Copy], in_lake: bool) -> bool:
        """True when a record is the same event as one of the copies that hold its id (the lake's or the batch's)."""
        pointed_at = any(copy[:2] == record[:2] and copy[2] is None for copy in copies)
        if in_lake and pointed_at and self._unchanged(record[0]):
            return True  # the lake row points to this very record: its file, unchanged, was read again
        mine = same_event(self._text(record))
        texts = map(self._lake_text, copies) if in_lake else map(self._text, copies)
        return any(mine == same_event(text) for text in texts if text is not None)

    def _text(self, record: Copy) -> str:
        """A batch record's text: `raw` where `parsed` kept it, else read again, exactly, from its local file."""
        obj, index, raw = record
        return raw if raw is not None else self._file_records(obj)[index]

    def _file_records(self, obj: str) -> dict[int, str]:
        """The records of a batch file by index, read again exactly (once per batch)."""
        if obj not in self.texts:
            self.texts[obj] = dict(salvage(self.local[obj].read_bytes()).records)
        return self.texts[obj]

    def _lake_text(self, copy: Copy) -> str | None:
        """A lake row's text: its `raw`; else its original, from the batch when its file is being read again (a
        killed run's), or fetched through its pointer and checked against the file's identity: the SHA-256 this run
        read for a file of the batch before (`handed`), else the state's (None when the original is gone or
        changed: the record under the same id is then held, never dropped)."""
        obj, index, raw = copy
        if raw is not None:
            return raw
        if obj in self.local and self._unchanged(obj):
            return self._file_records(obj).get(index)
        try:
            return self.originals.record(obj, index, self.handed.get(obj)) if self.originals else None
        except OriginalUnavailable:
            return None

    def _unchanged(self, obj: str) -> bool:
        """True when a batch file is the version the ingest state recorded, or one the state never recorded (a
        killed run's file read again): then the lake rows that point into it were read from these very bytes."""
        if obj not in self.unchanged:
            identity = recorded_identity(self.originals.state_file, obj) if self.originals else None
            self.unchanged[obj] = identity is None or identity.sha256 == self.sha256.get(obj)
        return self.unchanged[obj]

    def _batch_firsts(self, ids: set[str]) -> dict[tuple[str, bool], list[Copy]]:
        """For each id, the batch's first record with it (what a later record of the batch is compared to)."""
        rows = self.con.execute(
            """SELECT c.event_id, c.source_object, c.record_index, p.raw
               FROM candidates c JOIN parsed p USING (source_object, record_index)
               WHERE c.nth = 1 AND list_contains($ids, c.event_id)""",
            {"ids": sorted(ids)},
        ).fetchall()
        return {(event_id, False): [(obj, index, raw)] for event_id, obj, index, raw in rows}

    def _lake_copies(self, ids: set[str]) -> dict[tuple[str, bool], list[Copy]]:
        """The lake's rows with these ids as (source_object, record_index, raw), read from the day partitions
        `seen` has them in (once the batches before are written: `seen` has their ids already)."""
        self.last_write.result()
        days = self.con.execute(
            "SELECT DISTINCT event_date FROM known WHERE list_contains($ids, event_id)", {"ids": sorted(ids)}
        ).fetchall()
        files = [f for (day,) in days for f in self.lake.files("kms_events", day)]
        if not files:
            return {}
        names = ["event_id", "source_object", "record_index", "raw"]
        self.con.register("lake_copies", self.lake.dataset(files, pa.schema([KMS_EVENTS.field(n) for n in names])))
        try:
            rows = self.con.execute(
                f"SELECT {', '.join(names)} FROM lake_copies WHERE list_contains($ids, event_id)",
                {"ids": sorted(ids)},
            ).fetchall()
        finally:
            self.con.unregister("lake_copies")
        copies: dict[tuple[str, bool], list[Copy]] = {}
        for event_id, obj, index, raw in rows:
            copies.setdefault((event_id, True), []).append((obj, index, raw))
        return copies

    def _load_seen_days(self) -> None:
        """Load the event ids already in the lake for each event date this batch touches, once per run."""
        days = self.con.execute(
            f"SELECT DISTINCT event_time::DATE FROM parsed WHERE reason IS NULL AND event_source = '{KMS_SOURCE}'"
        ).fetchall()
        for (day,) in days:
            if day in self.loaded_days:
                continue
            self.loaded_days.add(day)
            files = self.lake.files("kms_events", day)
            if files and self.lake.remote:
                self.con.register("lake_day", self.lake.dataset(files, pa.schema([KMS_EVENTS.field("event_id")])))
                self.con.execute("INSERT INTO seen SELECT event_id, $day FROM lake_day", {"day": day})
                self.con.unregister("lake_day")
            elif files:
                paths = [str(p) for p in files]
                self.con.execute(
                    "INSERT INTO seen SELECT event_id, $day FROM read_parquet($files)", {"files": paths, "day": day}
                )

    def _write_fresh(self, keep_raw: bool) -> Future[None]:
        """Hand the batch's rows to the copier: `parsed` and `fresh` (main-schema tables, which the copier's
        connection sees) are renamed for it to write and drop, so the next batch is parsed meanwhile. Returns the
        write's future, done once the files are in the lake: the batches' writes run in order, and none runs after
        one that failed."""
        batch = f"{self.run_id}-{self.batch_no}"
        days = [day for (day,) in self.con.execute("SELECT DISTINCT event_date FROM fresh ORDER BY ALL").fetchall()]
        self.con.execute(f'ALTER TABLE parsed RENAME TO "parsed-{batch}"')
        self.con.execute(f'ALTER TABLE fresh RENAME TO "fresh-{batch}"')
        self.last_write = self.writing.submit(self._copy, batch, days, keep_raw, self.last_write)
        self.handed = dict(self.sha256)
        return self.last_write

    def _copy(self, batch: str, days: list[dt.date], keep_raw: bool, before: Future[None]) -> None:
        """Write a batch's fresh rows into one file per event date: DuckDB writes into staging, then each file is
        renamed in; `raw` only with keep_raw (`parsed` also holds the texts land_access reads). One COPY per day,
        each reading its day's time range, costs half of DuckDB's PARTITION_BY, which buffers and hashes every
        row. Raises (writing nothing) when the batch before failed to write."""
        before.result()
        staging = self.lake.work_dir / "_staging" / batch
        raw = "raw" if keep_raw else "NULL::VARCHAR AS raw"
        columns = ", ".join(raw if name == "raw" else name for name in KMS_EVENTS.names)
        rows = f'"parsed-{batch}" SEMI JOIN "fresh-{batch}" USING (source_object, record_index)'
        for day in days:
            target = staging / f"event_date={day.isoformat()}" / "part-0.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            self.copier.execute(
                f"""COPY (SELECT {columns} FROM {rows}
                          WHERE event_time >= $day::TIMESTAMPTZ AND event_time < $day::TIMESTAMPTZ + INTERVAL 1 DAY)
                    TO '{target}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE 20480)""",
                {"day": day},
            )
        self.copier.execute(f'DROP TABLE "parsed-{batch}"; DROP TABLE "fresh-{batch}"')
        if days:
            publish(staging, self.lake, "kms_events", batch)
        crash_point("written")

    def _count(self, objects: Iterable[str], problems: list[tuple[str, int | None, str, str | None]]) -> BatchResult:
        result = BatchResult(counts={s: Counts() for s in objects})
        rows = self.con.execute(
            f"""SELECT p.source_object,
                       count(*),
                       count(*) FILTER (p.reason IS NOT NULL),
                       count(*) FILTER (p.reason IS NULL AND p.event_source <> '{KMS_SOURCE}'),
                       count(f.event_id),
                       count(*) FILTER (starts_with(p.reason, '{CONFLICT}')),
                       count(*) FILTER (p.reason IS NULL AND p.event_source = '{KMS_SOURCE}'
                                        AND p.event_time::DATE < $floor::DATE)
                FROM parsed p
                LEFT JOIN fresh f USING (source_object, record_index)
                GROUP BY p.source_object""",
            {"floor": self.floor},
        ).fetchall()
        for source_object, records, quarantined, skipped, kept, conflicts, pruned in rows:
            c = result.counts.setdefault(source_object, Counts())
            c.records, c.quarantined, c.skipped, c.kept, c.conflicts = records, quarantined, skipped, kept, conflicts
            c.pruned = pruned
            c.duplicates = records - quarantined - skipped - kept - pruned
        for source_object, index, _, _ in problems:
            c = result.counts.setdefault(source_object, Counts())
            c.quarantined += 1
            c.records += index is not None
        skipped = self.con.execute(
            f"""SELECT coalesce(event_source, '?'), count(*) FROM parsed
                WHERE reason IS NULL AND event_source <> '{KMS_SOURCE}' GROUP BY ALL"""
        ).fetchall()
        result.skipped_sources.update(dict(skipped))
        return result


class TrailFile(NamedTuple):
    """What one read of a trail file gives the writer: its SHA-256 (its identity in the ingest state), and its
    records cut out for the fast parse (None: the exact reader reads it)."""

    sha256: str
    records: pa.RecordBatch | None


def read_trail_files(files: list[tuple[Path, str]]) -> list[TrailFile]:
    """Each file, given as (path, source object), read once: SHA-256, content inflated and CRC-checked
    (ingest/raw.py inspect_file; DuckDB's gzip reader does not check the CRC, so a damaged file would land altered
    bytes as records), and records cut out of the content (cut.py), in threads (zlib and hashlib release the GIL)
    ahead of the writer, which parses the records where they lie: nothing is inflated or copied twice."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(read_trail_file, files))


def read_trail_file(file: tuple[Path, str]) -> TrailFile:
    path, source_object = file
    seen = inspect_file(path)
    return TrailFile(seen.sha256, cut_records(source_object, seen.content))


def publish(staging: Path, lake: Lake, table: str, tag: str) -> list[Path]:
    """Move files DuckDB wrote under `staging/event_date=…/` into the table, each by an atomic rename (or
    one upload per file for an S3 lake)."""
    moved: list[Path] = []
    for path in sorted(staging.rglob("*.parquet")):
        target = lake.table_dir(table) / path.parent.name / f"part-{tag}-{path.stem.removeprefix('part-')}.parquet"
        crash_point("publish")
        lake.put_file(path, target)
        moved.append(target)
    shutil.rmtree(staging, ignore_errors=True)
    return moved


def summary_counts(results: Iterable[BatchResult]) -> dict[str, Any]:
    """Totals over batches, for the run summary."""
    totals: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    for result in results:
        for c in result.counts.values():
            totals.update(
                {
                    "records": c.records,
                    "kept": c.kept,
                    "quarantined": c.quarantined,
                    "skipped": c.skipped,
                    "duplicates": c.duplicates,
                    "conflicts": c.conflicts,
                    "pruned": c.pruned,
                }
            )
        sources.update(result.skipped_sources)
        totals["access_events"] += result.access_events
    return {**totals, "skipped_sources": dict(sources)}


def same_event(raw: str) -> str:
    """A record's content in a form equal for equal JSON (keys sorted, no spacing): two copies of one event
    compare equal, two different events under one id do not."""
    try:
        return json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return raw


def parse_records(texts: list[str], source_object: str = "<memory>") -> pa.Table:
    """Parse CloudTrail records (JSON texts) into kms_events columns plus `event_source` and `reason`.

    Pure and in memory: the same SQL the ingest runs, for tests, notebooks and debugging.
    """
    with _parsed(texts, source_object) as con:
        return con.sql("SELECT * FROM parsed").to_arrow_table()


def parse_access_records(texts: list[str], source_object: str = "<memory>") -> pa.Table:
    """The access_events columns (and `reason`) of CloudTrail records given as JSON texts; the other records give
    no row. Pure and in memory: the same SQL the ingest runs, for tests, notebooks and debugging."""
    with _parsed(texts, source_object) as con:
        return access_rows(con)


@contextlib.contextmanager
def _parsed(texts: list[str], source_object: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory connection whose `parsed` table holds the texts parsed as the ingest parses them."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        parse_records_into(con, records_table(source_object, enumerate(texts)), keep_raw=True, replace=True)
        yield con
    finally:
        con.close()
