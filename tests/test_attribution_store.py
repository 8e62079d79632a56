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

import duckdb
import pytest
from click.testing import CliRunner

from analytics import connect
from analytics.attribute import refresh_attribution
from analytics.attribution_store import STORE_DIR, STORED, code_digest
from analytics.fixtures import OWNER, kms_row, write_events
from ingest.lake.state import RunLock
from ingest.lake.store import Lake
from keytrail.cli import cli

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs"
TENANTS = SAMPLE / "tenants.toml"
USAGE_VIEWS = ("usage_hourly", "usage_daily", "tenant_cost")
ACME = "444455556666"  # acme's account in the sample's tenants.toml


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


def stored_primary_recipients(lake: Path, day: dt.date) -> dict[str, str]:
    """The day's stored primary copies: shared event id → the recipient account whose copy counts."""
    (stored,) = (lake / STORE_DIR / f"event_date={day}").glob("primary_copies-*.parquet")
    con = duckdb.connect()
    return dict(con.sql(f"SELECT shared_event_id, primary_recipient FROM '{stored}'").fetchall())


def test_a_copy_delivered_a_day_later_makes_the_callers_copy_count(lake: Path) -> None:
    """Both copies of a cross-account call carry one eventTime: the caller's copy, delivered a night after the key
    owner's, is a new file in the call's day; that day is attributed again and the call still counts once, now as
    the caller's copy, exactly as attributing every event again says."""
    attribute(lake)
    day = dt.date.fromisoformat(lake_days(lake)[5])
    call = {"event_time": dt.datetime.combine(day, dt.time(23, 59, 59), dt.UTC), "shared_event_id": "shared-1"}
    owner_copy = kms_row(
        **call, caller_account_id=ACME, recipient_account_id=OWNER, identity_type="AWSAccount", principal_arn=None
    )
    write_events(lake, kms=[owner_copy])
    assert refresh_attribution(lake, TENANTS).written == [day.isoformat()]
    assert stored_primary_recipients(lake, day)["shared-1"] == OWNER
    counted = operations(lake, day)
    role = f"arn:aws:sts::{ACME}:assumed-role/app/session"
    caller_copy = kms_row(**call, caller_account_id=ACME, recipient_account_id=ACME, principal_arn=role)
    write_events(lake, kms=[caller_copy])
    assert refresh_attribution(lake, TENANTS).written == [day.isoformat()]
    assert stored_primary_recipients(lake, day)["shared-1"] == ACME
    assert operations(lake, day) == counted
    assert usage(lake) == computed(lake)


def operations(lake: Path, day: dt.date) -> int:
    con = connect(lake, TENANTS)
    return int(con.sql(f"SELECT sum(operations) FROM usage_daily WHERE day = DATE '{day}'").fetchall()[0][0])


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
    # killed after every day of the other stored results and 10 days of attributed_usage were published
    kill_at = f"attribution_publish:{(len(STORED) - 1) * len(lake_days(lake)) + 10}"
    killed = subprocess.run(cmd, env={**os.environ, "KEYTRAIL_KILL_AT": kill_at}, check=False)
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


@pytest.mark.parametrize("changed", ["spark/attribute.py", "sql/attributed_usage.sql", "attribute.py"])
def test_a_code_change_on_either_engine_makes_stored_results_stale(
    monkeypatch: pytest.MonkeyPatch, changed: str
) -> None:
    """Stored files carry a digest of the analytics code: an upgrade that changes the Spark engine's code, as well as
    the SQL or the DuckDB side, is seen, and the next run attributes again."""
    before = code_digest()
    read_bytes = Path.read_bytes
    target = Path(__file__).resolve().parent.parent / "analytics" / changed
    code_digest.cache_clear()  # computed once per process: the code does not change under a running keytrail
    try:
        with monkeypatch.context() as patch:
            patch.setattr(Path, "read_bytes", lambda p: read_bytes(p) + (b"\n# changed" if p == target else b""))
            assert code_digest() != before
    finally:
        code_digest.cache_clear()
    assert code_digest() == before
