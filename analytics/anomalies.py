"""Anomaly detectors: one SQL file each under `analytics/sql/anomalies/`, run with settings, combined into one
relation with the same columns, and exposed as the `anomalies` view.

Every detector returns the offending rows (none means clean) with the columns in `COLUMNS`. Thresholds and
windows come from the `[anomalies]` settings; `DEFAULTS` holds their documented defaults (docs/anomalies.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from analytics import baselines
from ingest.errors import ConfigError, KeytrailError
from ingest.integrity.hsm_sequence import SEQUENCE_SQL

SQL_DIR = Path(__file__).parent / "sql" / "anomalies"
SEVERITIES = ("info", "low", "medium", "high", "critical")

COLUMNS: dict[str, str] = {
    "detector": "VARCHAR",
    "severity": "VARCHAR",
    "tenant_id": "VARCHAR",
    "key": "VARCHAR",
    "principal": "VARCHAR",
    "window_start": "TIMESTAMPTZ",
    "window_end": "TIMESTAMPTZ",
    "observed": "DOUBLE",
    "expected": "DOUBLE",
    "score": "DOUBLE",
    "explanation": "VARCHAR",
    "evidence": "VARCHAR[]",
}

# What find_anomalies and run_detectors return: the detectors' columns after the finding's stable id.
FINDING_COLUMNS: dict[str, str] = {"finding_id": "VARCHAR", **COLUMNS}
# What identifies a finding across runs. The window is named by its start: a finding whose window grows as data
# arrives (a trail still silent the next night) keeps its id, its triage and its one alert.
ID_FIELDS = ("detector", "tenant_id", "key", "principal", "window_start")
# Detectors that can report several findings for the same fields, and the column that tells them apart: first_seen
# finds a new principal, IP range, region and user agent at one moment, and its explanation names which (from the
# data's identity only, no counts); key_destruction_or_disable reports each call, with its one event id as evidence
# (two calls in one second on a custom key store name no key).
ID_EXTRA = {"first_seen": "explanation", "key_destruction_or_disable": "evidence"}

DEFAULTS: dict[str, Any] = {
    # all detectors
    "evidence_limit": 20,  # event ids kept per finding
    # volume_spike (and the baselines of kms_logging_gap)
    "spike_operation_classes": ["crypto"],
    "spike_min_volume": 20,  # operations in the hour; quieter hours never alarm
    "spike_min_ratio": 3.0,  # observed must be at least this multiple of the baseline and of the usual peak
    "spike_peak_quantile": 0.9,  # the usual peak: this quantile of the same hours in the baseline
    "spike_min_score": 6.0,  # (observed - baseline) / max(1.4826 * MAD, sqrt(baseline), 1)
    "spike_baseline_days": 7,  # same hour on each of the previous N days
    "spike_baseline_weeks": 4,  # same hour of the week over the previous N weeks
    "spike_min_history_days": 7,  # a series younger than this has no baseline yet
    "spike_neighbour_hours": 1,  # each past sample is the busiest hour within this many hours of the same hour
    "drop_min_hourly": 2.0,  # a silent hour counts when the tenant's baseline for it is at least this
    "drop_min_hours": 3,  # consecutive silent busy hours that make a drop
    "drop_min_expected": 20.0,  # operations the silent hours together should have had
    "drop_max_odds": 1e-3,  # the run's silence odds from the tenant's own past (product of each hour's share)
    # error_burst
    "error_code_pattern": "AccessDenied|Throttling|InvalidState|Disabled|KeyUnavailable|NotFound|"
    "InvalidCiphertext|IncorrectKey|InvalidGrant|InvalidKeyUsage|LimitExceeded",
    "error_min_count": 10,  # failed calls in the hour
    "error_min_ratio": 5.0,  # times the principal's average hourly errors
    "error_baseline_days": 7,
    "error_min_history_hours": 24,  # the lake's first hours have no baseline and are not scored
    # first_seen
    "first_seen_learning_days": 7,  # a tenant's first days: everything is new, nothing is reported
    "first_seen_ipv4_prefix": 24,
    "first_seen_evidence_hours": 24,
    "first_seen_operation_classes": ["crypto"],
    # unattributed_operation
    "unattributed_operation_classes": ["crypto"],
    "unattributed_sources": ["cloudtrail"],  # CloudHSM entries whose session is unknown are not reported
    "provider_accounts": [],  # the provider's own accounts, besides those owning keys in the lake
    # use_outside_access_window
    "access_window_gap_minutes": 60,  # calls further apart are separate findings
    # key_destruction_or_disable
    "destructive_operations": [
        "DisableKey",
        "ScheduleKeyDeletion",
        "DeleteImportedKeyMaterial",
        "ImportKeyMaterial",
        "PutKeyPolicy",
        "CreateGrant",
        "UpdateAlias",
        "DisconnectCustomKeyStore",
        "UpdateCustomKeyStore",
        "DeleteCustomKeyStore",
    ],
    "destructive_include_failed": False,
    # kms_logging_gap
    "gap_min_hours": 2,  # a trail silent for at least this long
    "gap_min_missing_events": 5,  # cross-account calls seen in other trails but missing from this one
    # hsm_failed_logins
    "hsm_login_min_failures": 3,
    "hsm_login_window_minutes": 10,
    # hsm_user_admin
    "hsm_admin_opcodes": [
        "CN_CREATE_USER",
        "CN_DELETE_USER",
        "CN_CHANGE_PSWD",
        "CN_CREATE_CO",
        "CN_CREATE_APPLIANCE_USER",
    ],
    "hsm_admin_ignore_users": [],
    # hsm_sequence_gap
    "hsm_gap_kinds": ["gap", "reset"],
    # kmsuser_without_kms
    "kmsuser_name": "kmsuser",
    "kmsuser_tolerance_minutes": 10,
    # access_still_open
    "access_revocation_grace_hours": 24,  # a path closed this long after revoked_at is a clean revocation
    # access_opened_unexpectedly
    "access_change_hours": [7, 19],  # the change window: UTC hours [from, to) in which paths are opened
    "access_learning_days": 7,  # the access logs' first days only teach who opens paths
}

_PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")
_COMMENT = re.compile(r"/\*.*?\*/|--[^\n]*", re.S)


class UnknownDetector(KeytrailError):
    """A detector name that has no SQL file."""

    exit_code = 2


class MissingRelation(KeytrailError):
    """A detector needs a table or view (key_operations, tenants, hsm_events, …) that is not there."""


def detector_names() -> list[str]:
    """Names of all detectors, one per `.sql` file."""
    return sorted(p.stem for p in SQL_DIR.glob("*.sql"))


def detector_sql(name: str) -> str:
    """The SQL text of one detector."""
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise UnknownDetector(f"no detector named {name!r}; choose from: {', '.join(detector_names())}")
    return path.read_text()


def detector_params(sql: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The named parameters a query uses, taken from settings (DuckDB rejects unused ones)."""
    names = set(_PARAM.findall(_COMMENT.sub("", sql)))
    return {name: settings[name] for name in sorted(names)}


def resolve_settings(settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults overlaid with the `[anomalies]` settings; an unknown or mistyped setting is a ConfigError."""
    merged = dict(DEFAULTS)
    for name, value in (settings or {}).items():
        if name not in DEFAULTS:
            raise ConfigError(f"unknown anomalies setting {name!r}; known settings: {', '.join(sorted(DEFAULTS))}")
        default = DEFAULTS[name]
        ok = isinstance(value, list) if isinstance(default, list) else isinstance(value, type(default))
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if not ok or (isinstance(default, int) and isinstance(value, bool) != isinstance(default, bool)):
            raise ConfigError(
                f"anomalies setting {name!r} must be a {type(default).__name__} like {default!r}, got {value!r}"
            )
        merged[name] = value
    return merged


def baseline_params(settings: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Per stored baseline, the settings its SQL reads (what `baselines.refresh_baselines` stores it for)."""
    resolved = resolve_settings(settings)
    return {name: detector_params(baselines.baseline_sql(name), resolved) for name in baselines.STORED}


def _relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.sql("SELECT table_name FROM information_schema.tables").fetchall()}


def ensure_relations(con: duckdb.DuckDBPyConnection) -> None:
    """Expose `hsm_sequence_gaps` (the CloudHSM integrity check, ingest/integrity/sql/hsm_sequence_gaps.sql) as a view
    when the connection has `hsm_events` but not the check yet."""
    present = _relations(con)
    if "hsm_sequence_gaps" not in present and "hsm_events" in present:
        con.execute(f"CREATE OR REPLACE TEMP VIEW hsm_sequence_gaps AS {SEQUENCE_SQL}")


def finding_id(finding: Mapping[str, Any]) -> str:
    """The stable id of a finding: the first 16 hex digits of the SHA-256 of its `ID_FIELDS` (and `ID_EXTRA`
    column, if its detector has one) as a compact JSON array (NULL spelled `null`, times in UTC as
    `YYYY-MM-DDTHH:MM:SS.ffffffZ`)."""
    extra = ID_EXTRA.get(str(finding.get("detector")))
    parts = [_canonical(finding.get(name)) for name in (*ID_FIELDS, *([extra] if extra else []))]
    text = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _canonical(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def with_ids(found: pa.Table) -> pa.Table:
    """`found` (the detectors' columns) with `finding_id` in front."""
    rows = found.select([*ID_FIELDS, *sorted(set(ID_EXTRA.values()))]).to_pylist()
    return found.add_column(0, "finding_id", pa.array([finding_id(r) for r in rows], pa.string()))


def empty_findings(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """No findings, with every column typed."""
    cols = ", ".join(f"NULL::{kind} AS {col}" for col, kind in FINDING_COLUMNS.items())
    return con.sql(f"SELECT {cols} LIMIT 0").to_arrow_table()


def detector_select(name: str) -> str:
    """The detector's query with its columns rounded and typed as `COLUMNS` (unordered)."""
    cols = ", ".join(
        f"round({col}, 3)::{kind} AS {col}" if kind == "DOUBLE" else f"{col}::{kind} AS {col}"
        for col, kind in COLUMNS.items()
    )
    return f"SELECT {cols} FROM (\n{detector_sql(name)}\n)"


def _select(name: str) -> str:
    # ordered by every column, so a detector gives the same rows in the same order on every run and thread count
    return f"{detector_select(name)} ORDER BY ALL"


def run_detector(
    con: duckdb.DuckDBPyConnection,
    name: str,
    settings: Mapping[str, Any] | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    stored: bool = True,
) -> pa.Table:
    """Run one detector; rows are findings (empty means clean), each with its stable `finding_id`. since/until
    bound the scored window; `stored` reads the baselines stored beside the lake (analytics/baselines.py) where
    they are current, else every baseline is aggregated from the events."""
    resolved = _scoring(settings, since, until)
    ensure_relations(con)
    with _needs_relations(name):
        _register_baselines(con, [name], resolved, stored)
    return _run(con, name, resolved)


def _scoring(
    settings: Mapping[str, Any] | None, since: dt.datetime | None, until: dt.datetime | None
) -> dict[str, Any]:
    """The resolved settings with the scored window."""
    return {**resolve_settings(settings), "score_from": since, "score_to": until}


def _register_baselines(
    con: duckdb.DuckDBPyConnection, names: list[str], resolved: Mapping[str, Any], stored: bool
) -> None:
    """The baselines the detectors `names` read, made together (a run of days attributed once for all)."""
    needs = baselines.needed(names)
    baselines.register_baselines(con, {b: detector_params(baselines.baseline_sql(b), resolved) for b in needs}, stored)


def _run(con: duckdb.DuckDBPyConnection, name: str, resolved: Mapping[str, Any]) -> pa.Table:
    """One detector's findings, its baselines registered."""
    sql = _select(name)
    with _needs_relations(name):
        return with_ids(con.sql(sql, params=detector_params(sql, resolved)).to_arrow_table())


@contextlib.contextmanager
def _needs_relations(name: str) -> Iterator[None]:
    try:
        yield
    except duckdb.CatalogException as err:
        raise MissingRelation(f"detector {name} needs a relation the connection lacks: {err}") from err


def checked_names(detectors: Iterable[str] | None) -> list[str]:
    """The chosen detectors (all by default); an unknown name is an UnknownDetector."""
    names = list(detectors) if detectors else detector_names()
    known = set(detector_names())
    for name in names:
        if name not in known:
            raise UnknownDetector(f"no detector named {name!r}; choose from: {', '.join(sorted(known))}")
    return names


def run_detectors(
    con: duckdb.DuckDBPyConnection,
    settings: Mapping[str, Any] | None = None,
    detectors: Iterable[str] | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    skip_missing: bool = True,
    stored: bool = True,
) -> tuple[pa.Table, list[str]]:
    """Run the chosen detectors (all by default); returns the combined findings and the detectors skipped
    because a relation they read is missing (e.g. no CloudHSM logs in the lake)."""
    names = checked_names(detectors)
    resolved = _scoring(settings, since, until)
    ensure_relations(con)
    shared = _registered_together(con, names, resolved, stored)
    tables, skipped = [], []
    for name in names:
        try:
            tables.append(
                _run(con, name, resolved) if shared else run_detector(con, name, settings, since, until, stored)
            )
        except MissingRelation:
            if not skip_missing:
                raise
            skipped.append(name)
    if not tables:
        return empty_findings(con), skipped
    return pa.concat_tables(tables), skipped


def _registered_together(
    con: duckdb.DuckDBPyConnection, names: list[str], resolved: Mapping[str, Any], stored: bool
) -> bool:
    """Register the baselines of all the detectors at once; False when a relation one of them reads is missing
    (a notebook's hand-made tables: then each detector registers its own, and the one that cannot is skipped)."""
    try:
        _register_baselines(con, names, resolved, stored)
    except duckdb.CatalogException:
        return False
    return True


def register_anomalies(
    con: duckdb.DuckDBPyConnection,
    settings: Mapping[str, Any] | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[str]:
    """Run every detector once and expose the findings as the `anomalies` view on `con`; returns skipped ones."""
    found, skipped = run_detectors(con, settings, since=since, until=until)
    con.register("_anomalies_found", found)
    con.execute("CREATE OR REPLACE TEMP TABLE _anomalies AS SELECT * FROM _anomalies_found")
    con.unregister("_anomalies_found")
    con.execute("CREATE OR REPLACE TEMP VIEW anomalies AS SELECT * FROM _anomalies")
    return skipped


def find_anomalies(
    con: duckdb.DuckDBPyConnection,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    tenant: str | None = None,
    detectors: Iterable[str] | None = None,
    min_severity: str | None = None,
    settings: Mapping[str, Any] | None = None,
    stored: bool = True,
) -> pa.Table:
    """Findings of the chosen detectors whose window touches [since, until), for one tenant and at or above a
    severity, most severe first then oldest first (`stored`: see run_detector)."""
    found, _ = run_detectors(con, settings, detectors, since, until, stored=stored)
    return filter_findings(con, found, since, until, tenant, min_severity)


def filter_findings(
    con: duckdb.DuckDBPyConnection,
    found: pa.Table,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    tenant: str | None = None,
    min_severity: str | None = None,
) -> pa.Table:
    """The findings of `found` whose window touches [since, until), of `tenant`, at or above `min_severity`, most
    severe first then oldest first (find_anomalies' order, whichever engine ran the detectors)."""
    if min_severity is not None and min_severity not in SEVERITIES:
        raise ConfigError(f"unknown severity {min_severity!r}; choose from: {', '.join(SEVERITIES)}")
    rank = SEVERITIES.index(min_severity) if min_severity else 0
    con.register("_found", found)
    try:
        return con.sql(
            """
            SELECT * FROM _found
            WHERE ($tenant::VARCHAR IS NULL OR tenant_id = $tenant)
              AND list_position($severities, severity) > $rank
              AND ($since::TIMESTAMPTZ IS NULL OR window_end >= $since)
              AND ($until::TIMESTAMPTZ IS NULL OR window_start < $until)
            ORDER BY list_position($severities, severity) DESC, window_start, detector, tenant_id, key, principal,
                finding_id
            """,
            params={"tenant": tenant, "severities": list(SEVERITIES), "rank": rank, "since": since, "until": until},
        ).to_arrow_table()
    finally:
        con.unregister("_found")


# ---------- scoring against labelled ground truth (bench/detect.py and tests)

MATCH_TOLERANCE = dt.timedelta(hours=1)
_SESSION = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+$")


def _same_principal(a: str, b: str) -> bool:
    """Equal, counting an assumed-role session ARN as its role's ARN."""

    def role(arn: str) -> str:
        m = _SESSION.match(arn)
        return f"arn:{m[1]}:iam::{m[2]}:role/{m[3]}" if m else arn

    return role(a) == role(b)


def _same_key(a: str, b: str) -> bool:
    """Equal, or one names the other's last part (`hsm:<cluster>:262207` and `262207`)."""
    return a == b or a.endswith(":" + b) or b.endswith(":" + a) or a.endswith("/" + b) or b.endswith("/" + a)


def matches_case(found: Mapping[str, Any], case: Mapping[str, Any], tolerance: dt.timedelta = MATCH_TOLERANCE) -> bool:
    """Whether a finding detects a labelled case: same detector, windows overlapping (within `tolerance`), and
    either a shared evidence event id or agreement on every one of tenant, key and principal that both name."""
    if found["detector"] != case["detector"]:
        return False
    if found["window_start"] - tolerance > case["window_end"] or found["window_end"] + tolerance < case["window_start"]:
        return False
    if set(found["evidence"] or []) & set(case["event_ids"]):
        return True
    checks = (("tenant_id", lambda a, b: a == b), ("key", _same_key), ("principal", _same_principal))
    return all(not found.get(f) or not case.get(f) or same(found[f], case[f]) for f, same in checks)


def score(found: Iterable[Mapping[str, Any]], cases: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per detector: cases, findings, true positives (findings matching a case), recall and precision.
    A finding that matches no case is a false positive; a case no finding matches is missed."""
    found, cases = list(found), list(cases)
    rows = []
    for name in sorted({f["detector"] for f in found} | {c["detector"] for c in cases}):
        mine = [f for f in found if f["detector"] == name]
        truth = [c for c in cases if c["detector"] == name]
        hits = [f for f in mine if any(matches_case(f, c) for c in truth)]
        caught = [c for c in truth if any(matches_case(f, c) for f in mine)]
        rows.append(
            {
                "detector": name,
                "cases": len(truth),
                "findings": len(mine),
                "true_positives": len(hits),
                "recall": len(caught) / len(truth) if truth else 1.0,
                "precision": len(hits) / len(mine) if mine else 1.0,
                "missed": [c["case_id"] for c in truth if c not in caught],
            }
        )
    return rows


def read_ground_truth(path: str | Path) -> list[dict[str, Any]]:
    """The labelled cases of a ground-truth `anomalies.csv` (event ids `;`-separated, times ISO 8601 UTC)."""
    import csv

    with open(path, newline="") as fh:
        cases = list(csv.DictReader(fh))
    for c in cases:
        c["event_ids"] = [e for e in c["event_ids"].split(";") if e]
        for f in ("window_start", "window_end"):
            c[f] = dt.datetime.fromisoformat(c[f].replace("Z", "+00:00"))
    return cases
