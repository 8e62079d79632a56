"""Small hand-written lakes for tests and examples: rows with sensible defaults, written with `Lake`.

write_events(lake_dir, kms=[kms_row("Decrypt", principal_arn=…)], hsm=[hsm_row("CN_LOGIN", user_name=…)])
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections import defaultdict
from typing import Any

import pyarrow as pa

from ingest.lake.schema import HSM_EVENTS, KMS_EVENTS
from ingest.lake.store import Lake

T0 = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
OWNER = "111122223333"
KEY_ARN = f"arn:aws:kms:us-east-1:{OWNER}:key/00000000-0000-0000-0000-000000000001"
_ids = itertools.count(1)


def kms_row(event_name: str = "Decrypt", **fields: Any) -> dict[str, Any]:
    """A kms_events row: a successful call by an IAM user of the key owner's account unless `fields` say else."""
    n = next(_ids)
    row: dict[str, Any] = {name: None for name in KMS_EVENTS.names}
    row.update(
        event_time=T0 + dt.timedelta(seconds=n),
        event_id=f"evt-{n:06d}",
        event_name=event_name,
        event_type="AwsApiCall",
        read_only=True,
        aws_region="us-east-1",
        recipient_account_id=OWNER,
        caller_account_id=OWNER,
        identity_type="IAMUser",
        principal_arn=f"arn:aws:iam::{OWNER}:user/ops",
        key_arn=KEY_ARN,
        success=True,
        source_object="fixture.json",
        record_index=n,
        raw="{}",
    )
    row.update(fields)
    if "caller_account_id" in fields and "principal_arn" not in fields and row["caller_account_id"]:
        row["principal_arn"] = f"arn:aws:iam::{row['caller_account_id']}:user/ops"  # an ARN names its account
    if isinstance(row["encryption_context"], dict):
        row["encryption_context"] = list(row["encryption_context"].items())
    if "success" not in fields:
        row["success"] = row["error_code"] is None
    return row


def hsm_row(opcode: str = "CN_LOGIN", **fields: Any) -> dict[str, Any]:
    """A hsm_events row on hsm-1 of cluster-1 with a fresh sequence number unless `fields` say else."""
    n = next(_ids)
    row: dict[str, Any] = {name: None for name in HSM_EVENTS.names}
    row.update(
        event_time=T0 + dt.timedelta(seconds=n),
        cluster_id="cluster-1",
        hsm_id="hsm-1",
        reboot_counter=1,
        sequence_no=n,
        command_type="CN_MGMT_CMD",
        opcode=opcode,
        success=True,
        response_code=0,
        source_object="fixture.log",
        raw="",
    )
    row.update(fields)
    row.setdefault("event_id", None)
    row["event_id"] = row["event_id"] or f"{row['hsm_id']}:{row['reboot_counter']}:{row['sequence_no']}"
    return row


def write_events(
    lake_dir: str | os.PathLike[str], kms: list[dict[str, Any]] | None = None, hsm: list[dict[str, Any]] | None = None
) -> Lake:
    """Write rows into a lake, one file per table and event date; returns the lake."""
    lake = Lake(lake_dir)
    for table, schema, rows in (("kms_events", KMS_EVENTS, kms or []), ("hsm_events", HSM_EVENTS, hsm or [])):
        by_day: dict[dt.date, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_day[row["event_time"].date()].append(row)
        for day, day_rows in by_day.items():
            lake.write_partition(table, day, pa.Table.from_pylist(day_rows, schema=schema), run_id="fixture")
    return lake
