"""Attribution stored once per lake day (`keytrail attribute`, analytics/attribution_store.py): the stored usage
equals what attributing every event again gives, only changed days are attributed again, an edited tenants file
makes every day stale, and a killed refresh is safe to rerun.

The sample logs are ingested once per session (conftest's `ingested_sample`); each test works on its own copy.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from analytics import connect
from analytics.attribute import refresh_attribution
from analytics.attribution_store import STORE_DIR
from analytics.fixtures import kms_row, write_events
from ingest.lake.state import RunLock
from ingest.lake.store import Lake
from keytrail.cli import cli

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs"
TENANTS = SAMPLE / "tenants.toml"
USAGE_VIEWS = ("usage_hourly", "usage_daily", "tenant_cost")


@pytest.fixture
def lake(ingested_sample: Path, tmp_path: Path) -> Path:
    shutil.copytree(ingested_sample, tmp_path / "lake")
    return tmp_path / "lake"


def attribute(lake: Path, tenants: Path = TENANTS) -> str:
    result = CliRunner().invoke(cli, ["attribute", "--lake", str(lake), "--tenants", str(tenants)])
    assert result.exit_code == 0, result.output
    return result.output


def usage(lake: Path, tenants: Path = TENANTS) -> dict[str, list[Any]]:
    """Every usage view's rows, sorted, and `keytrail usage` as JSON."""
    con = connect(lake, tenants, memory_limit="1GB")
    views = {v: sorted(con.sql(f"SELECT * FROM {v}").fetchall(), key=repr) for v in USAGE_VIEWS}
    con.close()
    out = CliRunner().invoke(cli, ["usage", "--lake", str(lake), "--tenants", str(tenants), "--json"]).output
    return {**views, "keytrail usage": sorted(out.splitlines())}


def computed(lake: Path, tenants: Path = TENANTS) -> dict[str, list[Any]]:
    """The same, with nothing stored: every event attributed now."""
    bare = lake.parent / "bare"
    shutil.rmtree(bare, ignore_errors=True)
    shutil.copytree(lake, bare, ignore=shutil.ignore_patterns(STORE_DIR))
    return usage(bare, tenants)


def lake_days(lake: Path) -> list[str]:
    days = {d.isoformat() for table in ("kms_events", "hsm_events") for d in Lake(lake).days(table)}
    return sorted(days)


def test_stored_usage_equals_attributing_every_event(lake: Path) -> None:
    before = usage(lake)
    assert sum(len(rows) for rows in before.values()) > 100
    out = attribute(lake)
    assert f"Attributed {len(lake_days(lake))} day(s)" in out
    stored_days = sorted(p.name.removeprefix("event_date=") for p in (lake / STORE_DIR).glob("event_date=*"))
    assert stored_days == lake_days(lake)
    assert usage(lake) == before


def test_later_sessions_read_the_stored_days(lake: Path) -> None:
    attribute(lake)
    day = lake_days(lake)[3]
    stored = next((lake / STORE_DIR / f"event_date={day}").glob("attributed_usage-*.parquet"))
    query = f"SELECT sum(operations) FROM usage_daily WHERE day = DATE '{day}'"
    con = connect(lake, TENANTS)
    expected = con.sql(query).fetchall()[0][0]
    # doubling the stored counts of that day shows in a new session: the file is read, nothing re-attributed
    doubled = f"SELECT * REPLACE (operations * 2 AS operations) FROM '{stored}'"
    con.execute(f"COPY ({doubled}) TO '{stored}.new' (FORMAT parquet)")
    os.replace(f"{stored}.new", stored)
    assert connect(lake, TENANTS).sql(query).fetchall()[0][0] == 2 * expected


def test_rerun_attributes_nothing(lake: Path) -> None:
    attribute(lake)
    assert f"up to date ({len(lake_days(lake))} days)" in attribute(lake)


def test_a_new_file_in_one_day_attributes_that_day_again(lake: Path) -> None:
    attribute(lake)
    day = dt.date.fromisoformat(lake_days(lake)[5])
    when = dt.datetime.combine(day, dt.time(13, 30), dt.UTC)
    write_events(lake, kms=[kms_row("Decrypt", event_time=when + dt.timedelta(seconds=n)) for n in range(7)])
    report = refresh_attribution(lake, TENANTS)
    assert report.written == [day.isoformat()]
    assert len(report.kept) == len(lake_days(lake)) - 1
    assert usage(lake) == computed(lake)


def test_an_edited_tenants_file_attributes_every_day_again(lake: Path, tmp_path: Path) -> None:
    attribute(lake)
    tenants = tmp_path / "tenants.toml"
    text = TENANTS.read_text()
    tenants.write_text(text)
    assert "up to date" in attribute(lake, tenants)  # same content, another path: nothing to do
    first_tenant = text.index("[[tenant]]")
    tenants.write_text(text[:first_tenant] + text[text.index("[[tenant]]", first_tenant + 1) :])
    report = refresh_attribution(lake, tenants)
    assert report.written == lake_days(lake)
    assert usage(lake, tenants) == computed(lake, tenants)
    assert usage(lake, tenants) != usage(lake, TENANTS)


def test_a_day_pruned_from_the_lake_leaves_the_store(lake: Path) -> None:
    attribute(lake)
    day = lake_days(lake)[0]
    for table in ("kms_events", "hsm_events", "access_events"):
        shutil.rmtree(lake / table / f"event_date={day}", ignore_errors=True)
    report = refresh_attribution(lake, TENANTS)
    assert report.removed == [day] and not report.written
    assert not (lake / STORE_DIR / f"event_date={day}").exists()
    assert usage(lake) == computed(lake)


def test_killed_refresh_is_safe_to_rerun(lake: Path) -> None:
    expected = usage(lake)
    cmd = [sys.executable, "-m", "keytrail", "attribute", "--lake", str(lake), "--tenants", str(TENANTS)]
    killed = subprocess.run(cmd, env={**os.environ, "KEYTRAIL_KILL_AT": "attribution_publish:40"}, check=False)
    assert killed.returncode == -9
    assert usage(lake) == expected  # half a store: the stored days are read, the others computed
    report = refresh_attribution(lake, TENANTS)
    assert 0 < len(report.written) < len(lake_days(lake)) and not (lake / STORE_DIR / "_batch").exists()
    assert usage(lake) == expected


@pytest.mark.parametrize("command", ["attribute", "rollups"])
def test_refused_while_another_run_writes_the_lake(lake: Path, command: str) -> None:
    with RunLock(lake / "_state" / "ingest.lock", command="ingest"):
        result = CliRunner().invoke(cli, [command, "--lake", str(lake), "--tenants", str(TENANTS)])
    assert result.exit_code != 0 and "another keytrail run is writing to this lake" in result.output
    assert not (lake / STORE_DIR).exists() and not (lake / "_rollups").exists()
    assert "Attributed" in attribute(lake)
