"""Attribution stored once: per lake day, the attributed hourly usage and the references the maps resolve.

Attributing every event again for every question costs a scan of the whole lake with its joins. So each UTC day
of events is attributed once, after the ingest that brought it, and three small results are written beside the
lake (`keytrail attribute`, the nightly job and `keytrail dashboard` do it):

    _attribution/event_date=2026-11-02/lake_refs-<signature>.parquet
                                       primary_copies-<signature>.parquet
                                       attributed_usage-<signature>.parquet

- `lake_refs` (analytics/sql/lake_refs.sql): the day's distinct identities, accounts, keys and key stores; a
  session resolves its attribution maps from these rows instead of scanning every event.
- `primary_copies` (analytics/sql/primary_copies.sql): per cross-account call of the day, the recipient whose copy
  counts; `key_operations` joins it on the day, so a query on some days reads only their files, and no session
  groups every call of the lake. Both copies of a call carry one eventTime, so a copy delivered a day later is a
  new file in the same day: that day's signature changes and its primary copies are computed again.
- `attributed_usage` (analytics/sql/attributed_usage.sql): the day's usage per hour, tenant, rule, source, key,
  operation and outcome; usage_hourly, usage_daily, tenant_cost and `keytrail usage` sum it.

A file's name is the signature of what its rows depend on: the day's Parquet files in kms_events and
hsm_events (names and sizes: lake files are immutable) and the analytics code and SQL; for attributed_usage
also the tenants file and the attribution maps the lake itself feeds (aliases and custom key stores in
`key_map`, the roles learned for unique ids in `principal_ids`, backing key handles in `hsm_key_map`,
`hsm_orphan_sessions`). A new file in the day, an edited tenants.toml, a new alias, a role learned from another
day's copies or an upgrade changes the name, and the day is computed again. `register_stored` makes each view from
the files whose name still matches and computes the other days on the fly, so a stale or missing day is slower,
never wrong.

This module is the store's layout, read by `connect()`; analytics/attribute.py writes it.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import duckdb

from analytics.queries import literal, load_sql
from ingest.integrity.hsm_sequence import SEQUENCE_SQL
from ingest.lake.schema import TABLES
from ingest.lake.store import Lake

STORE_DIR = "_attribution"
# What is stored per day, in the order it is computed (attributed_usage needs the maps lake_refs feeds).
STORED = ("lake_refs", "primary_copies", "attributed_usage")
# Lake-derived maps whose content changes the attribution of days already stored.
# principal_ids: a role learned from another day's copies attributes this day's owner-only copies.
# hsm_key_map: a CreateKey delivered after the CloudHSM day it ties that day's backing-key work to a tenant.
# (Not context_map: its glob values are resolved against probes of the events themselves, so a new probe is in a
# new day's files and changes no stored day.)
LAKE_MAPS = ("key_map", "principal_ids", "hsm_orphan_sessions", "hsm_key_map")


def store_dir(lake: Lake) -> Path:
    """The stored-attribution folder of a (local) lake."""
    return lake.root / STORE_DIR


@functools.cache
def code_digest() -> str:
    """A hash of the analytics code and SQL, the Spark engine's included (and the HSM sequence check the detectors
    read): a new attribution rule or detector, on either engine, makes stored results stale."""
    digest = hashlib.sha256()
    base = Path(__file__).resolve().parent
    for f in sorted([*base.rglob("*.sql"), *base.rglob("*.py")]):
        digest.update(f"{f.relative_to(base)}\0".encode() + f.read_bytes())
    digest.update(SEQUENCE_SQL.encode())
    return digest.hexdigest()


def basis(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """The signature of what every day of `name` depends on besides the day's own files."""
    digest = hashlib.sha256(f"{name}\0{code_digest()}".encode())
    if name == "attributed_usage":
        path = con.sql("SELECT tenants_file FROM settings").fetchall()[0][0]
        digest.update(b"tenants\0" + (Path(path).read_bytes() if path else b""))
        for table in LAKE_MAPS:
            rows = con.sql(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
            digest.update(f"{table}\0{rows!r}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class LakeDays:
    """A local lake and, per event day (ISO date), its Parquet files as `table/name\0size`: listed once, and
    what every stored file's signature is made of."""

    lake: Lake
    files: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, lake: Lake) -> LakeDays:
        files: dict[str, list[str]] = {}
        for table in TABLES:
            for day, paths in lake.partitions(table).items():
                files.setdefault(day.isoformat(), []).extend(f"{table}/{p.name}\0{p.stat().st_size}" for p in paths)
        return cls(lake, {day: tuple(sorted(names)) for day, names in sorted(files.items())})

    def signatures(self, basis_signature: str) -> dict[str, str]:
        """Per day, the signature its stored file must be named by."""
        return {
            day: hashlib.sha256("\n".join([basis_signature, *names]).encode()).hexdigest()[:32]
            for day, names in self.files.items()
        }


def stored_file(lake: Lake, name: str, day: str, signature: str) -> Path:
    return store_dir(lake) / f"event_date={day}" / f"{name}-{signature}.parquet"


def split_days(lake: Lake, name: str, signatures: dict[str, str]) -> tuple[dict[str, Path], list[str]]:
    """The days whose stored file matches (day → file), and the days to compute."""
    stored = {day: stored_file(lake, name, day, sig) for day, sig in signatures.items()}
    fresh = {day: path for day, path in stored.items() if path.is_file()}
    return fresh, [day for day in signatures if day not in fresh]


def stored_days(con: duckdb.DuckDBPyConnection, lake: Lake) -> tuple[int, int]:
    """(days whose stored usage is current, days that `keytrail attribute` would attribute again)."""
    signatures = LakeDays.of(lake).signatures(basis(con, "attributed_usage"))
    fresh, stale = split_days(lake, "attributed_usage", signatures)
    return len(fresh), len(stale)


def register_stored(con: duckdb.DuckDBPyConnection, days: LakeDays | None, name: str, kind: str = "VIEW") -> None:
    """The view (or table, read once) `name`: its stored days read from their files, the other days computed by
    its SQL (all of them for an S3 lake, `days` None, where nothing is stored). The view `computed_<name>` always
    computes."""
    con.execute(f"CREATE OR REPLACE VIEW computed_{name} AS {load_sql(name)}")
    if days is None:
        con.execute(f"CREATE OR REPLACE {kind} {name} AS SELECT * FROM computed_{name}")
        return
    fresh, stale = split_days(days.lake, name, days.signatures(basis(con, name)))
    columns = ", ".join(f'"{c}"' for c in con.sql(f"SELECT * FROM computed_{name}").columns)
    parts = []
    if fresh:
        files = ", ".join(literal(str(p)) for p in fresh.values())
        parts.append(f"SELECT {columns} FROM read_parquet([{files}])")
    if stale or not fresh:
        parts.append(f"SELECT {columns} FROM computed_{name}{day_filter(stale) if fresh else ''}")
    con.execute(f"CREATE OR REPLACE {kind} {name} AS {' UNION ALL '.join(parts)}")


def day_filter(days: list[str]) -> str:
    """A WHERE clause on `day` for DuckDB to prune the lake's date partitions with (dates from file names)."""
    return " WHERE day IN (" + ", ".join(f"DATE {literal(d)}" for d in days) + ")"
