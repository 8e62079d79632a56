"""The period report an auditor keeps (`keytrail report`): figures from the SQL in `analytics/sql/report/`, the
period's findings, the evidence completeness of each source stream and a manifest (the SHA-256 of every lake
file the figures were computed from), rendered as one self-contained HTML file whose JSON block lets
`keytrail report verify` recompute and compare them."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from analytics.anomalies import find_anomalies
from analytics.attribution_store import store_dir
from analytics.queries import list_queries, run_query
from analytics.triage import actions, with_status
from ingest.errors import ConfigError
from ingest.integrity.hsm_sequence import lake_sequence_findings
from ingest.lake.schema import TABLES
from ingest.lake.store import Lake

TEMPLATE = Path(__file__).resolve().parent / "templates" / "report.html"
DATA_ID = "keytrail-report-data"
DATA_BLOCK = re.compile(rf'<script type="application/json" id="{DATA_ID}">(.*?)</script>', re.S)
FINDING_COLUMNS = (
    "finding_id", "status", "status_note", "status_by", "detector", "severity", "tenant_id", "key", "principal",
    "window_start", "window_end", "explanation",
)  # fmt: skip
Rows = list[dict[str, Any]]
HINTS = {
    "not verified": " (no digest verification has seen them: run keytrail verify cloudtrail on the trail)",
    "hash only": " (SHA-256 checked, no signature: a copy outside S3; verify the trail bucket itself)",
}


@dataclass(frozen=True)
class Scope:
    """What a report covers: one tenant (None: every tenant) and the UTC period [start, end)."""

    tenant: str | None
    start: dt.datetime
    end: dt.datetime

    @property
    def label(self) -> str:
        """The period as a file-name part: `2026-11` for a calendar month, else `2026-11-03_2026-11-10`."""
        first_of_next = (self.start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        if self.start == self.start.replace(day=1, hour=0, minute=0, second=0, microsecond=0) and self.end == (
            first_of_next
        ):
            return self.start.strftime("%Y-%m")
        return f"{self.start:%Y-%m-%d}_{self.end:%Y-%m-%d}"

    def as_json(self) -> dict[str, str | None]:
        return {"tenant": self.tenant, "start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Scope:
        return cls(doc["tenant"], dt.datetime.fromisoformat(doc["start"]), dt.datetime.fromisoformat(doc["end"]))


def month_scope(tenant: str | None, period: str) -> Scope:
    """The scope of a calendar month `YYYY-MM` (UTC); ConfigError naming the expected form otherwise."""
    try:
        start = dt.datetime.strptime(period, "%Y-%m").replace(tzinfo=dt.UTC)
    except ValueError:
        raise ConfigError(f"--period {period!r} is not a month: use YYYY-MM, e.g. 2026-11") from None
    return Scope(tenant, start, (start + dt.timedelta(days=32)).replace(day=1))


def plain(value: Any) -> Any:
    """A query value as JSON: times as ISO text, decimals as floats, lists item by item."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def rows(table: pa.Table) -> Rows:
    return [{k: plain(v) for k, v in row.items()} for row in table.to_pylist()]


def figures(con: duckdb.DuckDBPyConnection, scope: Scope) -> dict[str, Rows]:
    """Every query of analytics/sql/report over the scope, by name."""
    params = {"tenant": scope.tenant, "start": scope.start, "end": scope.end}
    return {
        name.rpartition("/")[2]: rows(run_query(con, name, params).to_arrow_table()) for name in list_queries("report")
    }


EVIDENCE_QUERIES = ("trail_files", "delivery_gaps", "hsm_streams", "quarantine")


def evidence(con: duckdb.DuckDBPyConnection, lake: Lake, scope: Scope) -> dict[str, Rows]:
    """The report's evidence completeness alone (the Evidence page): one verdict per source stream
    (`completeness`) and the rows behind the verdicts (trail files by verdict, delivery gaps, CloudHSM streams and
    sequence breaks, quarantine)."""
    params = {"tenant": scope.tenant, "start": scope.start, "end": scope.end}
    fig = {name: rows(run_query(con, f"report/{name}", params).to_arrow_table()) for name in EVIDENCE_QUERIES}
    gaps = hsm_gaps(lake, scope)
    return fig | {"hsm_sequence_breaks": gaps, "completeness": completeness(fig, gaps)}


def findings(con: duckdb.DuckDBPyConnection, lake: Lake, scope: Scope) -> Rows:
    """The anomaly findings overlapping the period (the detectors' default settings), most severe first, each with
    its triage status, note and reviewer (`keytrail findings`)."""
    found = with_status(find_anomalies(con, scope.start, scope.end, scope.tenant), actions(lake))
    return rows(found.select(list(FINDING_COLUMNS)))


def hsm_gaps(lake: Lake, scope: Scope) -> Rows:
    """CloudHSM sequence breaks (gap, reset, duplicate) whose later entry falls in the period."""
    if not lake.files("hsm_events"):
        return []
    found = rows(lake_sequence_findings(lake))
    start, end = scope.start.isoformat(), scope.end.isoformat()
    return [g for g in found if g["before_time"] and start <= _utc(g["before_time"]) < end]


def _utc(text: str) -> str:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC).isoformat()


def lake_files(lake: Lake) -> list[Path]:
    """Every file the report's figures read: the tables, the quarantine, the verification verdicts, the findings'
    triage actions, and the attribution stored per day."""
    found = [f for table in TABLES for f in lake.files(table)]
    found += lake.list_parquet(lake.quarantine_dir) + lake.files("trail_verification")
    found += lake.list_parquet(lake.findings_dir)
    return sorted(set(found + lake.list_parquet(store_dir(lake))))


def sha256_of(lake: Lake, path: Path) -> str:
    digest = hashlib.sha256()
    with lake.fs.open_input_stream(path.as_posix()) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def manifest(lake: Lake) -> dict[str, str]:
    """Lake-relative path → SHA-256 of every file the figures were computed from."""
    return {path.relative_to(lake.root).as_posix(): sha256_of(lake, path) for path in lake_files(lake)}


def completeness(fig: dict[str, Rows], gaps: Rows) -> Rows:
    """One verdict per source stream with its reasons: complete, incomplete, or no events."""
    trails: dict[tuple[str, str], Rows] = {}
    for row in fig["trail_files"]:
        trails.setdefault((row["account"], row["region"]), []).append(row)
    verdicts = [_trail_verdict(name, found, fig["delivery_gaps"]) for name, found in sorted(trails.items())]
    silent = {g["part"] for g in fig["delivery_gaps"] if g["source"] == "cloudhsm"}
    hsms = sorted({g["hsm_id"] for g in gaps} | {h["hsm_id"] for h in fig["hsm_streams"]} | silent)
    verdicts += [_hsm_verdict(hsm, gaps, fig["delivery_gaps"]) for hsm in hsms]
    quarantined = sum(q["records"] for q in fig["quarantine"])
    if quarantined:
        reasons = [f"{q['records']} {q['table_name']} record(s): {q['reason']}" for q in fig["quarantine"]]
        verdicts.append({"stream": "quarantine (all periods)", "verdict": "incomplete", "reasons": reasons})
    return verdicts


def _trail_verdict(trail: tuple[str, str], found: Rows, delivery: Rows) -> dict[str, Any]:
    events = sum(r["events"] for r in found)
    verified = sum(r["events"] for r in found if r["verification"] == "verified")
    reasons = [f"{verified / events:.1%} of {events:,} KMS events rest on digest-verified trail files"]
    reasons += [_files_reason(r) for r in found if r["verification"] != "verified"]
    days = [g["day"] for g in delivery if g["source"] == "cloudtrail" and (g["stream"], g["part"]) == trail]
    reasons += [f"no events delivered on {', '.join(days)}"] if days else []
    complete = verified == events and not days
    return {"stream": f"CloudTrail {trail[0]} {trail[1]}", "verdict": _word(complete), "reasons": reasons}


def _files_reason(row: dict[str, Any]) -> str:
    kind = row["verification"]
    return f"{row['files']:,} file(s), {row['events']:,} event(s): {kind}{HINTS.get(kind, '')}"


def _hsm_verdict(hsm: str, gaps: Rows, delivery: Rows) -> dict[str, Any]:
    breaks = [g for g in gaps if g["hsm_id"] == hsm]
    reasons = [f"{g['kind']} after sequence {g['after_seq']} ({g['missing'] or 0} missing)" for g in breaks]
    days = [g["day"] for g in delivery if g["source"] == "cloudhsm" and g["part"] == hsm]
    reasons += [f"no events delivered on {', '.join(days)}"] if days else []
    return {"stream": f"CloudHSM {hsm}", "verdict": _word(not reasons), "reasons": reasons or ["sequence unbroken"]}


def _word(complete: bool) -> str:
    return "complete" if complete else "incomplete"


@dataclass(frozen=True)
class Context:
    """Where the figures came from: the lake, the tenants file and its SHA-256."""

    lake: str
    tenants_file: str | None
    tenants_sha256: str | None


def context_of(con: duckdb.DuckDBPyConnection) -> Context:
    lake, tenants_file = con.sql("SELECT (SELECT uri FROM lake_info), tenants_file FROM settings").fetchall()[0]
    sha = hashlib.sha256(Path(tenants_file).read_bytes()).hexdigest() if tenants_file else None
    return Context(lake if Lake.is_remote(lake) else str(Path(lake).resolve()), tenants_file, sha)


def compute(con: duckdb.DuckDBPyConnection, lake: Lake, scope: Scope) -> dict[str, Any]:
    """Everything `verify` recomputes: the figures, findings, completeness and manifest (no generation time)."""
    fig = figures(con, scope)
    gaps = hsm_gaps(lake, scope)
    return {
        "scope": scope.as_json(),
        "tenants_sha256": context_of(con).tenants_sha256,
        "figures": fig | {"hsm_sequence_breaks": gaps, "findings": findings(con, lake, scope)},
        "completeness": completeness(fig, gaps),
        "manifest": manifest(lake),
    }


def build(con: duckdb.DuckDBPyConnection, lake: Lake, scope: Scope) -> dict[str, Any]:
    """The report's data: what `compute` returns plus where, by which version and when."""
    about = asdict(context_of(con)) | {"keytrail_version": version("keytrail")}
    return compute(con, lake, scope) | {"about": about, "generated_at": dt.datetime.now(dt.UTC).isoformat()}


def embedded(report_html: str, where: str) -> dict[str, Any]:
    """The data block of a report's HTML; ConfigError naming the file when it has none."""
    found = DATA_BLOCK.search(report_html)
    if not found:
        raise ConfigError(f"{where} has no keytrail report data block: is it a report written by keytrail report?")
    doc: dict[str, Any] = json.loads(found.group(1))
    return doc


def differences(kept: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between a report's data and the data recomputed now, one line each (empty: all match)."""
    old, new = kept["manifest"], now["manifest"]
    lines = [f"file changed: {p}" for p in sorted(old.keys() & new.keys()) if old[p] != new[p]]
    lines += [f"file missing: {p}" for p in sorted(old.keys() - new.keys())]
    lines += [f"file added: {p}" for p in sorted(new.keys() - old.keys())]
    if kept["tenants_sha256"] != now["tenants_sha256"]:
        lines.append("the tenants file's SHA-256 differs")
    lines += [f"figures differ: {n}" for n in sorted(now["figures"]) if kept["figures"].get(n) != now["figures"][n]]
    lines += ["completeness differs"] if kept["completeness"] != now["completeness"] else []
    return lines
