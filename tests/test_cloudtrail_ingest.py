"""`keytrail ingest cloudtrail` over local trail files: bad input, reruns, duplicates, the lock."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ingest.lake.schema import KMS_EVENTS
from ingest.lake.state import RunLock
from ingest.lake.store import Lake
from keytrail.cli import cli
from tests.conftest import SAMPLE_LOGS, SHARED_DATA
from tests.trailfiles import fresh_records, trail_text, write_trail


def ingest(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["ingest", "cloudtrail", *args])
    return result.exit_code, result.output


def lake_ids(lake: Path) -> list[str]:
    files = Lake(lake).files("kms_events")
    if not files:
        return []
    rel = duckdb.sql("SELECT event_id FROM read_parquet($f)", params={"f": [str(f) for f in files]})
    return sorted(r[0] for r in rel.fetchall())


def quarantine(lake: Path) -> list[dict]:
    files = sorted((lake / "_quarantine").glob("*.parquet"))
    if not files:
        return []
    rel = duckdb.sql(
        "SELECT * FROM read_parquet($f) ORDER BY source_object, record_index", params={"f": [str(f) for f in files]}
    )
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def test_folder_in_any_layout_lands_partitioned_by_event_date(tmp_path: Path, lake_dir: Path) -> None:
    recs = fresh_records(30, day="2026-11-20") + fresh_records(20, seed=8, day="2026-11-21")
    write_trail(tmp_path / "src/a/b/one.json.gz", recs[:25])
    write_trail(tmp_path / "src/two.json", recs[25:], gz=False)
    code, out = ingest(str(tmp_path / "src"), "--lake", str(lake_dir))
    assert code == 0, out
    assert "Ingested 2 new of 2 files" in out and "50 KMS events kept" in out
    assert sorted(p.name for p in (lake_dir / "kms_events").iterdir()) == [
        "event_date=2026-11-20",
        "event_date=2026-11-21",
    ]
    assert lake_ids(lake_dir) == sorted(r["eventID"] for r in recs)
    schema = pq.read_schema(Lake(lake_dir).files("kms_events")[0])
    assert schema.names == KMS_EVENTS.names
    assert all(schema.field(f.name).type == f.type for f in KMS_EVENTS)


def test_rerun_ingests_nothing_new(tmp_path: Path, lake_dir: Path) -> None:
    write_trail(tmp_path / "src/one.json.gz", fresh_records(10))
    assert ingest(str(tmp_path / "src"), "--lake", str(lake_dir))[0] == 0
    code, out = ingest(str(tmp_path / "src"), "--lake", str(lake_dir))
    assert code == 0 and "Ingested 0 new of 1 files" in out
    write_trail(tmp_path / "src/two.json.gz", fresh_records(5, seed=99))
    code, out = ingest(str(tmp_path / "src"), "--lake", str(lake_dir))
    assert "Ingested 1 new of 2 files" in out and "5 KMS events kept" in out
    assert len(lake_ids(lake_dir)) == 15


def test_duplicate_event_ids_never_appear_twice(tmp_path: Path, lake_dir: Path) -> None:
    recs = fresh_records(12)
    write_trail(tmp_path / "src/one.json.gz", recs[:8])
    write_trail(tmp_path / "src/two.json.gz", recs[4:])  # CloudTrail delivered 4 records twice
    code, out = ingest(str(tmp_path / "src"), "--lake", str(lake_dir))
    assert "4 duplicate records dropped" in out
    write_trail(tmp_path / "later/three.json.gz", recs[10:] + fresh_records(3, seed=5))
    ingest(str(tmp_path / "later"), "--lake", str(lake_dir))  # and once more in a later run
    ids = lake_ids(lake_dir)
    assert len(ids) == len(set(ids)) == 15


def test_bad_files_are_quarantined_and_good_records_land(tmp_path: Path, lake_dir: Path) -> None:
    good = fresh_records(6)
    whole = gzip.compress(trail_text(good).encode())
    (tmp_path / "src").mkdir()
    (tmp_path / "src/truncated.json.gz").write_bytes(whole[: len(whole) * 2 // 3])
    (tmp_path / "src/empty.json.gz").write_bytes(gzip.compress(b""))
    odd = fresh_records(3, seed=3)
    odd[1]["recipientAccountId"] = "12345"
    del odd[2]["eventID"]
    mixed = [*odd, {"eventVersion": "1.08", "eventSource": "ec2.amazonaws.com", "eventName": "RunInstances"}]
    write_trail(tmp_path / "src/mixed.json.gz", mixed)
    write_trail(tmp_path / "src/fine.json.gz", fresh_records(4, seed=4))
    code, out = ingest(str(tmp_path / "src"), "--lake", str(lake_dir))
    assert code == 3, out
    assert "1 non-KMS records skipped (1 ec2.amazonaws.com)" in out
    reasons = {(Path(q["source_object"]).name, q["record_index"]): q["reason"] for q in quarantine(lake_dir)}
    assert reasons[("mixed.json.gz", 1)] == 'recipientAccountId "12345" is not a 12-digit AWS account id'
    assert reasons[("mixed.json.gz", 2)] == "missing required field eventID"
    assert reasons[("empty.json.gz", None)] == "empty file: not a CloudTrail log file"
    assert any(k[0] == "truncated.json.gz" and "truncated gzip" in v for k, v in reasons.items())
    landed = set(lake_ids(lake_dir))
    assert odd[0]["eventID"] in landed
    truncated_landed = [r["eventID"] for r in good if r["eventID"] in landed]
    assert 0 < len(truncated_landed) < 6  # what came before the cut landed


def test_invalid_json_record_does_not_sink_its_file(tmp_path: Path, lake_dir: Path) -> None:
    lines = [json.loads(x) for x in (SHARED_DATA / "kms_docs_ct_examples.jsonl").read_text().splitlines()]
    invalid = next(d["raw"] for d in lines if not d["valid_json"])
    recs = fresh_records(2)
    text = '{"Records":[' + json.dumps(recs[0]) + "," + invalid + "," + json.dumps(recs[1]) + "]}"
    (tmp_path / "src").mkdir()
    (tmp_path / "src/f.json").write_text(text)
    code, out = ingest(str(tmp_path / "src"), "--lake", str(lake_dir))
    assert code == 3
    assert lake_ids(lake_dir) == sorted(r["eventID"] for r in recs)
    [q] = quarantine(lake_dir)
    assert q["record_index"] == 1 and q["reason"].startswith("invalid JSON") and "eventVersion" in q["raw"]


def test_a_second_concurrent_run_is_refused(tmp_path: Path, lake_dir: Path) -> None:
    write_trail(tmp_path / "src/one.json.gz", fresh_records(3))
    with RunLock(lake_dir / "_state" / "ingest.lock"):
        code, out = ingest(str(tmp_path / "src"), "--lake", str(lake_dir))
    assert code == 1
    assert "another keytrail run is writing to this lake" in out
    assert lake_ids(lake_dir) == []


def test_missing_source_is_a_clear_error(tmp_path: Path, lake_dir: Path) -> None:
    code, out = ingest(str(tmp_path / "nope"), "--lake", str(lake_dir))
    assert code == 2
    assert "does not exist: give a folder of CloudTrail log files" in out


@pytest.mark.parametrize("flag", ["--since", "--until"])
def test_bad_dates_are_named(tmp_path: Path, flag: str) -> None:
    code, out = ingest(str(tmp_path), flag, "last tuesday")
    assert code == 2 and "'last tuesday' is not a time: write a date (2026-11-01)" in out


def test_every_bad_sample_file_is_explained(lake_dir: Path) -> None:
    code, out = ingest(str(SAMPLE_LOGS / "bad"), "--lake", str(lake_dir))
    assert code == 3
    reasons = {(Path(q["source_object"]).name, q["record_index"]): q["reason"] for q in quarantine(lake_dir)}
    assert reasons == {
        ("empty.json.gz", None): "empty file: not a CloudTrail log file",
        ("missing_fields.json", 1): "missing required field eventID",
        ("missing_fields.json", 2): "missing required field eventTime",
        ("odd_account.json", 1): 'recipientAccountId "12345" is not a 12-digit AWS account id',
        ("odd_account.json", 2): 'recipientAccountId "EX_ACCOUNT_ID" is not a 12-digit AWS account id',
        ("truncated.json.gz", 23): "record cut off at the end of the file",
        ("truncated.json.gz", None): "truncated gzip: the file ends before the end of its compressed stream; "
        "recovered 23 records before it",
        ("invalid_json.json", 1): "invalid JSON: Expecting property name enclosed in double quotes "
        "at line 1 of the record (char 932)",
    }
    assert "2 non-KMS records skipped (1 ec2.amazonaws.com, 1 s3.amazonaws.com)" in out


def test_a_failed_write_leaves_its_files_to_the_next_run(tmp_path: Path, lake_dir: Path) -> None:
    """A batch's files are written while the next batch is parsed; a batch whose write fails is not recorded as
    ingested, so the run fails and the rerun lands exactly what a clean run would."""
    days = ["2026-11-20", "2026-11-21", "2026-11-22"]
    recs = [fresh_records(40, seed=n, day=day) for n, day in enumerate(days)]
    for n, day_recs in enumerate(recs):
        write_trail(tmp_path / f"src/{n}.json.gz", day_recs)
    blocker = lake_dir / "kms_events" / "event_date=2026-11-21"  # a file where the second batch's folder goes
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    code, _ = ingest(str(tmp_path / "src"), "--lake", str(lake_dir), "--batch-files", "1")
    assert code != 0
    assert lake_ids(lake_dir) == sorted(r["eventID"] for r in recs[0])
    blocker.unlink()
    code, out = ingest(str(tmp_path / "src"), "--lake", str(lake_dir), "--batch-files", "1")
    assert code == 0 and "Ingested 2 new of 3 files" in out, out
    assert lake_ids(lake_dir) == sorted(r["eventID"] for day_recs in recs for r in day_recs)


def lake_rows(lake: Path, table: str, columns: str = "*") -> list[tuple]:
    files = (
        [str(f) for f in Lake(lake).files(table)]
        if table != "_quarantine"
        else sorted(str(f) for f in (lake / "_quarantine").glob("*.parquet"))
    )
    return sorted(duckdb.sql(f"SELECT {columns} FROM read_parquet($f)", params={"f": files}).fetchall(), key=repr)


def test_many_small_batches_land_what_one_batch_lands(tmp_path: Path) -> None:
    """Batches are parsed, written and recorded in a pipeline; how the files fall into batches changes nothing:
    the same rows, quarantine and access events, whether the run is one batch or many."""
    src = tmp_path / "src"
    trail_files = sorted((SAMPLE_LOGS / "cloudtrail").rglob("*.json.gz"))[::12]
    for n, path in enumerate(trail_files):
        (src / f"{n:03d}-{path.name}").parent.mkdir(parents=True, exist_ok=True)
        (src / f"{n:03d}-{path.name}").write_bytes(path.read_bytes())
    for path in (SAMPLE_LOGS / "bad").iterdir():
        (src / f"bad-{path.name}").write_bytes(path.read_bytes())
    first = json.loads(gzip.decompress(trail_files[0].read_bytes()))["Records"]
    repeated = trail_text([r for r in first if r["eventSource"] == "kms.amazonaws.com"][:3] + fresh_records(2))
    (src / "001~redelivered.json").write_text(repeated)  # the first file's records again, in the next batch
    one, many = tmp_path / "one", tmp_path / "many"
    assert ingest(str(src), "--lake", str(one))[0] == 3
    code, out = ingest(str(src), "--lake", str(many), "--batch-files", "2")
    assert code == 3 and "3 duplicate records dropped" in out, out
    assert lake_rows(many, "kms_events") == lake_rows(one, "kms_events")
    assert lake_rows(many, "access_events") == lake_rows(one, "access_events")
    held = "source_object, record_index, reason, raw, raw_base64"
    assert lake_rows(many, "_quarantine", held) == lake_rows(one, "_quarantine", held) != []
