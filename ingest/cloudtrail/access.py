"""Access events: the CloudTrail records that open, change or close a path to the keys (docs/access.md).

The writer hands over each batch's parsed records (`parsed`, with each record's JSON text); the few whose event
names can open or close a path — VPC peering, Transit Gateway attachments, security-group ingress rules, CloudHSM
cluster and HSM calls, KMS grants, key policies and custom key stores — are typed by sql/access_rows.sql and
written to the lake's `access_events` table, each event once. The other non-KMS records stay skipped and counted.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ingest.lake.schema import ACCESS_EVENTS
from ingest.lake.store import Lake, quarantine_rows

SQL_DIR = Path(__file__).parent / "sql"
TABLE = "access_events"
# The event names sql/access_rows.sql types (by event source there: ec2, cloudhsm, kms).
EVENT_NAMES = (
    "CreateVpcPeeringConnection", "AcceptVpcPeeringConnection", "DeleteVpcPeeringConnection",
    "RejectVpcPeeringConnection", "CreateTransitGatewayVpcAttachment", "AcceptTransitGatewayVpcAttachment",
    "DeleteTransitGatewayVpcAttachment", "RejectTransitGatewayVpcAttachment", "AuthorizeSecurityGroupIngress",
    "RevokeSecurityGroupIngress", "ModifySecurityGroupRules", "CreateCluster", "DeleteCluster", "CreateHsm",
    "DeleteHsm", "RestoreBackup", "CopyBackupToRegion", "DeleteBackup", "CreateGrant", "RetireGrant", "RevokeGrant",
    "PutKeyPolicy", "CreateKey", "CreateCustomKeyStore", "ConnectCustomKeyStore", "DisconnectCustomKeyStore",
    "UpdateCustomKeyStore", "DeleteCustomKeyStore",
)  # fmt: skip


class BatchCounts(Protocol):
    """The writer's per-batch counts (writer.BatchResult), as far as access events change them."""

    counts: dict[str, Any]
    skipped_sources: Counter[str]
    access_events: int


@dataclass
class Landed:
    """What one batch gave access_events: events written, and records quarantined per (source object, source)."""

    events: int = 0
    quarantined: Counter[tuple[str, str]] = field(default_factory=Counter)

    def count_into(self, result: BatchCounts) -> None:
        """Add to the batch's counts: a quarantined access record was counted as a skipped non-KMS record."""
        result.access_events += self.events
        for (source_object, event_source), n in self.quarantined.items():
            counts = result.counts[source_object]
            counts.quarantined, counts.skipped = counts.quarantined + n, counts.skipped - n
            result.skipped_sources[event_source] -= n
            result.skipped_sources += Counter()  # drop a source whose count fell to 0


@functools.cache
def load_sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text()


def land_access(con: duckdb.DuckDBPyConnection, lake: Lake, tag: str, floor: dt.date | None) -> Landed:
    """Write the access events among `parsed` (the writer's batch) that the lake does not hold yet, and quarantine
    the ones that cannot land (with the reason and their text)."""
    rows = access_rows(con)
    bad = rows.filter(pc.invert(pc.is_null(rows.column("reason"))))
    lake.write_quarantine(quarantine_rows(TABLE, iter(_bad_records(con, bad))), tag)
    good = rows.filter(pc.is_null(rows.column("reason"))).select(ACCESS_EVENTS.names)
    fresh = _fresh(con, lake, good, floor)
    for day in sorted(set(fresh.column("event_date").to_pylist())):
        part = fresh.filter(pc.equal(fresh.column("event_date"), day)).select(ACCESS_EVENTS.names)
        lake.write_partition(TABLE, day, part, tag)
    sources = zip(bad.column("source_object").to_pylist(), bad.column("event_source").to_pylist(), strict=True)
    return Landed(int(fresh.num_rows), Counter(sources))


def access_rows(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """The access_events columns (and `reason`) of the access records among `parsed`."""
    con.execute(load_sql("access_macros"))
    con.execute(
        """CREATE OR REPLACE TEMP TABLE access_records AS SELECT source_object, record_index, raw AS rec FROM parsed
           WHERE reason IS NULL AND list_contains($names, event_name)""",
        {"names": list(EVENT_NAMES)},
    )
    return con.sql(load_sql("access_rows")).to_arrow_table()


def _bad_records(con: duckdb.DuckDBPyConnection, bad: pa.Table) -> list[tuple[str, int | None, str, str | None]]:
    """(source_object, record_index, reason, original text) of the access records that cannot land."""
    if bad.num_rows == 0:
        return []
    con.register("access_bad", bad.select(["source_object", "record_index", "reason"]))
    try:
        return con.execute(
            """SELECT b.source_object, b.record_index, b.reason, r.rec FROM access_bad b
               JOIN access_records r USING (source_object, record_index) ORDER BY ALL"""
        ).fetchall()
    finally:
        con.unregister("access_bad")


def _fresh(con: duckdb.DuckDBPyConnection, lake: Lake, good: pa.Table, floor: dt.date | None) -> pa.Table:
    """The rows whose event id neither the lake (same event date) nor an earlier row of the batch holds, on or
    after the retention floor, with their `event_date`."""
    con.register("access_good", good)
    try:
        days = [d for (d,) in con.execute("SELECT DISTINCT event_time::DATE FROM access_good").fetchall()]
        con.register("access_known", _known_ids(lake, days))
        return con.sql(
            """SELECT *, event_time::DATE AS event_date FROM access_good g
               WHERE ($floor::DATE IS NULL OR event_time::DATE >= $floor)
                 AND NOT EXISTS (SELECT 1 FROM access_known k WHERE k.event_id = g.event_id)
               QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY source_object, record_index) = 1
               ORDER BY event_time, event_id""",
            params={"floor": floor},
        ).to_arrow_table()
    finally:
        con.unregister("access_good")
        con.unregister("access_known")


def _known_ids(lake: Lake, days: list[dt.date]) -> pa.Table:
    """The event ids access_events already holds on these days."""
    files = [f for day in days for f in lake.files(TABLE, day)]
    schema = pa.schema([ACCESS_EVENTS.field("event_id")])
    return lake.dataset(files, schema).to_table() if files else schema.empty_table()
