"""The lake on S3 (moto server): nightly writes it through pyarrow's S3 filesystem, with its state and lock
in a local folder; `analytics.connect("s3://…")` reads it back through pyarrow datasets."""

from __future__ import annotations

import datetime as dt
import json
import signal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from analytics import connect
from ingest.lake.store import Lake
from keytrail.cli import cli
from keytrail.jobs.prune import prune
from tests.conftest import ROOT
from tests.test_nightly import aws, first_night, second_night, table_rows, write_config  # noqa: F401 - fixture
from tests.test_nightly_faults import run

LAKE = "s3://audit-lake/keytrail"


@pytest.fixture
def s3_config(aws: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """A config whose lake is on the moto S3 bucket (state in a local folder), with the first night's logs."""
    aws["s3"].create_bucket(Bucket="audit-lake")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws["endpoint"])
    config = write_config(tmp_path, "s3", aws["endpoint"], lake=LAKE, state_dir=tmp_path / "state")
    first_night(aws)
    return config


def test_nightly_writes_an_s3_lake_that_analytics_reads(
    aws: dict[str, Any],  # noqa: F811
    tmp_path: Path,
    s3_config: Path,
) -> None:
    config = s3_config
    result = CliRunner().invoke(cli, ["nightly", "--config", str(config)])
    assert result.exit_code == 0, result.output + result.stderr
    second_night(aws)
    result = CliRunner().invoke(cli, ["nightly", "--config", str(config)])
    assert result.exit_code == 0, result.output + result.stderr

    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket="audit-lake")["Contents"]]
    assert any(k.startswith("keytrail/kms_events/event_date=") for k in keys)
    assert any(k.startswith("keytrail/_runs/nightly-") for k in keys)
    assert not any(k.endswith(".tmp") for k in keys)
    assert (tmp_path / "state" / "ingest.sqlite").exists() and (tmp_path / "state" / "ingest.lock").exists()
    # compacted on S3 too: one file per day partition
    assert all(len(files) == 1 for files in Lake(LAKE).partitions("kms_events").values())

    clean = write_config(tmp_path, "clean", aws["endpoint"])  # the same sources into a local lake
    assert CliRunner().invoke(cli, ["nightly", "--config", str(clean)]).exit_code == 0
    for table in ("kms_events", "hsm_events"):
        assert table_rows(LAKE, table) == table_rows(tmp_path / "clean-lake", table)

    summary = "SELECT count(*), count(DISTINCT event_id), min(event_date) FROM kms_events"
    remote, local = connect(LAKE), connect(tmp_path / "clean-lake")
    assert remote.execute(summary).fetchall() == local.execute(summary).fetchall()
    assert remote.execute(summary).fetchall()[0][0] == 94
    ops = "SELECT operation, count(*) FROM key_operations GROUP BY ALL ORDER BY ALL"
    assert remote.execute(ops).fetchall() == local.execute(ops).fetchall()
    hsm = "SELECT event_date, count(*) FROM hsm_events GROUP BY ALL ORDER BY ALL"
    assert remote.execute(hsm).fetchall() == local.execute(hsm).fetchall() != []


def test_prune_on_an_s3_lake(tmp_path: Path, s3_config: Path) -> None:
    config = s3_config
    assert CliRunner().invoke(cli, ["nightly", "--config", str(config)]).exit_code == 0
    lake = Lake(LAKE, tmp_path / "state")
    days = lake.days("kms_events")
    plan = prune(lake, older_than=dt.timedelta(days=1), yes=True)
    assert plan.done and {d for t, d, _ in plan.partitions if t == "kms_events"} == {days[0]}
    assert lake.days("kms_events") == days[1:]


@pytest.mark.parametrize("point", ["publish:1", "compact-delete:1"])
def test_killed_while_writing_the_s3_lake_then_rerun(
    aws: dict[str, Any],  # noqa: F811
    tmp_path: Path,
    s3_config: Path,
    point: str,
) -> None:
    config = s3_config
    assert run(config).returncode == 0
    second_night(aws)
    assert run(config, kill_at=point).returncode == -signal.SIGKILL
    rerun = run(config)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    clean = write_config(tmp_path, "clean", aws["endpoint"])
    assert run(clean).returncode == 0
    for table in ("kms_events", "hsm_events"):
        assert table_rows(LAKE, table) == table_rows(tmp_path / "clean-lake", table)


def test_verify_hsm_sequence_reads_an_s3_lake(s3_config: Path) -> None:
    config = s3_config
    assert CliRunner().invoke(cli, ["nightly", "--config", str(config)]).exit_code == 0
    result = CliRunner().invoke(cli, ["verify", "hsm-sequence", "--lake", LAKE])
    assert result.exit_code == 0, result.output + result.stderr
    assert "CloudHSM audit trail complete" in result.output


def test_keytrail_sql_on_an_s3_lake_only_reads(aws: dict[str, Any], tmp_path: Path, s3_config: Path) -> None:  # noqa: F811
    """The sandbox over an S3 lake (views over pyarrow datasets; DuckDB itself may open no file at all)."""
    assert CliRunner().invoke(cli, ["nightly", "--config", str(s3_config)]).exit_code == 0

    def objects() -> dict[str, str]:
        return {o["Key"]: o["ETag"] for o in aws["s3"].list_objects_v2(Bucket="audit-lake")["Contents"]}

    before = objects()
    (tmp_path / "secret.csv").write_text("password\nhunter2\n")
    result = CliRunner().invoke(cli, ["sql", "SELECT count(*) AS n FROM kms_events", "--lake", LAKE, "--csv"])
    assert (result.exit_code, result.stdout) == (0, f"n\n{len(table_rows(LAKE, 'kms_events'))}\n")
    for sql in (
        f"COPY (SELECT 1) TO '{LAKE}/kms_events/event_date=2026-11-01/evil.parquet' (FORMAT parquet)",
        f"COPY (SELECT 1) TO '{tmp_path}/out.csv'",
        f"SELECT * FROM read_csv('{tmp_path}/secret.csv')",
    ):
        result = CliRunner().invoke(cli, ["sql", sql, "--lake", LAKE])
        assert result.exit_code == 2 and "keytrail sql runs read-only queries" in result.stderr, sql
    assert objects() == before and not (tmp_path / "out.csv").exists()


def test_findings_triage_on_an_s3_lake(aws: dict[str, Any], s3_config: Path) -> None:  # noqa: F811
    """Triage actions land as new objects under _findings/ through the same Lake methods; none is rewritten."""
    assert CliRunner().invoke(cli, ["nightly", "--config", str(s3_config)]).exit_code == 0

    def triage_objects() -> dict[str, str]:
        found = aws["s3"].list_objects_v2(Bucket="audit-lake", Prefix="keytrail/_findings/").get("Contents", [])
        return {o["Key"]: o["ETag"] for o in found}

    where = ["--lake", LAKE, "--config", str(s3_config)]
    listed = CliRunner().invoke(cli, ["findings", "list", "-o", "json", *where])
    assert listed.exit_code == 0, listed.stderr
    ids = [json.loads(line)["finding_id"] for line in listed.stdout.splitlines()]
    assert len(ids) == len(set(ids)), "two findings share an id"
    first = ids[0]
    assert CliRunner().invoke(cli, ["findings", "ack", first, "--note", "seen", *where]).exit_code == 0
    before = triage_objects()
    assert len(before) == 1 and not any(k.endswith(".tmp") for k in before)
    assert CliRunner().invoke(cli, ["findings", "resolve", first, "--note", "fixed", *where]).exit_code == 0
    after = triage_objects()
    assert len(after) == 2 and {k: after[k] for k in before} == before

    status = connect(LAKE).execute("SELECT finding_id, status, note FROM finding_status").fetchall()
    assert status == [(first, "resolved", "fixed")]
    listed = CliRunner().invoke(cli, ["findings", "list", "-o", "json", "--status", "resolved", *where])
    assert [json.loads(line)["finding_id"] for line in listed.stdout.splitlines()] == [first]


def test_report_and_its_verify_on_an_s3_lake(aws: dict[str, Any], tmp_path: Path, s3_config: Path) -> None:  # noqa: F811
    """The report hashes the S3 lake's objects into its manifest; verify names an object that changed since."""
    assert CliRunner().invoke(cli, ["nightly", "--config", str(s3_config)]).exit_code == 0
    out = tmp_path / "report.html"
    period = ["--since", "2020-01-01", "--until", "2030-01-01"]
    result = CliRunner().invoke(cli, ["report", *period, "--out", str(out), "--lake", LAKE, "--no-pdf"])
    assert result.exit_code == 0, result.output + result.stderr
    verify = ["report", "verify", str(out), "--lake", LAKE]
    assert CliRunner().invoke(cli, verify).exit_code == 0
    keys = sorted(o["Key"] for o in aws["s3"].list_objects_v2(Bucket="audit-lake")["Contents"])
    kms = [k for k in keys if k.startswith("keytrail/kms_events/")]
    assert kms and f'"{kms[0].removeprefix("keytrail/")}"' in out.read_text(encoding="utf-8")
    other = aws["s3"].get_object(Bucket="audit-lake", Key=kms[-1])["Body"].read()
    aws["s3"].put_object(Bucket="audit-lake", Key=kms[0], Body=other)
    changed = CliRunner().invoke(cli, verify)
    assert changed.exit_code == 1
    assert f"file changed: {kms[0].removeprefix('keytrail/')}" in changed.output


PAGES = ("overview", "tenants", "keys", "anomalies", "cloudhsm", "evidence", "data_health", "sql")


def test_the_dashboard_reads_an_s3_lake(
    aws: dict[str, Any],  # noqa: F811
    s3_config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every page on the S3 lake the nightly job wrote (its tables are pyarrow datasets that the connection's
    cursors do not see); on Evidence, the period report is built from it too."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    assert CliRunner().invoke(cli, ["nightly", "--config", str(s3_config)]).exit_code == 0
    monkeypatch.setenv("KEYTRAIL_LAKE", LAKE)
    monkeypatch.delenv("KEYTRAIL_TENANTS", raising=False)
    st.cache_data.clear()  # another test's lake had this URI: a snapshot of it would be kept for 30 s
    st.cache_resource.clear()
    for page in PAGES:
        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=90).run()
        at = at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, (page, [e.message for e in at.exception])
        assert not at.error or page == "cloudhsm", (page, [e.body for e in at.error])
        assert at.title, page
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=90).run()
    at = at.switch_page("app_pages/evidence.py").run()
    trails, hsms = (
        connect(LAKE)
        .execute(
            "SELECT (SELECT count(DISTINCT (recipient_account_id, aws_region)) FROM kms_events), "
            "(SELECT count(DISTINCT hsm_id) FROM hsm_events)"
        )
        .fetchall()[0]
    )
    # no digest verification ran: every trail is incomplete; both HSMs' sequences are unbroken
    assert {m.label: m.value for m in at.metric}["Streams complete"] == f"{hsms} of {trails + hsms}"
    at.button(key="evidence_prepare").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert [b.proto.label for b in at.get("download_button")] == [
        "Download the report (HTML)",
        "Download the report (PDF)",
    ]
