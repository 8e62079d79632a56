"""Findings triage: who reviewed which anomaly finding, when, with what verdict and note.

Each action is one small Parquet file in `<lake>/_findings/` (schema `FINDING_ACTIONS` in ingest/lake/schema.py),
written once through `Lake.write_parquet` (temp name then rename on disk, one atomic upload on S3) and never
rewritten or deleted: the history of a finding is every file naming it, its status the newest. The file is written
with pyarrow by a deliberate command (`keytrail findings`, the dashboard's Anomalies page), never through a SQL
connection: those stay read-only. `connect()` exposes the files as the views `finding_history` and
`finding_status` (analytics/connection.py) for SQL; keytrail's own readers use `actions()` here.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from ingest.errors import ConfigError
from ingest.lake.schema import FINDING_ACTIONS
from ingest.lake.store import Lake

STATUSES = ("open", "acknowledged", "resolved", "false_positive")
CLOSED = ("acknowledged", "resolved", "false_positive")  # never alerted again
NOTE_REQUIRED = ("resolved", "false_positive")
NOTE_MAX = 4000  # characters: a reason, not a document
RUNS_DIR = "_runs"  # the nightly job's run records (keytrail/jobs/nightly.py)


class UnknownFinding(ConfigError):
    """A finding id that no current finding and no triage action has."""


def record_action(lake: Lake, finding: Mapping[str, Any], status: str, note: str | None, who: str) -> Path:
    """Append one triage action on `finding` (a row of find_anomalies, or of finding_history) as a new file;
    returns its path. Refuses an unknown status, a missing note where one is required, a note longer than
    `NOTE_MAX`, and an empty `who`."""
    if status not in STATUSES:
        raise ConfigError(f"unknown status {status!r}; choose from: {', '.join(STATUSES)}")
    note = (note or "").strip() or None
    if status in NOTE_REQUIRED and note is None:
        raise ConfigError(f"a note is required to mark a finding {status.replace('_', ' ')}: say why, with --note")
    if note is not None and len(note) > NOTE_MAX:
        raise ConfigError(f"the note has {len(note):,} characters; keep it under {NOTE_MAX:,} and link a document")
    if not who:
        raise ConfigError("a triage action needs the name of who took it")
    at = dt.datetime.now(dt.UTC)
    action_id = f"{at:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
    row = {k: _present(finding.get(k)) for k in ("finding_id", "detector", "tenant_id", "window_start", "window_end")}
    row |= {"action_id": action_id, "status": status, "note": note, "who": who, "acted_at": at}
    target = lake.findings_dir / f"{action_id}.parquet"
    if lake.exists(target):  # a uuid collision: never overwrite an action
        raise ConfigError(f"{target} exists already: run the command again")
    lake.write_parquet(pa.Table.from_pylist([row], schema=FINDING_ACTIONS), target)
    return target


def _present(value: Any) -> Any:
    """None for a missing value however it came (pandas gives NaN / NaT for NULL)."""
    return None if value is None or value != value else value


def actions(lake: Lake) -> pa.Table:
    """Every triage action in the lake, read with pyarrow (no SQL connection, nothing registered on one)."""
    files = lake.list_parquet(lake.findings_dir)
    return lake.dataset(files, FINDING_ACTIONS).to_table() if files else FINDING_ACTIONS.empty_table()


def latest(done: pa.Table) -> dict[str, dict[str, Any]]:
    """The newest action per finding id (as the `finding_status` view picks it)."""
    ordered = done.sort_by([("acted_at", "ascending"), ("action_id", "ascending")]).to_pylist()
    return {row["finding_id"]: row for row in ordered}


def with_status(found: pa.Table, done: pa.Table) -> pa.Table:
    """Findings (with `finding_id`) with their triage from the actions `done`, in the same order: status (open
    when never triaged), status_note, status_by and status_at of the newest action."""
    newest = latest(done)
    rows = [newest.get(i, {}) for i in found.column("finding_id").to_pylist()]
    columns = {
        "status": (pa.string(), [r.get("status", "open") for r in rows]),
        "status_note": (pa.string(), [r.get("note") for r in rows]),
        "status_by": (pa.string(), [r.get("who") for r in rows]),
        "status_at": (FINDING_ACTIONS.field("acted_at").type, [r.get("acted_at") for r in rows]),
    }
    for name, (kind, values) in columns.items():
        found = found.append_column(name, pa.array(values, kind))
    return found


def lookup(lake: Lake, found: pa.Table, done: pa.Table, finding_id: str) -> dict[str, Any]:
    """The finding `finding_id` among `found`, else as its last triage action recorded it (its events may have
    been pruned since); UnknownFinding (exit 2) when neither has it."""
    current = [r for r in found.to_pylist() if r["finding_id"] == finding_id]
    if current:
        return dict(current[0])
    if finding_id in (newest := latest(done)):
        return newest[finding_id]
    raise UnknownFinding(
        f"no finding with id {finding_id!r} in the lake {lake.uri}: list the findings and their ids with "
        f"`keytrail findings list --lake {lake.uri}`"
    )


def history(done: pa.Table, finding_id: str) -> pa.Table:
    """Every triage action on one finding, oldest first."""
    mine = done.filter(pc.equal(done.column("finding_id"), finding_id))
    ordered = mine.sort_by([("acted_at", "ascending"), ("action_id", "ascending")])
    return ordered.select(["acted_at", "status", "who", "note", "action_id"])


def signature(lake: Lake) -> str:
    """Names of the triage files, joined: changes whenever an action is added (for caches)."""
    return "\n".join(p.name for p in lake.list_parquet(lake.findings_dir))


def last_nightly_run(lake: Lake) -> dict[str, Any] | None:
    """The newest nightly run record in `<lake>/_runs/` (written at the end of each run), or None."""
    base = (lake.root / RUNS_DIR).as_posix()
    infos = lake.fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    names = sorted(i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(".json"))
    for path in reversed(names):
        try:
            with lake.fs.open_input_stream(path) as fh:
                record = json.loads(fh.read())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            return record
    return None


def new_since(found: pa.Table, run: Mapping[str, Any] | None) -> pa.Table:
    """The open findings the last nightly run brought up: those whose window ends after the start of the window
    it scanned (`anomalies.since` of its record; all findings when it scanned everything)."""
    since = ((run or {}).get("anomalies") or {}).get("since")
    rows = [r for r in found.to_pylist() if r.get("status", "open") == "open"]
    if run is None:
        return found.slice(0, 0)
    if since:
        start = dt.datetime.fromisoformat(since)
        rows = [r for r in rows if r["window_end"] >= start]
    return pa.Table.from_pylist(rows, schema=found.schema)
