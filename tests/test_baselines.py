"""Stored baselines (analytics/baselines.py): scoring the new window from them equals a full rescore from the events.

The sample's trail files are delivered night by night into a staging folder and ingested with the real CLI; each
night the nightly job's detector step (keytrail/jobs/nightly.detect) stores the new days' baselines and scores its
window, and a fresh connection rescores the same window from the events alone. One night also brings, under a
new delivery date, the files held back from an already-scored day (a late delivery): its volume spike must still
be found. In the end the findings of all nights (the latest version of each) equal one full run over the lake.
Only CloudTrail is delivered: the sample's CloudHSM logs are one export of the whole month, and a month of
CloudHSM events beside a few days of CloudTrail makes every trail tenant look silent until the month's end.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from analytics import anomalies, baselines, connect
from ingest.lake.store import Lake
from keytrail.cli import cli
from keytrail.jobs.config import Config
from keytrail.jobs.nightly import detect

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_logs"
TENANTS = SAMPLE / "tenants.toml"
# Compared per finding: what a user reads in an alert.
COMPARED = ("detector", "severity", "tenant_id", "window_start", "window_end", "observed", "expected", "score")
# The nights' last days (trail files named for days up to it are delivered that night).
NIGHTS = ("2026-11-15", "2026-11-20", "2026-11-21", "2026-11-27")
# Held back from their night and delivered on the third: the two copies (key owner's and caller's trail) of the
# acme Decrypt spike of 2026-11-18 14:00 (ground truth VS-acme-decrypt-spike), a day the second night scored.
LATE, LATE_NIGHT = ("_20261118T1716Z_", "_20261118T2027Z_"), 2
SPIKE = ("volume_spike", "acme", dt.datetime(2026, 11, 18, 14, tzinfo=dt.UTC))


def trail_files() -> list[tuple[str, Path]]:
    """(file day, path) of every sample trail file, by its name's delivery time."""
    files = sorted((SAMPLE / "cloudtrail").rglob("*.json.gz"))
    return [(f"{p.name.split('_')[3][:4]}-{p.name.split('_')[3][4:6]}-{p.name.split('_')[3][6:8]}", p) for p in files]


def deliver(staging: Path, night: int) -> None:
    """Copy the night's trail files into the staging folder; the third night also delivers the held-back files,
    renamed and filed as delivered that night (CloudTrail names and files an object by its delivery time)."""
    first = NIGHTS[night - 1] if night else "0000"
    for day, path in trail_files():
        rel = path.relative_to(SAMPLE / "cloudtrail")
        late = any(part in path.name for part in LATE)
        if first < day <= NIGHTS[night] and not late:
            _copy(path, staging / rel)
        elif late and night == LATE_NIGHT:
            delivered = NIGHTS[night].replace("-", "")
            name = path.name.replace(path.name.split("_")[3], f"{delivered}T2359Z")
            _copy(path, staging / rel.parent.parent / NIGHTS[night][-2:] / name)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def ingest(kind: str, folder: Path, lake: Path) -> None:
    result = CliRunner().invoke(cli, ["ingest", kind, str(folder), "--lake", str(lake)])
    assert result.exit_code == 0, result.output


def config(lake: Path, **kw: Any) -> Config:
    return Config(path=lake / "keytrail.toml", lake=str(lake), state_dir=None, lake_endpoint_url=None,
                  tenants=TENANTS, sources=(), **kw)  # fmt: skip


def rows(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Finding id → the compared columns."""
    return {f["finding_id"]: {c: f[c] for c in COMPARED} for f in found}


def full_rescore(lake: Path, since: dt.datetime | None) -> dict[str, dict[str, Any]]:
    """The findings of [since, …) from the events alone, on a fresh connection."""
    con = connect(lake, TENANTS)
    try:
        return rows(anomalies.find_anomalies(con, since=since, stored=False).to_pylist())
    finally:
        con.close()


def stored_days(lake: Path, name: str) -> list[str]:
    folder = lake / baselines.STORE_DIR
    return sorted(p.parent.name.removeprefix("event_date=") for p in folder.glob(f"*/{name}-*.parquet"))


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Four nights over the sample; per night the incremental findings, the full rescore of the same window,
    and the window's start."""
    base = tmp_path_factory.mktemp("nights")
    lake, staging = base / "lake", base / "staging"
    previous: dt.datetime | None = None
    out: dict[str, Any] = {"lake": lake, "nights": []}
    for night in range(len(NIGHTS)):
        deliver(staging, night)
        ingest("cloudtrail", staging, lake)
        found, since = detect(config(lake), Lake(lake).require(), previous)
        out["nights"].append({"found": rows(found), "since": since, "full": full_rescore(lake, since)})
        previous = dt.datetime.fromisoformat(NIGHTS[night]).replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
    out["all"] = full_rescore(lake, None)
    return out


def test_each_night_equals_a_full_rescore_of_its_window(nights: dict[str, Any]) -> None:
    for night in nights["nights"]:
        assert night["found"] == night["full"]
    assert sum(len(n["found"]) for n in nights["nights"]) > 10  # findings of several detectors were compared


def test_the_window_starts_at_the_first_new_or_late_day(nights: dict[str, Any]) -> None:
    starts = [n["since"] for n in nights["nights"]]
    assert starts == [
        None,  # the first night scores everything
        dt.datetime(2026, 11, 14, tzinfo=dt.UTC),  # the previous night's end (11-16) minus the 2-day lookback
        dt.datetime(2026, 11, 18, tzinfo=dt.UTC),  # the late delivery's day, before 11-22 minus the lookback
        # the last night learns the unique id of a new role (acme-debug): attribution of every day may change
        # (analytics/attribution_store.py, principal_ids), so every day's baselines are rebuilt and scored
        dt.datetime(2026, 10, 29, tzinfo=dt.UTC),
    ]


def test_all_nights_together_equal_one_full_run_and_the_late_spike_is_found(nights: dict[str, Any]) -> None:
    # each night's findings replace those of earlier nights in the window it scored again: a drop and a logging
    # gap seen while the late files were missing are gone once they arrive, as in a full run
    latest: dict[str, dict[str, Any]] = {}
    for night in nights["nights"]:
        since = night["since"]
        latest = {k: f for k, f in latest.items() if since is not None and f["window_end"] < since}
        latest.update(night["found"])
    extra = [latest[k] for k in sorted(set(latest) - set(nights["all"]))]
    missing = [nights["all"][k] for k in sorted(set(nights["all"]) - set(latest))]
    assert (extra, missing) == ([], [])
    assert latest == nights["all"]
    found = [(r["detector"], r["tenant_id"], r["window_start"]) for r in nights["nights"][LATE_NIGHT]["found"].values()]
    assert SPIKE in found, "the spike in the late-delivered hour was lost"


def spikes_reported(lake: Path, *flags: str) -> set[tuple[str, str]]:
    """(tenant, window start) of the volume spikes `keytrail anomalies` prints as JSON."""
    args = ["anomalies", "--lake", str(lake), "--tenants", str(TENANTS), "--detector", "volume_spike", "--json"]
    result = CliRunner().invoke(cli, [*args, *flags])
    assert result.exit_code == 0, result.output
    found = [json.loads(line) for line in result.stdout.splitlines()]
    return {(f["tenant_id"], f["window_start"]) for f in found}


def test_full_reads_the_events_not_the_stored_baselines(nights: dict[str, Any], tmp_path: Path) -> None:
    lake = nights["lake"]
    assert spikes_reported(lake) == spikes_reported(lake, "--full")
    spike = ("acme", "2026-11-18T14:00:00Z")
    assert spike in spikes_reported(lake)
    # a stored day rewritten without its rows (by anyone who can write beside the lake) hides the spike from a
    # reader of the stored baselines; --full aggregates the events and finds it
    (stored,) = (lake / baselines.STORE_DIR / "event_date=2026-11-18").glob("spike_hourly-*.parquet")
    shutil.copy2(stored, tmp_path / "kept.parquet")
    duckdb.sql(f"COPY (SELECT * FROM '{stored}' LIMIT 0) TO '{tmp_path / 'empty.parquet'}' (FORMAT parquet)")
    shutil.copy2(tmp_path / "empty.parquet", stored)
    try:
        assert spike not in spikes_reported(lake)
        assert spike in spikes_reported(lake, "--full")
    finally:
        shutil.copy2(tmp_path / "kept.parquet", stored)


def test_baselines_are_stored_per_day_and_rebuilt_from_the_lake(nights: dict[str, Any]) -> None:
    lake = nights["lake"]
    days = {p.name.removeprefix("event_date=") for p in (lake / "kms_events").iterdir()}
    for name in baselines.STORED:
        assert set(stored_days(lake, name)) == days
    shutil.rmtree(lake / baselines.STORE_DIR)  # derived: gone, every detector aggregates the events again
    con = connect(lake, TENANTS)
    try:
        assert rows(anomalies.find_anomalies(con).to_pylist()) == nights["all"]
    finally:
        con.close()


@pytest.mark.parametrize("batch_events", [1, 2000])
def test_a_full_rescore_does_not_depend_on_how_days_are_batched(
    nights: dict[str, Any], batch_events: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the sample's whole lake is one batch by default; 1 event: a day per batch; 2,000: runs of several days
    monkeypatch.setattr(baselines, "BATCH_EVENTS", batch_events)
    assert full_rescore(nights["lake"], None) == nights["all"]


def test_days_stored_for_some_baselines_only_are_aggregated_for_the_others(
    nights: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = nights["lake"]
    writer = connect(lake, TENANTS, read_only=False)
    try:
        baselines.store_baselines(writer, anomalies.baseline_params())
    finally:
        writer.close()
    # every other day's spike baseline is missing, and every third day's first sightings
    for name, step in (("spike_hourly", 2), ("first_seen_combos", 3)):
        for day in stored_days(lake, name)[::step]:
            (path,) = (lake / baselines.STORE_DIR / f"event_date={day}").glob(f"{name}-*.parquet")
            path.unlink()
    monkeypatch.setattr(baselines, "BATCH_EVENTS", 2000)  # runs of days, split where the missing names change
    assert baseline_tables(lake, stored=True) == baseline_tables(lake, stored=False)


def baseline_tables(lake: Path, stored: bool) -> dict[str, list[tuple[Any, ...]]]:
    """Every baseline the detectors read, as sorted rows: from the stored days where `stored`, else from the
    events."""
    con = connect(lake, TENANTS)
    try:
        params = anomalies.baseline_params()
        baselines.register_baselines(con, params, stored=stored)
        return {name: sorted(con.sql(f"SELECT * FROM {name}").fetchall(), key=repr) for name in params}
    finally:
        con.close()


STORE = """
import sys
from analytics import connect
from analytics.anomalies import baseline_params
from analytics.baselines import store_baselines
con = connect(sys.argv[1], sys.argv[2], read_only=False)
store_baselines(con, baseline_params())
"""


def test_a_killed_store_is_safe_to_rerun(ingested_sample: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(ingested_sample, lake)
    expected = full_rescore(lake, None)
    cmd = [sys.executable, "-c", STORE, str(lake), str(TENANTS)]
    killed = subprocess.run(cmd, env={**os.environ, "KEYTRAIL_KILL_AT": "baselines_publish:40"}, check=False)
    assert killed.returncode == -9
    con = connect(lake, TENANTS)
    try:  # half a store: the stored days are read, the others aggregated from the events
        assert rows(anomalies.find_anomalies(con).to_pylist()) == expected
        report = baselines.store_baselines(connect(lake, TENANTS, read_only=False), anomalies.baseline_params())
    finally:
        con.close()
    assert report is not None and report.kept >= 39  # what the killed run stored is kept, the rest written
    days = stored_days(lake, "spike_hourly")
    assert report.kept + sum(map(len, report.written.values())) == len(baselines.STORED) * len(days)
    assert not (lake / baselines.STORE_DIR / "_batch").exists()
    con = connect(lake, TENANTS)
    try:
        assert rows(anomalies.find_anomalies(con).to_pylist()) == expected
    finally:
        con.close()
