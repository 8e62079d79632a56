"""A record whose eventID is already taken is dropped only when it is the same event; a different record under a
taken id goes to the quarantine with its original text and shows on the Data health page. Nothing vanishes."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from keytrail.cli import cli
from tests.conftest import ROOT, SHARED_DATA
from tests.trailfiles import fresh_records, lake_texts, trail_text, write_trail

DOC_EXAMPLES = SHARED_DATA / "kms_docs_ct_examples_valid.json.gz"
EXIT_QUARANTINED = 3


def ingest(source: Path, lake: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["ingest", "cloudtrail", str(source), "--lake", str(lake)])
    return result.exit_code, result.output


def lake_events(lake: Path) -> list[dict[str, Any]]:
    return [json.loads(text) for text in lake_texts(lake)]


def conflicts(lake: Path) -> list[tuple[str, str]]:
    rows = duckdb.sql(
        f"SELECT reason, raw FROM read_parquet('{lake}/_quarantine/*.parquet') "
        "WHERE starts_with(reason, 'conflicting duplicate of event ')"
    )
    return rows.fetchall()


def test_the_documentation_examples_reusing_ids_all_stay_in_evidence(tmp_path: Path) -> None:
    # The AWS KMS developer guide's examples reuse 7 event ids for 19 different events.
    records = json.loads(gzip.decompress(DOC_EXAMPLES.read_bytes()))["Records"]
    lake = tmp_path / "lake"
    code, out = ingest(DOC_EXAMPLES, lake)
    assert code == EXIT_QUARANTINED, out
    assert "48 KMS events kept" in out and "12 quarantined (12 of them conflicting duplicates" in out
    assert "0 duplicate records dropped" in out
    held = conflicts(lake)
    landed = lake_events(lake)
    # Every record of the file is either in the lake or in the quarantine, byte for byte as the source wrote it.
    assert sorted(map(json.dumps, landed + [json.loads(raw) for _, raw in held])) == sorted(map(json.dumps, records))
    for reason, raw in held:
        event_id = json.loads(raw)["eventID"]
        assert reason == f"conflicting duplicate of event {event_id}"
        assert any(e["eventID"] == event_id and e != json.loads(raw) for e in landed)


def test_a_redelivered_record_is_dropped_and_a_different_one_under_its_id_is_held(tmp_path: Path) -> None:
    lake, first, second = tmp_path / "lake", tmp_path / "first", tmp_path / "second"
    records = fresh_records(6, seed=3)
    write_trail(first / "a.json.gz", records)
    assert ingest(first, lake)[0] == 0
    # CloudTrail delivers record 0 again (its JSON re-serialised: other key order and spacing), and someone
    # writes a different event under record 1's id.
    again = json.dumps(dict(reversed(list(records[0].items()))), indent=1)
    forged = {**records[1], "eventName": "ScheduleKeyDeletion"}
    new = fresh_records(2, seed=4)
    text = trail_text([json.loads(again), forged, *new]).replace(
        json.dumps(json.loads(again), separators=(",", ":")), again
    )
    (second / "b.json").parent.mkdir(parents=True)
    (second / "b.json").write_text(text)
    code, out = ingest(second, lake)
    assert code == EXIT_QUARANTINED, out
    assert "2 KMS events kept" in out and "1 quarantined (1 of them conflicting duplicates" in out
    assert "1 duplicate records dropped" in out
    assert conflicts(lake) == [
        (f"conflicting duplicate of event {forged['eventID']}", json.dumps(forged, separators=(",", ":")))
    ]
    assert len(lake_events(lake)) == 8


def test_data_health_shows_the_conflicting_duplicates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = tmp_path / "lake"
    shutil.copy(DOC_EXAMPLES, tmp_path / "examples.json.gz")
    assert ingest(tmp_path / "examples.json.gz", lake)[0] == EXIT_QUARANTINED
    monkeypatch.setenv("KEYTRAIL_LAKE", str(lake))
    monkeypatch.delenv("KEYTRAIL_TENANTS", raising=False)
    at = AppTest.from_file(ROOT / "dashboard" / "app.py", default_timeout=90).run()
    at = at.switch_page("app_pages/data_health.py").run()
    assert not at.exception, [e.message for e in at.exception]
    warnings = [w.body for w in at.warning]
    assert any(w.startswith("12 record(s) carry an event id already taken by a different record") for w in warnings)
    shown = next(df.value for df in at.dataframe if "event_id" in df.value.columns)
    assert len(shown) == 12 and shown["event_id"].nunique() == 7


def test_a_trail_file_changed_after_ingest_is_not_taken_for_the_same_records(tmp_path: Path) -> None:
    # The lake keeps no copy of the records (no keep_raw): a file rewritten in place after ingest must not pass for
    # the file its lake rows point to. Its records cannot be compared with the lake's any more, so every record
    # under a taken id is held, the changed one among them; nothing is dropped as "the same".
    lake, trail = tmp_path / "lake", tmp_path / "src" / "a.json.gz"
    records = fresh_records(4, seed=5)
    write_trail(trail, records)
    assert ingest(trail.parent, lake)[0] == 0
    changed = {**records[2], "tlsDetails": {"clientProvidedHostHeader": "kms.forged.example"}}
    write_trail(trail, [*records[:2], changed, records[3]])
    code, out = ingest(trail.parent, lake)
    assert code == EXIT_QUARANTINED, out
    assert "4 quarantined (4 of them conflicting duplicates" in out and "0 duplicate records dropped" in out
    held = [json.loads(raw) for _, raw in conflicts(lake)]
    assert changed in held and len(held) == 4
    landed = duckdb.sql(f"SELECT event_id FROM read_parquet('{lake}/kms_events/*/*.parquet')").fetchall()
    assert sorted(r[0] for r in landed) == sorted(r["eventID"] for r in records)  # the lake's rows stay as they were


def test_repeats_of_the_batch_before_are_judged_against_its_written_rows(tmp_path: Path) -> None:
    """Each batch's files are written while the next batch is parsed: a record repeating an id of the batch before
    is compared with that batch's lake row once it is written, so a redelivery is dropped and a forgery held."""
    source, lake = tmp_path / "src", tmp_path / "lake"
    records = fresh_records(40, seed=5)
    forged = {**records[7], "eventName": "ScheduleKeyDeletion"}
    write_trail(source / "a.json.gz", records)
    write_trail(source / "b.json.gz", [*records[:5], forged, *fresh_records(3, seed=6)])
    result = CliRunner().invoke(cli, ["ingest", "cloudtrail", str(source), "--lake", str(lake), "--batch-files", "1"])
    assert result.exit_code == EXIT_QUARANTINED, result.output
    assert "5 duplicate records dropped" in result.output and "1 of them conflicting duplicates" in result.output
    assert conflicts(lake) == [
        (f"conflicting duplicate of event {forged['eventID']}", json.dumps(forged, separators=(",", ":")))
    ]
    assert len(lake_events(lake)) == 43
