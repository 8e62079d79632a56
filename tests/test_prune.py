"""`keytrail prune`: a dry run by default; with --yes old partitions and their state go, and stay gone."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from click.testing import CliRunner

from analytics.attribute import refresh_attribution
from ingest.lake.state import IngestState
from ingest.lake.store import Lake
from keytrail.cli import cli
from keytrail.jobs.config import load_config
from keytrail.jobs.nightly import run_nightly
from tests.test_cloudhsm import entry, write_jsonl
from tests.trailfiles import fresh_records, trail_key, write_trail

OLD, RECENT = "2025-06-01", (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).date().isoformat()


def setup(tmp_path: Path) -> Path:
    """A local trail folder with an old and a recent delivery, ingested by a nightly run (first_run = all)."""
    trails = tmp_path / "trails"
    for n, day in enumerate((OLD, OLD, RECENT)):
        write_trail(trails / trail_key("111122223333", "us-east-1", day, n), fresh_records(5, seed=n, day=day))
    config = tmp_path / "keytrail.toml"
    config.write_text(
        f'[lake]\npath = "lake"\n[ingest]\nfirst_run = "all"\n[anomalies]\nenabled = false\n'
        f'[[cloudtrail]]\nname = "local"\npath = "{trails}"\n'
    )
    assert run_nightly(load_config(config)).exit_code == 0
    return config


def test_dry_run_lists_then_yes_removes_and_nightly_does_not_bring_it_back(tmp_path: Path) -> None:
    config = setup(tmp_path)
    lake = Lake(tmp_path / "lake")
    assert [d.isoformat() for d in lake.days("kms_events")] == [OLD, RECENT]

    dry = CliRunner().invoke(cli, ["prune", "--config", str(config), "--older-than", "400d"])
    assert dry.exit_code == 0, dry.output
    assert f"Would remove kms_events/event_date={OLD} (1 files)" in dry.output
    assert "Would remove 2 trail objects from the ingest state" in dry.output
    assert "Dry run: nothing was removed. Run again with --yes" in dry.output
    assert [d.isoformat() for d in lake.days("kms_events")] == [OLD, RECENT]

    done = CliRunner().invoke(cli, ["prune", "--lake", str(tmp_path / "lake"), "--older-than", "400d", "--yes"])
    assert done.exit_code == 0, done.output
    assert f"Removed kms_events/event_date={OLD} (1 files)" in done.output
    assert [d.isoformat() for d in lake.days("kms_events")] == [RECENT]
    assert not (tmp_path / "lake" / "kms_events" / f"event_date={OLD}").exists()
    state = IngestState(lake.state_dir / "ingest.sqlite")
    assert [r[0] for r in state.db.execute("SELECT object_key FROM source_objects")] == [
        str(p) for p in sorted((tmp_path / "trails").rglob(f"*{RECENT.replace('-', '')}*"))
    ]
    assert state.checkpoint("retention", "")["before"] > OLD  # type: ignore[index]
    state.close()

    # The old files are still in the folder; even a source starting afresh (renamed: no checkpoint, and
    # first_run = "all") does not fetch them again: the retention floor bounds every listing.
    config.write_text(config.read_text().replace('name = "local"', 'name = "renamed"'))
    again = run_nightly(load_config(config))
    assert again.exit_code == 0
    assert (again.sources[0].counts["files_seen"], again.sources[0].counts["files_new"]) == (1, 0)
    assert [d.isoformat() for d in lake.days("kms_events")] == [RECENT]


def test_pruned_days_leave_the_stored_attribution(tmp_path: Path) -> None:
    setup(tmp_path)
    refresh_attribution(tmp_path / "lake")
    stored = tmp_path / "lake" / "_attribution"
    assert sorted(p.name for p in stored.glob("event_date=*")) == [f"event_date={OLD}", f"event_date={RECENT}"]
    done = CliRunner().invoke(cli, ["prune", "--lake", str(tmp_path / "lake"), "--older-than", "400d", "--yes"])
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in stored.glob("event_date=*")) == [f"event_date={RECENT}"]


def test_manual_ingest_honours_the_retention_floor(tmp_path: Path) -> None:
    """After prune, `keytrail ingest` of the same folders (trail files and CloudHSM exports) does not bring the
    pruned days back: the retention floor bounds every ingest path, not only the nightly listing."""
    setup(tmp_path)
    old_hsm = dt.datetime(2025, 6, 1, 10, tzinfo=dt.UTC)
    recent_hsm = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    (tmp_path / "hsm" / "cluster-abc123").mkdir(parents=True)
    write_jsonl(
        tmp_path / "hsm" / "cluster-abc123" / "x.jsonl",
        [("hsm-one", entry(s, t)) for s, t in enumerate((old_hsm, recent_hsm))],
    )
    lake = str(tmp_path / "lake")
    assert CliRunner().invoke(cli, ["ingest", "cloudhsm", str(tmp_path / "hsm"), "--lake", lake]).exit_code == 0
    assert CliRunner().invoke(cli, ["prune", "--lake", lake, "--older-than", "400d", "--yes"]).exit_code == 0
    assert [d.isoformat() for d in Lake(lake).days("hsm_events")] == [recent_hsm.date().isoformat()]
    (tmp_path / "hsm" / "cluster-abc123" / "x.jsonl").rename(tmp_path / "hsm" / "cluster-abc123" / "copy.jsonl")

    trail = CliRunner().invoke(cli, ["ingest", "cloudtrail", str(tmp_path / "trails"), "--lake", lake])
    hsm = CliRunner().invoke(cli, ["ingest", "cloudhsm", str(tmp_path / "hsm"), "--lake", lake])
    assert trail.exit_code == 0 and hsm.exit_code == 0, trail.output + hsm.output
    assert "10 events older than the lake's retention floor (keytrail prune) were left out" in trail.output
    assert "1 entries older than the lake's retention floor (keytrail prune) were left out" in hsm.output
    assert [d.isoformat() for d in Lake(lake).days("kms_events")] == [RECENT]
    assert [d.isoformat() for d in Lake(lake).days("hsm_events")] == [recent_hsm.date().isoformat()]


def test_nothing_to_prune_and_json(tmp_path: Path) -> None:
    setup(tmp_path)
    result = CliRunner().invoke(
        cli, ["prune", "--lake", str(tmp_path / "lake"), "--older-than", "4000d", "--json", "--yes"]
    )
    doc = json.loads(result.output)
    assert doc["partitions"] == [] and doc["done"] is True
    text = CliRunner().invoke(cli, ["prune", "--lake", str(tmp_path / "lake"), "--older-than", "4000d"])
    assert "Nothing older than" in text.output
    bad = CliRunner().invoke(cli, ["prune", "--lake", str(tmp_path / "lake"), "--older-than", "a year"])
    assert bad.exit_code == 2 and "e.g. 400d" in bad.stderr
