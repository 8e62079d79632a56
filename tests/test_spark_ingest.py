"""`keytrail ingest cloudtrail --engine spark`: on the sample trail folder, plus a damaged gzip, a malformed record
and a conflicting duplicate, the Spark backfill lands what the DuckDB ingest lands (every column of every row), the
same quarantine and access events, and a DuckDB ingest after it adds nothing."""

from __future__ import annotations

import copy
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pytest
from click.testing import CliRunner

from ingest.cloudtrail import spark as spark_ingest
from ingest.cloudtrail.load import ingest_local, lake_run
from ingest.cloudtrail.sources import S3Trail, TrailFilter
from ingest.lake.schema import ACCESS_EVENTS, KMS_EVENTS, QUARANTINE
from ingest.lake.store import Lake
from keytrail.cli import EXIT_QUARANTINED, cli
from tests.conftest import SAMPLE_LOGS, SHARED_DATA
from tests.test_unreadable_files import WITHOUT_ROOT_OVERRIDES, event_ids, quarantine, unreadable
from tests.trailfiles import doc_records, fresh_records, trail_key, trail_text, write_trail

# One xdist worker runs them all (make test: --dist loadgroup): one JVM, one backfill of the sample.
pytestmark = pytest.mark.xdist_group("spark")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample trail folder, and beside it: a file whose gzip stream is damaged, a file with a record the AWS
    documentation publishes as invalid JSON between two good ones, and a file that repeats a sample record exactly
    and gives another sample event id to a different record."""
    src = tmp_path_factory.mktemp("spark-src") / "trails"
    shutil.copytree(SAMPLE_LOGS / "cloudtrail", src)
    damaged = bytearray(write_trail(src / "odd" / "damaged.json.gz", fresh_records(40, seed=3)).read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (src / "odd" / "damaged.json.gz").write_bytes(bytes(damaged))
    lines = [json.loads(x) for x in (SHARED_DATA / "kms_docs_ct_examples.jsonl").read_text().splitlines()]
    invalid = next(d["raw"] for d in lines if not d["valid_json"])
    good = fresh_records(2, seed=5)
    text = '{"Records":[' + json.dumps(good[0]) + "," + invalid + "," + json.dumps(good[1]) + "]}"
    (src / "odd" / "malformed.json.gz").write_bytes(gzip.compress(text.encode()))
    taken = sample_kms_records(src, 2)
    other = copy.deepcopy(taken[1]) | {"sourceIPAddress": "203.0.113.66"}
    write_trail(src / "odd" / "zrepeats.json.gz", [taken[0], other, doc_records()[0]])
    return src


def sample_kms_records(src: Path, n: int) -> list[dict[str, Any]]:
    """The first n KMS records of the sample's first trail file."""
    first = sorted((src / "AWSLogs").rglob("*.json.gz"))[0]
    records = json.loads(gzip.decompress(first.read_bytes()))["Records"]
    return [r for r in records if r["eventSource"] == "kms.amazonaws.com"][:n]


def table(lake: Path, name: str, schema: pa.Schema) -> pa.Table:
    """Every row of a lake table, sorted by every column that identifies it."""
    files = Lake(lake).files(name) if name != "_quarantine" else Lake(lake).list_parquet(lake / "_quarantine")
    rows = Lake(lake).dataset(files, schema).to_table()
    keys = [k for k in ("source_object", "record_index", "event_id", "reason") if k in rows.column_names]
    return rows.sort_by([(k, "ascending") for k in keys])


@pytest.fixture(scope="module")
def lakes(source: Path, spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The source backfilled with Spark through the CLI, and ingested with DuckDB, into two lakes."""
    base = tmp_path_factory.mktemp("spark-lakes")
    result = CliRunner().invoke(
        cli, ["ingest", "cloudtrail", "--engine", "spark", str(source), "--lake", str(base / "s")]
    )
    assert result.exit_code == EXIT_QUARANTINED, result.output
    assert "quarantined" in result.output
    ingest_local(Lake(base / "d"), source, TrailFilter())
    return base / "s", base / "d"


def test_backfill_lands_the_duckdb_ingest_rows(lakes: tuple[Path, Path]) -> None:
    spark_rows, duckdb_rows = (table(lake, "kms_events", KMS_EVENTS) for lake in lakes)
    assert spark_rows.num_rows > 19000
    assert spark_rows.equals(duckdb_rows)
    assert spark_rows.column("raw").null_count == spark_rows.num_rows  # pointers only, no per-record text
    assert len(set(spark_rows.column("event_id").to_pylist())) == spark_rows.num_rows
    folders = {p.parent.name for p in Lake(lakes[0]).files("kms_events")}
    assert folders == {p.parent.name for p in Lake(lakes[1]).files("kms_events")}
    assert all(name.startswith("event_date=20") for name in folders)


def test_backfill_quarantines_what_the_duckdb_ingest_quarantines(lakes: tuple[Path, Path]) -> None:
    spark_q, duckdb_q = (table(lake, "_quarantine", QUARANTINE).drop_columns(["quarantined_at"]) for lake in lakes)
    assert spark_q.equals(duckdb_q)
    by_file = {(Path(r["source_object"]).name, r["record_index"]): r for r in spark_q.to_pylist()}
    assert by_file[("damaged.json.gz", None)]["reason"].startswith("corrupt gzip")
    malformed = by_file[("malformed.json.gz", 1)]
    assert malformed["reason"].startswith("invalid JSON") and '"eventVersion"' in malformed["raw"]
    conflict = by_file[("zrepeats.json.gz", 1)]
    assert conflict["reason"].startswith("conflicting duplicate of event ") and "203.0.113.66" in conflict["raw"]
    assert ("zrepeats.json.gz", 0) not in by_file  # the exact repeat is dropped, not quarantined
    rows = table(lakes[0], "kms_events", KMS_EVENTS)
    landed = rows.filter(pa.compute.ends_with(rows.column("source_object"), "malformed.json.gz"))
    assert landed.column("record_index").to_pylist() == [0, 2]  # the rest of the file landed


def test_backfill_lands_the_access_events(lakes: tuple[Path, Path]) -> None:
    spark_rows, duckdb_rows = (table(lake, "access_events", ACCESS_EVENTS) for lake in lakes)
    assert spark_rows.num_rows > 0 and spark_rows.equals(duckdb_rows)


def test_duckdb_ingest_after_the_backfill_adds_nothing(lakes: tuple[Path, Path], source: Path) -> None:
    before = table(lakes[0], "kms_events", KMS_EVENTS)
    again = ingest_local(Lake(lakes[0]), source, TrailFilter())
    assert again.files_new == 0
    # read again every file that had a quarantined record: the DuckDB ingest drops what Spark landed by event id
    retried = ingest_local(Lake(lakes[0]), source, TrailFilter(), retry_quarantined=True)
    assert retried.files_new == 3 and retried.totals["kept"] == 0
    assert table(lakes[0], "kms_events", KMS_EVENTS).equals(before)


class Stop(Exception):
    """Where a test stops a backfill."""


def test_backfill_stopped_before_its_state_reruns_to_the_same_lake(
    source: Path, lakes: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped after its lake files and quarantine, before the ingest state (where kill -9 at that point leaves the
    lake too: tests/test_kill_rerun.py kills the DuckDB ingest there), then rerun: nothing twice, nothing lost."""

    def stop(point: str) -> None:
        if point == "before-state":
            raise Stop(point)

    monkeypatch.setattr(spark_ingest, "crash_point", stop)
    args = ["ingest", "cloudtrail", "--engine", "spark", str(source), "--lake", str(tmp_path / "lake")]
    assert isinstance(CliRunner().invoke(cli, args).exception, Stop)
    assert Lake(tmp_path / "lake").files("kms_events")  # the stopped run had written its files
    monkeypatch.undo()
    assert CliRunner().invoke(cli, args).exit_code == EXIT_QUARANTINED
    assert table(tmp_path / "lake", "kms_events", KMS_EVENTS).equals(table(lakes[1], "kms_events", KMS_EVENTS))
    quarantine = table(tmp_path / "lake", "_quarantine", QUARANTINE).drop_columns(["quarantined_at"])
    assert quarantine.equals(table(lakes[1], "_quarantine", QUARANTINE).drop_columns(["quarantined_at"]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lookup-events", "--region", "us-east-1", "--lake", "LAKE"], "--engine spark reads trail files: give a"),
        (["SRC", "--lake", "s3://lake-bucket/lake"], "--engine spark writes a local lake folder, not s3://"),
    ],
)
def test_backfill_refuses_what_it_cannot_do(args: list[str], message: str, source: Path, tmp_path: Path) -> None:
    args = [{"SRC": str(source), "LAKE": str(tmp_path)}.get(a, a) for a in args]
    result = CliRunner().invoke(cli, ["ingest", "cloudtrail", "--engine", "spark", *args])
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_file_spark_cannot_read_is_set_apart_and_retried(tmp_path: Path) -> None:
    """A trail file the backfill may not read (mode 000; the run drops root's overrides, so it is refused as any
    user is) does not end the backfill: the rest lands, the file is quarantined with the OS error and what to
    grant, and it is not recorded as read, so the next run (here the DuckDB ingest) lands it."""
    source, lake = tmp_path / "trail", tmp_path / "lake"
    records = [fresh_records(5, seed=n) for n in range(3)]
    paths = [write_trail(source / f"f{n}.json.gz", recs) for n, recs in enumerate(records)]
    paths[1].chmod(0)
    command = [sys.executable, "-m", "keytrail", "ingest", "cloudtrail", "--engine", "spark", str(source)]
    prefix = WITHOUT_ROOT_OVERRIDES if os.geteuid() == 0 else []
    env = os.environ | {"PYSPARK_SUBMIT_ARGS": "--conf spark.ui.enabled=false pyspark-shell"}
    run = subprocess.run(
        [*prefix, *command, "--lake", str(lake)], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert run.returncode == EXIT_QUARANTINED, run.stdout + run.stderr
    assert "1 files could not be read (the quarantine says why and what to grant)" in run.stdout
    assert "Traceback" not in run.stderr and "FutureWarning" not in run.stderr  # (pyspark's pandas 3 warning)
    assert event_ids(lake) == {r["eventID"] for recs in (records[0], records[2]) for r in recs}
    ((where, reason),) = quarantine(lake)
    assert where == str(paths[1])
    assert "cannot read the file: Permission denied (PermissionError, errno 13)" in reason
    assert unreadable(lake) == [(str(paths[1]), 1)]

    paths[1].chmod(0o644)
    again = ingest_local(Lake(lake), source, TrailFilter())
    assert again.files_new == 1 and again.totals["kept"] == 5
    assert event_ids(lake) == {r["eventID"] for recs in records for r in recs}
    assert unreadable(lake) == []


def test_the_driver_says_why_spark_could_not_read_s3_objects(moto_endpoint: str, tmp_path: Path) -> None:
    """What s3a could not read (the tests stay offline, without s3a) the driver reads with boto3 to say why: an
    object a lifecycle rule archived gets S3's refusal and the fix; one deleted since the listing is gone."""
    s3: Any = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="trail")
    keys = [trail_key("111122223333", "us-east-1", "2026-11-20", n) for n in range(3)]
    for n, key in enumerate(keys):
        storage = {"StorageClass": "GLACIER"} if n == 1 else {}
        s3.put_object(Bucket="trail", Key=key, Body=gzip.compress(trail_text(fresh_records(2)).encode()), **storage)
    lake = Lake(tmp_path / "lake")
    source = spark_ingest.s3_source(S3Trail(s3, "s3://trail"), TrailFilter(), lake.state_dir / "ingest.sqlite")
    s3.delete_object(Bucket="trail", Key=keys[2])
    with lake_run(lake, "ingest cloudtrail --engine spark", source.name) as (state, run_id):
        run = spark_ingest.Run(lake, source, None, run_id, state)
        run.sha256 = {f"s3://trail/{keys[0]}": "read by Spark"}
        why, gone = run.unread(source.objects)
    assert list(why) == [f"s3://trail/{keys[1]}"]
    assert (
        "is archived (InvalidObjectState on GetObject): restore it from its Glacier storage class"
        in why[f"s3://trail/{keys[1]}"]
    )
    assert gone == [f"s3://trail/{keys[2]}"]
