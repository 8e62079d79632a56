"""`keytrail nightly`: one configured run that schedulers start every night.

Under the lake's lock (a stale lock from a killed run is taken over and reported), in order:

1. finish or undo a compaction a killed run left half done (ingest/lake/compact.py);
2. ingest every configured source since its checkpoint, each on its own: one failing (access denied,
   throttled past its retries, a deleted log group) is recorded and the others still run. Trail buckets
   are re-listed from `overlap` before the last listing, for late CloudTrail deliveries; objects already
   ingested are skipped by the ingest state and repeated event ids are dropped by the writer. A trail
   source with `verify = true` then has its digest chain verified over the same window
   (ingest/integrity/verification.py);
3. compact every day partition with `compact_min_files` files or more;
4. attribute the new days once and store the result (analytics/attribution_store.py), then refresh the
   dashboard's rollups (analytics/rollups.py);
5. store the detectors' baselines of the new (or changed) days beside the lake (analytics/baselines.py) and run
   the anomaly detectors over the new window: from the previous run's start minus `lookback`, or from the
   earliest day whose baselines had to be written if that is earlier (an event delivered late for a day already
   scored, a new tenants file or detector settings); every hour with `full_rescore = true`;
6. send new anomalies at or above each sink's severity (keytrail/jobs/alerts.py; never twice to a sink);
7. write the run record: the `runs` row of the ingest state (command `nightly`, stats = the record as JSON)
   and `<lake>/_runs/nightly-<run_id>.json`, which the dashboard's Data health page reads.

The exit code says how it went: 0 all good, 1 a source or a step failed (the record says which), 2 bad config.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from analytics import rollups, triage
from analytics.anomalies import baseline_params, find_anomalies
from analytics.baselines import BaselineReport, store_baselines
from analytics.connection import connect
from ingest.aws import make_client
from ingest.cloudhsm.load import run_ingest as run_hsm_ingest
from ingest.cloudhsm.sources import CloudWatchSource, FileSource, open_source
from ingest.cloudtrail.load import STATE_SOURCE, ingest_local, ingest_lookup_events, ingest_s3
from ingest.cloudtrail.sources import S3Trail, TrailFilter, list_local
from ingest.errors import KeytrailError
from ingest.faults import crash_point
from ingest.integrity.sources import open_store
from ingest.integrity.verification import verify_trail
from ingest.lake.compact import compact_lake, recover
from ingest.lake.state import IngestState, RunLock, utcnow
from ingest.lake.store import Lake, new_run_id
from ingest.logs import LOGGER
from keytrail.jobs.alerts import SinkReport, make_sinks, send_alerts
from keytrail.jobs.config import (
    AwsAccess,
    Config,
    HsmSource,
    LookupSource,
    SinkConfig,
    Source,
    TrailSource,
    check_files,
)
from keytrail.progress import Reporter

log = logging.getLogger(LOGGER)
COMMAND = "nightly"
RUNS_DIR = "_runs"

# Makes a boto3 client: (service, access) -> client. Tests swap it to inject faults.
ClientFactory = Callable[[str, AwsAccess], Any]


def default_clients(service: str, access: AwsAccess) -> Any:
    """A boto3 client for a source or sink, through its role when it has one (ingest/aws.make_client)."""
    return make_client(service, access.region, access.endpoint_url, access.profile, access.role_arn)


@dataclass
class SourceResult:
    """What one source did in a run."""

    name: str
    kind: str
    status: str = "ok"  # ok | failed
    error: str | None = None
    since: str | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class NightlyResult:
    """The run record."""

    run_id: str
    config: str
    lake: str
    started_at: str
    ended_at: str | None = None
    status: str = "running"  # ok | failed (some source or step failed)
    stale_lock: str | None = None
    recovered: list[str] = field(default_factory=list)
    sources: list[SourceResult] = field(default_factory=list)
    compaction: list[dict[str, Any]] = field(default_factory=list)
    verification: list[dict[str, Any]] = field(default_factory=list)
    rollups: dict[str, Any] | None = None
    anomalies: dict[str, Any] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def failed_sources(self) -> list[str]:
        return [s.name for s in self.sources if s.status != "ok"]

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    def record(self) -> dict[str, Any]:
        """The run as JSON-ready data: scalar totals first (what a one-line summary shows), then the details."""
        totals = {
            "sources_ok": sum(s.status == "ok" for s in self.sources),
            "sources_failed": len(self.failed_sources),
            "failed_sources": ", ".join(self.failed_sources),
            "events_kept": sum(int(s.counts.get("kept", 0)) for s in self.sources),
            "partitions_compacted": len(self.compaction),
            "integrity_problems": sum(int(v.get("problems", 0)) for v in self.verification),
            "anomalies_found": int(self.anomalies.get("found", 0)),
            "alerts_sent": sum(int(a.get("sent", 0)) for a in self.alerts),
            "error_count": len(self.errors),
        }
        return {**totals, **asdict(self)}


def run_nightly(cfg: Config, clients: ClientFactory = default_clients, now: dt.datetime | None = None) -> NightlyResult:
    """One nightly run as configured (see the module docstring); never raises for a failing source or step (a
    missing tenants file or source folder is a ConfigError before anything is fetched)."""
    check_files(cfg)
    lake = open_lake(cfg)
    with RunLock(lake.state_dir / "ingest.lock", reentrant=True, command=COMMAND) as lock:
        lake.remove_orphans()
        shutil.rmtree(lake.work_dir / "_staging", ignore_errors=True)
        state = IngestState(lake.state_dir / "ingest.sqlite")
        try:
            return _run(cfg, lake, state, lock, clients, now or dt.datetime.now(dt.UTC))
        finally:
            state.close()


def open_lake(cfg: Config) -> Lake:
    return Lake(cfg.lake, cfg.state_dir, cfg.lake_endpoint_url)


def _run(
    cfg: Config, lake: Lake, state: IngestState, lock: RunLock, clients: ClientFactory, now: dt.datetime
) -> NightlyResult:
    result = NightlyResult(new_run_id(), str(cfg.path), lake.uri, utcnow(), stale_lock=lock.stale)
    previous = last_run_start(state)
    state.start_run(result.run_id, COMMAND, str(cfg.path))
    log.info("nightly run started", extra={"event": "run_started", "run_id": result.run_id, "lake": lake.uri})
    if lock.stale:
        log.warning("took over a stale lock", extra={"event": "stale_lock", "holder": lock.stale})
    with _step(result, "recover"):
        result.recovered = recover(lake, state)
    for source in cfg.sources:
        result.sources.append(ingest_source(cfg, lake, state, source, clients, now))
        if result.sources[-1].error:
            result.errors.append({"step": f"source:{source.name}", "error": result.sources[-1].error})
    verify_trails(cfg, lake, result, clients)
    crash_point("nightly-ingested")
    with _step(result, "compact"):
        result.compaction = [c.as_dict() for c in compact_lake(lake, state, result.run_id, cfg.compact_min_files)]
        log.info("compacted", extra={"event": "compacted", "partitions": len(result.compaction)})
    with _step(result, "rollups"):
        result.rollups = refresh_rollups(cfg, lake)
    findings: list[dict[str, Any]] = []
    if cfg.anomalies_enabled:
        with _step(result, "anomalies"):
            findings, since = detect(cfg, lake, previous)
            result.anomalies = summarize(findings, since)
            log.info("anomalies found", extra={"event": "anomalies", **result.anomalies})
    if cfg.sinks:
        with _step(result, "alerts"):
            reports = send_alerts(state, make_sinks(cfg.sinks, partial(_sink_client, clients)), findings, result.run_id)
            result.alerts = [asdict(r) for r in reports]
            _alert_errors(result, reports)
    crash_point("nightly-record")
    finish(result, lake, state)
    return result


@contextmanager
def _step(result: NightlyResult, step: str) -> Iterator[None]:
    """Run one post-ingest step; a failure is logged and recorded, and the run goes on."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - one step failing must not stop the others
        message = _describe(err)
        result.errors.append({"step": step, "error": message})
        log.error(f"{step} failed: {message}", extra={"event": "step_failed", "step": step, "error": message})


def _describe(err: BaseException) -> str:
    return str(err) if isinstance(err, KeytrailError) else f"{type(err).__name__}: {err}"


def _alert_errors(result: NightlyResult, reports: list[SinkReport]) -> None:
    for report in reports:
        if report.error:
            result.errors.append({"step": f"alerts:{report.sink}", "error": report.error})
            log.error(f"alert sink {report.sink} failed: {report.error}", extra={"event": "sink_failed"})
        else:
            log.info(f"alerts sent to {report.sink}", extra={"event": "alerts_sent", **asdict(report)})


def _sink_client(clients: ClientFactory, cfg: SinkConfig) -> Any:
    return clients("sns", cfg.aws)


def last_run_start(state: IngestState) -> dt.datetime | None:
    """When the last nightly run that got to its end started (the anomaly window starts from it)."""
    row = state.db.execute(
        "SELECT max(started_at) FROM runs WHERE command = ? AND status IN ('ok', 'failed') AND ended_at IS NOT NULL",
        (COMMAND,),
    ).fetchone()
    return dt.datetime.fromisoformat(row[0]) if row and row[0] else None


# --- sources --------------------------------------------------------------------------------------------


def ingest_source(
    cfg: Config, lake: Lake, state: IngestState, source: Source, clients: ClientFactory, now: dt.datetime
) -> SourceResult:
    """Ingest one source; its failure is caught and described in the result, never raised."""
    result = SourceResult(source.name, source.kind)
    started = time.perf_counter()
    log.info(f"source {source.name} started", extra={"event": "source_started", "source": source.name})
    try:
        if isinstance(source, TrailSource):
            result.counts, result.since = _ingest_trail(cfg, lake, state, source, clients, now)
        elif isinstance(source, LookupSource):
            result.counts, result.since = _ingest_lookup(cfg, lake, source, clients, now)
        else:
            result.counts, result.since = _ingest_hsm(cfg, lake, source, clients, now)
    except Exception as err:  # noqa: BLE001 - one source failing must not stop the others
        result.status, result.error = "failed", _describe(err)
    result.seconds = round(time.perf_counter() - started, 3)
    extra = {"event": "source_done", "source": source.name, "status": result.status, **result.counts}
    if result.error:
        log.error(f"source {source.name} failed: {result.error}", extra={**extra, "error": result.error})
    else:
        log.info(f"source {source.name} done", extra=extra)
    return result


def first_since(cfg: Config, state: IngestState, now: dt.datetime) -> dt.datetime | None:
    """How far back a source with no checkpoint reads: `first_run` ago, never before the retention floor."""
    floor = retention_floor(state)
    since = now - cfg.first_run if cfg.first_run else None
    return max(filter(None, (since, floor)), default=None)


def retention_floor(state: IngestState) -> dt.datetime | None:
    """The retention floor as the start of its day, UTC (listings never reach below it)."""
    floor = state.retention_floor()
    return dt.datetime.combine(floor, dt.time(), dt.UTC) if floor else None


def trail_window(cfg: Config, state: IngestState, source: TrailSource, now: dt.datetime) -> dt.datetime | None:
    """Where the listing of a trail starts: the last listing minus the overlap (late deliveries)."""
    checkpoint = state.checkpoint(f"nightly:{source.name}", "")
    if not checkpoint:
        return first_since(cfg, state, now)
    since = dt.datetime.fromisoformat(checkpoint["listed_at"]) - cfg.overlap
    floor = retention_floor(state)
    return max(since, floor) if floor else since


def logged_progress(source: str, unit: str) -> Reporter:
    """A source's progress as a log line every few seconds (the run's log format, event `progress`)."""
    return Reporter(source, unit, emit=lambda line: log.info(line, extra={"event": "progress", "source": source}))


def _trail_filter(source: TrailSource, since: dt.datetime | None) -> TrailFilter:
    return TrailFilter(source.accounts, source.regions, since=since)


def _ingest_trail(
    cfg: Config, lake: Lake, state: IngestState, source: TrailSource, clients: ClientFactory, now: dt.datetime
) -> tuple[dict[str, Any], str | None]:
    since = trail_window(cfg, state, source, now)
    flt = _trail_filter(source, since)
    progress = logged_progress(source.name, "trail files")
    if source.location.startswith("s3://"):
        listing = logged_progress(source.name, "objects listed")
        trail = S3Trail(clients("s3", source.aws), source.location)
        summary = ingest_s3(lake, trail, flt, progress, listing=listing, keep_raw=source.keep_raw)
    else:
        summary = ingest_local(lake, Path(source.location), flt, progress, keep_raw=source.keep_raw)
    progress.close()
    state.set_checkpoint(f"nightly:{source.name}", "", {"listed_at": now.isoformat()})
    counts = {k: v for k, v in summary.totals.items() if k != "skipped_sources"}
    counts |= {"files_seen": summary.files_seen, "files_new": summary.files_new, "vanished": summary.files_vanished}
    return counts, since.isoformat() if since else None


def verify_trails(cfg: Config, lake: Lake, result: NightlyResult, clients: ClientFactory) -> None:
    """Verify the digest chain of each trail source with `verify = true` that ingested cleanly, over its window."""
    for source, done in zip(cfg.sources, result.sources, strict=True):
        if isinstance(source, TrailSource) and source.verify and done.status == "ok":
            with _step(result, f"verify:{source.name}"):
                result.verification.append(verify_configured(lake, source, done.since, clients))


def verify_configured(lake: Lake, source: TrailSource, since: str | None, clients: ClientFactory) -> dict[str, Any]:
    """Verify a configured trail source over the window just ingested; counts per status."""
    flt = TrailFilter(source.accounts, source.regions, since=dt.datetime.fromisoformat(since) if since else None)
    store = open_store(source.location, lambda: clients("s3", source.aws))
    report = verify_trail(lake, store, flt, lambda region: clients("cloudtrail", replace(source.aws, region=region)))
    if report.problems:
        log.warning(report.paragraph(), extra={"event": "integrity_problems", "source": source.name})
    return {"source": source.name, "run_id": report.run_id, "problems": len(report.problems), **report.counts()}


def _ingest_lookup(
    cfg: Config, lake: Lake, source: LookupSource, clients: ClientFactory, now: dt.datetime
) -> tuple[dict[str, Any], str | None]:
    with _state(lake) as state:
        since = first_since(cfg, state, now)
    client = clients("cloudtrail", source.aws)
    progress = logged_progress(source.name, "events")
    checkpoint = f"lookup-events:{source.name}"
    summary = ingest_lookup_events(lake, client, source.region, since, now, source=checkpoint, progress=progress)
    progress.close()
    counts = {k: v for k, v in summary.totals.items() if k != "skipped_sources"}
    return counts, since.isoformat() if since else None


def _ingest_hsm(
    cfg: Config, lake: Lake, source: HsmSource, clients: ClientFactory, now: dt.datetime
) -> tuple[dict[str, Any], str | None]:
    with _state(lake) as state:
        since = first_since(cfg, state, now)
    hsm = _hsm_source(source, clients, since)
    progress = logged_progress(source.name, "entries")
    stats = run_hsm_ingest(lake, f"cloudhsm:{source.name}", hsm.batches, progress)
    progress.close()
    counts = {"entries": stats.entries, "kept": stats.written, "duplicates": stats.duplicates}
    counts["quarantined"] = stats.quarantined
    return counts, since.isoformat() if since else None


def _hsm_source(source: HsmSource, clients: ClientFactory, since: dt.datetime | None) -> CloudWatchSource | FileSource:
    def client(service: str) -> Any:
        return clients(service, source.aws)

    if source.exports:
        return open_source(source.exports, [], cluster_id=source.cluster_id, client=client)
    since_ms = int(since.timestamp() * 1000) if since else None
    return CloudWatchSource(client("logs"), list(source.log_groups), since_ms, cluster_id=source.cluster_id)


@contextmanager
def _state(lake: Lake) -> Iterator[IngestState]:
    state = IngestState(lake.state_dir / "ingest.sqlite")
    try:
        yield state
    finally:
        state.close()


# --- after the ingest -----------------------------------------------------------------------------------


def refresh_rollups(cfg: Config, lake: Lake) -> dict[str, Any]:
    """Store the new days' attribution and rebuild the dashboard's rollups (analytics.rollups.refresh_rollups)
    for a local lake."""
    if lake.remote:
        return {"status": "skipped", "reason": "rollups are written for local lakes only"}
    report = rollups.refresh_rollups(lake.uri, cfg.tenants)
    stored = report.attribution
    return {
        "status": report.status,
        "rows": dict(report.rows),
        "seconds": round(report.seconds, 3),
        "days_attributed": len(stored.written) if stored else 0,
    }


def detect(cfg: Config, lake: Lake, previous: dt.datetime | None) -> tuple[list[dict[str, Any]], dt.datetime | None]:
    """Store the new days' baselines, then the anomaly findings whose window touches [since, now) with their
    triage status (analytics/triage.py), and since (None: every hour was scored)."""
    con = connect(lake, cfg.tenants, read_only=False)  # keytrail's own writer: it stores baselines with COPY
    try:
        stored = store_baselines(con, baseline_params(cfg.anomaly_settings))
        since = None if cfg.anomalies_full else scoring_start(previous, cfg.anomalies_lookback, stored)
        found = find_anomalies(con, since=since, settings=cfg.anomaly_settings, stored=not cfg.anomalies_full)
        return list(triage.with_status(found, triage.actions(lake)).to_pylist()), since
    finally:
        con.close()


def scoring_start(
    previous: dt.datetime | None, lookback: dt.timedelta, stored: BaselineReport | None
) -> dt.datetime | None:
    """Where the anomaly window starts: the previous run's start minus `lookback`, or the start of the earliest
    day whose baselines were written this run, if earlier (its hours, and every later hour whose baseline it
    is part of, are scored again); None (every hour) on a first run. On an S3 lake nothing is stored: the window
    is the previous run's start minus `lookback`."""
    if previous is None:
        return None
    changed = stored.changed_days() if stored else []
    since = previous - lookback
    if changed:
        since = min(since, dt.datetime.fromisoformat(changed[0]).replace(tzinfo=dt.UTC))
    return since


def summarize(findings: list[dict[str, Any]], since: dt.datetime | None) -> dict[str, Any]:
    by_severity: dict[str, int] = {}
    by_detector: dict[str, int] = {}
    for f in findings:
        by_severity[f["severity"]] = by_severity.get(f["severity"], 0) + 1
        by_detector[f["detector"]] = by_detector.get(f["detector"], 0) + 1
    return {
        "since": since.isoformat() if since else None,
        "found": len(findings),
        "by_severity": by_severity,
        "by_detector": by_detector,
    }


def finish(result: NightlyResult, lake: Lake, state: IngestState) -> None:
    """Close the run record: the `runs` row, then a JSON copy in the lake for readers without the state."""
    result.ended_at = utcnow()
    result.status = "failed" if result.errors else "ok"
    record = result.record()
    state.end_run(result.run_id, result.status, record)
    try:
        write_run_record(lake, record)
    except Exception as err:  # noqa: BLE001 - the state row above is the record of truth
        log.warning(f"could not write the run record into the lake: {err}", extra={"event": "record_failed"})
    log.info(
        f"nightly run {result.status}",
        extra={
            "event": "run_done",
            "run_id": result.run_id,
            "status": result.status,
            "failed_sources": result.failed_sources,
            "errors": len(result.errors),
        },
    )


def write_run_record(lake: Lake, record: dict[str, Any]) -> None:
    tmp = lake.work_dir / "_staging" / f"nightly-{record['run_id']}.json"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(record, default=str, indent=2))
    lake.put_file(tmp, lake.root / RUNS_DIR / f"nightly-{record['run_id']}.json")


def read_runs(lake: Lake, limit: int = 30) -> list[dict[str, Any]]:
    """The latest nightly run records, newest first (for the dashboard's Data health page)."""
    path = lake.state_dir / "ingest.sqlite"
    if not path.exists():
        return []
    with _state(lake) as state:
        rows = state.db.execute(
            "SELECT stats FROM runs WHERE command = ? AND stats IS NOT NULL ORDER BY started_at DESC LIMIT ?",
            (COMMAND, limit),
        ).fetchall()
    return [json.loads(r[0]) for r in rows]


# --- dry run --------------------------------------------------------------------------------------------


def plan_nightly(
    cfg: Config, clients: ClientFactory = default_clients, now: dt.datetime | None = None, verbose: bool = False
) -> list[str]:
    """What a run would fetch, a line per source (and with `verbose` a line per file or stream), without writing
    anything (listing calls AWS, read-only)."""
    check_files(cfg)
    now = now or dt.datetime.now(dt.UTC)
    lake = open_lake(cfg)
    lines = [f"Lake: {lake.uri} (state {lake.state_dir})"]
    with _state(lake) if (lake.state_dir / "ingest.sqlite").exists() else _no_state() as state:
        for source in cfg.sources:
            try:
                lines += [line for line in _plan_source(cfg, state, source, clients, now) if verbose or line[0] != " "]
            except Exception as err:  # noqa: BLE001 - show every source's plan
                lines.append(f"{source.name}: cannot list ({_describe(err)})")
    return lines


@contextmanager
def _no_state() -> Iterator[None]:
    yield None


def _plan_source(
    cfg: Config, state: IngestState | None, source: Source, clients: ClientFactory, now: dt.datetime
) -> list[str]:
    since = first_since(cfg, state, now) if state else (now - cfg.first_run if cfg.first_run else None)
    if isinstance(source, TrailSource):
        since = trail_window(cfg, state, source, now) if state else since
        flt = _trail_filter(source, since)
        if source.location.startswith("s3://"):
            objects = list(S3Trail(clients("s3", source.aws), source.location).list_objects(flt))
        else:
            objects = list(list_local(Path(source.location), flt))
        known = state.known(STATE_SOURCE) if state else {}
        new = [o for o in objects if not state or state.is_new(known, o)]
        size = sum(o.size or 0 for o in new) / 1e6
        head = f"{source.name}: would fetch {len(new)} new of {len(objects)} trail files ({size:.1f} MB)"
        return [head + f" listed from {since:%Y-%m-%d}" if since else head] + [f"  {o.key}" for o in new]
    if isinstance(source, LookupSource):
        checkpoint = state.checkpoint(f"lookup-events:{source.name}", "") if state else None
        start = checkpoint["end"] if checkpoint else (since.isoformat() if since else "90 days back")
        return [f"{source.name}: would call LookupEvents in {source.region} from {start} to {now.isoformat()}"]
    hsm = _hsm_source(source, clients, since)
    if isinstance(hsm, FileSource):
        files = hsm.plan(state)
        return [f"{source.name}: would read {len(files)} export files"] + [f"  {f.url}" for f in files]
    lines = [f"{source.name}: would read CloudHSM log streams"]
    for group, stream in hsm.plan():
        checkpoint = state.checkpoint(group, stream) if state else None
        if checkpoint and checkpoint.get("timestamp"):
            start = dt.datetime.fromtimestamp(checkpoint["timestamp"] / 1000, dt.UTC).isoformat()
        else:
            start = since.isoformat() if since else "the beginning"
        lines.append(f"  {group}/{stream} from {start}")
    return lines
