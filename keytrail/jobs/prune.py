"""Retention: `keytrail prune --older-than 400d` removes whole event-date partitions older than the cutoff,
and the ingest state that only described them.

Under the lake's lock, in an order that is safe to interrupt and rerun:

1. the retention floor is raised to the cutoff (checkpoint `retention`): from then on the nightly run never
   lists or fetches anything older, so what is pruned does not come back;
2. the partitions' files are deleted, then their folders and the days' stored attribution (`_attribution/`);
3. state rows about them go: ingested trail objects delivered before the cutoff, alert records of findings
   that started before it, and run rows older than it.

Quarantined records are kept (they are few, and evidence of what could not be read).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from analytics.attribution_store import store_dir
from ingest.cloudtrail.sources import TRAIL_PATH
from ingest.lake.schema import TABLES
from ingest.lake.state import RETENTION, IngestState, RunLock, utcnow
from ingest.lake.store import Lake


@dataclass
class PrunePlan:
    """What pruning removes (or removed)."""

    cutoff: dt.date
    partitions: list[tuple[str, dt.date, list[Path]]] = field(default_factory=list)
    state_rows: dict[str, int] = field(default_factory=dict)
    done: bool = False

    @property
    def files(self) -> int:
        return sum(len(files) for _, _, files in self.partitions)

    def lines(self) -> list[str]:
        verb = "Removed" if self.done else "Would remove"
        out = [f"{verb} {table}/event_date={day} ({len(files)} files)" for table, day, files in self.partitions]
        out += [f"{verb} {n} {what} from the ingest state" for what, n in self.state_rows.items() if n]
        if not out:
            out.append(f"Nothing older than {self.cutoff} to remove.")
        elif not self.done:
            out.append("Dry run: nothing was removed. Run again with --yes to remove it.")
        return out


def prune(lake: Lake, older_than: dt.timedelta, yes: bool = False, now: dt.datetime | None = None) -> PrunePlan:
    """Plan (and with `yes`, carry out) the removal of partitions whose event date is before now - older_than."""
    cutoff = ((now or dt.datetime.now(dt.UTC)) - older_than).date()
    plan = PrunePlan(cutoff)
    for table in TABLES:
        plan.partitions += [(table, day, files) for day, files in lake.partitions(table).items() if day < cutoff]
    if not (lake.state_dir / "ingest.sqlite").exists():
        if yes:
            with RunLock(lake.state_dir / "ingest.lock", command="prune"):
                _remove(lake, plan)
            plan.done = True
        return plan
    with RunLock(lake.state_dir / "ingest.lock", command="prune") if yes else _nolock():
        state = IngestState(lake.state_dir / "ingest.sqlite")
        try:
            plan.state_rows = _state_rows(state, cutoff, delete=False)
            if yes:
                _raise_floor(state, cutoff)
                _remove(lake, plan)
                _state_rows(state, cutoff, delete=True)
                plan.done = True
        finally:
            state.close()
    return plan


class _nolock:  # noqa: N801 - a no-op stand-in for RunLock in dry runs
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _raise_floor(state: IngestState, cutoff: dt.date) -> None:
    current = state.checkpoint(*RETENTION)
    if not current or dt.date.fromisoformat(current["before"]) < cutoff:
        state.set_checkpoint(*RETENTION, {"before": cutoff.isoformat(), "set_at": utcnow()})


def _remove(lake: Lake, plan: PrunePlan) -> None:
    for table, day, files in plan.partitions:
        for path in files:
            lake.delete(path)
        lake.remove_partition_dir(table, day)
        if not lake.remote:  # the day's stored attribution goes with it (S3 lakes store none)
            shutil.rmtree(store_dir(lake) / f"event_date={day.isoformat()}", ignore_errors=True)


def _state_rows(state: IngestState, cutoff: dt.date, delete: bool) -> dict[str, int]:
    """Count (or delete) the state rows that describe only pruned data."""
    old_objects = [
        (source, key)
        for source, key in state.db.execute("SELECT source, object_key FROM source_objects").fetchall()
        if _delivered_before(key, cutoff)
    ]
    tables = {r[0] for r in state.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
    counts = {"trail objects": len(old_objects)}
    day = cutoff.isoformat()
    if "alerts_sent" in tables:
        counts["alert records"] = state.db.execute(
            "SELECT count(*) FROM alerts_sent WHERE window_start < ?", (day,)
        ).fetchone()[0]
    counts["run records"] = state.db.execute("SELECT count(*) FROM runs WHERE started_at < ?", (day,)).fetchone()[0]
    if delete:
        with state.db:
            state.db.execute("BEGIN")
            state.db.executemany("DELETE FROM source_objects WHERE source = ? AND object_key = ?", old_objects)
            if "alerts_sent" in tables:
                state.db.execute("DELETE FROM alerts_sent WHERE window_start < ?", (day,))
            state.db.execute("DELETE FROM runs WHERE started_at < ?", (day,))
    return counts


def _delivered_before(key: str, cutoff: dt.date) -> bool:
    """True for a trail object whose delivery date (from its path) is before the cutoff."""
    match = TRAIL_PATH.search(key)
    if not match:
        return False
    return dt.date(int(match["y"]), int(match["m"]), int(match["d"])) < cutoff


def describe(plan: PrunePlan) -> str:
    return json.dumps(
        {
            "cutoff": plan.cutoff.isoformat(),
            "done": plan.done,
            "partitions": [{"table": t, "day": d.isoformat(), "files": len(f)} for t, d, f in plan.partitions],
            "state_rows": plan.state_rows,
        }
    )
