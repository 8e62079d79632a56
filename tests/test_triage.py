"""Findings triage on the sample lake: stable finding ids, `keytrail findings` appending one file per action and
never rewriting one, the finding_status / finding_history views, and unknown ids."""

from __future__ import annotations

import getpass
import hashlib
import json
import shutil
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from analytics import connect, triage
from analytics.anomalies import find_anomalies
from analytics.connection import register_findings
from analytics.sandbox import ReadOnlyViolation, run_read_only
from ingest.lake.store import Lake
from keytrail.cli import cli
from keytrail.jobs.nightly import write_run_record
from tests.conftest import SAMPLE_LOGS

TENANTS = SAMPLE_LOGS / "tenants.toml"


@pytest.fixture
def lake(ingested_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the ingested sample lake (triage writes into it), with the sample tenants file in effect."""
    monkeypatch.setenv("KEYTRAIL_TENANTS", str(TENANTS))
    return Path(shutil.copytree(ingested_sample, tmp_path / "lake"))


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def listed(lake: Path, *args: str) -> list[dict]:
    code, out, err = run("findings", "list", "--lake", str(lake), "-o", "json", *args)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*"))}


def test_finding_ids_are_unique_and_stable_across_runs_and_thread_counts(ingested_sample: Path) -> None:
    runs = []
    for threads in (1, 2, 4, 2):
        con = connect(ingested_sample, TENANTS, threads=threads)
        runs.append(find_anomalies(con).select(["finding_id", "detector", "explanation"]).to_pylist())
        con.close()
    assert runs[0] and all(r == runs[0] for r in runs)
    ids = [f["finding_id"] for f in runs[0]]
    assert len(set(ids)) == len(ids), "two findings share an id"
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)


def test_the_id_is_the_documented_hash_of_the_findings_identity(ingested_sample: Path) -> None:
    con = connect(ingested_sample, TENANTS)
    finding = find_anomalies(con, detectors=["cross_tenant_key_use"]).to_pylist()[0]
    start = finding["window_start"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fields = [finding["detector"], finding["tenant_id"], finding["key"], finding["principal"], start]
    canonical = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    assert finding["finding_id"] == hashlib.sha256(canonical.encode()).hexdigest()[:16]


def test_actions_append_one_file_each_and_never_rewrite_one(lake: Path) -> None:
    findings = listed(lake)
    assert {f["status"] for f in findings} == {"open"}
    first, second = findings[0]["finding_id"], findings[1]["finding_id"]
    code, out, _ = run("findings", "ack", first, "--note", "looking into it", "--lake", str(lake))
    assert code == 0 and f"Finding {first} is now acknowledged" in out
    before = hashes(lake / "_findings")
    assert len(before) == 1

    code, _, err = run("findings", "resolve", first, "--lake", str(lake))
    assert code == 2 and "a note is required" in err
    assert hashes(lake / "_findings") == before, "a refused action writes nothing"

    assert run("findings", "resolve", first, "--note", "rotated the key", "--lake", str(lake))[0] == 0
    assert run("findings", "false-positive", second, "--note", "load test", "--lake", str(lake))[0] == 0
    after = hashes(lake / "_findings")
    assert len(after) == 3 and {k: after[k] for k in before} == before, "earlier actions are untouched"
    assert not list((lake / "_findings").glob("*.tmp"))

    by_id = {f["finding_id"]: f for f in listed(lake)}
    assert (by_id[first]["status"], by_id[first]["status_note"]) == ("resolved", "rotated the key")
    assert by_id[first]["status_by"] == getpass.getuser()
    assert by_id[second]["status"] == "false_positive"
    assert [f["finding_id"] for f in listed(lake, "--status", "resolved")] == [first]
    assert len(listed(lake, "--status", "open")) == len(findings) - 2

    assert run("findings", "reopen", first, "--lake", str(lake))[0] == 0
    code, out, _ = run("findings", "history", first, "--lake", str(lake), "-o", "json")
    history = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [h["status"] for h in history] == ["acknowledged", "resolved", "open"]
    assert [h["note"] for h in history] == ["looking into it", "rotated the key", None]
    assert {h["who"] for h in history} == {getpass.getuser()}


def test_an_unknown_id_is_refused_naming_it_and_the_fix(lake: Path) -> None:
    for args in (("ack", "0123456789abcdef", "--note", "x"), ("history", "0123456789abcdef")):
        code, _, err = run("findings", *args, "--lake", str(lake))
        assert code == 2
        assert "0123456789abcdef" in err and "keytrail findings list" in err
    assert not (lake / "_findings").exists()


def test_status_and_history_views(lake: Path) -> None:
    con = connect(lake)
    for view in ("finding_status", "finding_history"):  # typed even with no triage file yet
        columns = {row[0]: row[1] for row in con.sql(f"DESCRIBE {view}").fetchall()}
        assert columns["acted_at"] == "TIMESTAMP WITH TIME ZONE" and columns["status"] == "VARCHAR"
        assert con.sql(f"SELECT count(*) FROM {view}").fetchall() == [(0,)]
    finding = find_anomalies(con).to_pylist()[0]
    store = Lake(lake)
    triage.record_action(store, finding, "acknowledged", None, "alice")
    triage.record_action(store, finding, "resolved", "fixed", "bob")
    register_findings(con, store)
    assert con.sql("SELECT status, who, note FROM finding_status").fetchall() == [("resolved", "bob", "fixed")]
    assert con.sql("SELECT count(*) FROM finding_history").fetchall() == [(2,)]
    assert con.sql("SELECT detector FROM finding_history").fetchall()[0][0] == finding["detector"]


def test_the_views_are_read_only_like_the_lake(lake: Path) -> None:
    """Triage goes through the command, never through SQL typed on a connection."""
    con = connect(lake)
    with pytest.raises(ReadOnlyViolation):
        run_read_only(con, f"COPY (SELECT 1) TO '{lake}/_findings/forged.parquet'")
    assert not (lake / "_findings").exists()


def test_a_status_or_note_that_is_not_allowed_is_refused(lake: Path) -> None:
    finding = {"finding_id": "0123456789abcdef", "detector": "x"}
    with pytest.raises(triage.ConfigError, match="unknown status"):
        triage.record_action(Lake(lake), finding, "closed", "n", "alice")
    with pytest.raises(triage.ConfigError, match="note is required"):
        triage.record_action(Lake(lake), finding, "false_positive", "  ", "alice")
    with pytest.raises(triage.ConfigError, match="keep it under"):
        triage.record_action(Lake(lake), finding, "resolved", "x" * (triage.NOTE_MAX + 1), "alice")
    assert not (lake / "_findings").exists()


def test_new_since_the_last_nightly_run_counts_open_findings_of_its_window(lake: Path) -> None:
    store = Lake(lake)
    con = connect(lake)
    found = find_anomalies(con)
    assert triage.last_nightly_run(store) is None
    assert triage.new_since(triage.with_status(found, triage.actions(store)), None).num_rows == 0
    since = "2026-11-20T00:00:00+00:00"
    write_run_record(store, {"run_id": "20261125T010000-aaaaaa", "anomalies": {"since": None}})
    write_run_record(store, {"run_id": "20261126T010000-bbbbbb", "anomalies": {"since": since}})
    assert triage.last_nightly_run(store)["run_id"] == "20261126T010000-bbbbbb"
    recent = duckdb.sql(f"SELECT finding_id FROM found WHERE window_end >= TIMESTAMPTZ '{since}'").fetchall()
    assert 0 < len(recent) < found.num_rows
    triage.record_action(store, {"finding_id": recent[0][0]}, "acknowledged", None, "alice")
    news = triage.new_since(triage.with_status(found, triage.actions(store)), triage.last_nightly_run(store))
    assert sorted(news.column("finding_id").to_pylist()) == sorted(r[0] for r in recent[1:])
