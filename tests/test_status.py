"""`keytrail status`: the lake's size, tenants file in effect, tables, quarantine, stored attribution, rollups,
runs, sources and stream freshness, in one look, read without writing to the lake."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from analytics import connect
from keytrail.cli import cli
from tests.conftest import SAMPLE_LOGS


def data_files(lake: Path) -> dict[str, int]:
    return {str(p.relative_to(lake)): p.stat().st_size for p in lake.rglob("*.parquet")}


def test_status_of_the_ingested_sample(ingested_sample: Path) -> None:
    before = data_files(ingested_sample)
    tenants = str(SAMPLE_LOGS / "tenants.toml")
    result = CliRunner().invoke(cli, ["status", "--lake", str(ingested_sample), "--tenants", tenants])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1] == f"Tenants:     {tenants} (--tenants)"
    con = connect(ingested_sample, tenants)
    days = con.sql("SELECT count(DISTINCT event_date) FROM kms_events").fetchall()[0][0]
    kms = con.sql("SELECT count(*) FROM kms_events").fetchall()[0][0]
    assert f"Attribution: 0 day(s) current, {days} to attribute (run keytrail attribute)" in lines
    assert "Rollups:     never built: run keytrail rollups" in lines
    assert "Quarantine:  0 record(s)" in lines
    assert any(line.split()[:2] == ["kms_events", str(kms)] for line in lines)
    assert any("ingest cloudtrail" in line and " ok " in line for line in lines), "the last runs are listed"
    assert data_files(ingested_sample) == before, "status writes nothing into the lake"


def test_status_as_json(ingested_sample: Path) -> None:
    result = CliRunner().invoke(cli, ["status", "--lake", str(ingested_sample), "--json"])
    status = json.loads(result.stdout)
    assert {t["table"] for t in status["tables"]} == {"kms_events", "hsm_events", "access_events"}
    streams = {(s["source"], s["account_or_cluster"], s["region_or_hsm"]) for s in status["streams"]}
    assert ("cloudhsm", "cluster-2kf8vwnq3xa", "hsm-abc123defgh") in streams
    assert all(s["newest_event"].endswith("Z") for s in status["streams"])
    assert {s["source"] for s in status["sources"]} >= {"cloudtrail"}


def test_status_of_no_lake_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["status", "--lake", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "is not a keytrail lake" in result.stderr
