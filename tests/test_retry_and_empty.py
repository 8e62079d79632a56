"""A wrong path in cron must be noticed: an ingest that finds no file at all warns and exits 1. A file whose
records were quarantined (a missing --cluster-id, say) is read again with --retry-quarantined, and nothing that
had landed lands twice."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from analytics import connect
from keytrail.cli import cli
from tests.conftest import SHARED_DATA
from tests.trailfiles import fresh_records, trail_key, write_trail


def ingest(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["ingest", *args])
    return result.exit_code, result.stdout, result.stderr


def test_an_empty_source_warns_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = ingest("cloudtrail", str(tmp_path / "empty"), "--lake", str(tmp_path / "lake"))
    assert code == 1 and "Warning: no trail files in" in err and "check the path" in err
    code, _, err = ingest("cloudhsm", str(tmp_path / "empty"), "--lake", str(tmp_path / "lake"))
    assert code == 1 and f"no CloudHSM export files in {tmp_path / 'empty'}" in err


def test_a_quarantined_cloudhsm_file_is_read_again_only_when_asked(tmp_path: Path) -> None:
    """The AWS documentation's audit entries have no log stream (no HSM id): all quarantined, exit 3. A plain rerun
    reads nothing (the file is known); --retry-quarantined reads it again (after an upgrade or a fixed option,
    it would land), and the quarantine still holds each entry once."""
    (tmp_path / "exports").mkdir()
    shutil.copy(SHARED_DATA / "cloudhsm_audit_doc_examples.jsonl", tmp_path / "exports")
    lake = str(tmp_path / "lake")
    first = ingest("cloudhsm", str(tmp_path / "exports"), "--lake", lake)
    assert first[0] == 3 and "Read 32 CloudHSM entries" in first[1] and "quarantined 32" in first[1], first
    assert "Read 0 CloudHSM entries" in ingest("cloudhsm", str(tmp_path / "exports"), "--lake", lake)[1]
    retried = ingest("cloudhsm", str(tmp_path / "exports"), "--lake", lake, "--retry-quarantined")
    assert retried[0] == 3 and "Read 32 CloudHSM entries" in retried[1], retried
    assert connect(lake).sql("SELECT count(*) FROM quarantine").fetchall() == [(32,)]
    refused = ingest("cloudhsm", "cloudwatch", "--lake", lake, "--retry-quarantined")
    assert refused[0] == 2 and "--retry-quarantined reads export files again" in refused[2]


def test_a_trail_file_is_read_again_without_landing_anything_twice(tmp_path: Path) -> None:
    records: list[object] = fresh_records(4)
    records.append({"eventVersion": "1.08"})  # no eventID, no eventTime: quarantined
    write_trail(tmp_path / "trail" / trail_key("111122223333", "us-east-1", "2026-11-20", 1), records)
    lake = str(tmp_path / "lake")
    assert ingest("cloudtrail", str(tmp_path / "trail"), "--lake", lake)[0] == 3
    code, out, _ = ingest("cloudtrail", str(tmp_path / "trail"), "--lake", lake, "--retry-quarantined")
    assert "Ingested 1 new of 1 files" in out and "4 duplicate records dropped" in out, out
    con = connect(lake)
    assert con.sql("SELECT count(*), count(DISTINCT event_id) FROM kms_events").fetchall() == [(4, 4)]
    assert con.sql("SELECT count(*) FROM quarantine").fetchall() == [(1,)], "the quarantine holds it once"
