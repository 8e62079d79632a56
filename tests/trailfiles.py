"""Small builders of CloudTrail log files for tests, from the AWS documentation examples."""

from __future__ import annotations

import copy
import gzip
import json
import random
import uuid
from pathlib import Path
from typing import Any

import duckdb

from ingest.cloudtrail.salvage import salvage
from tests.conftest import SHARED_DATA


def doc_records() -> list[dict[str, Any]]:
    """The 60 valid CloudTrail records of the AWS KMS developer guide."""
    with gzip.open(SHARED_DATA / "kms_docs_ct_examples_valid.json.gz") as fh:
        return list(json.load(fh)["Records"])


def fresh_records(n: int, seed: int = 7, day: str = "2026-11-20") -> list[dict[str, Any]]:
    """n KMS records with unique event ids, copied from the documentation examples."""
    rng = random.Random(seed)
    base = doc_records()
    out = []
    for i in range(n):
        rec = copy.deepcopy(base[i % len(base)])
        rec["eventID"] = str(uuid.UUID(int=rng.getrandbits(128)))
        rec["eventTime"] = f"{day}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"
        rec["recipientAccountId"] = "111122223333"
        out.append(rec)
    return out


def lake_texts(lake: Path) -> list[str]:
    """The text of every kms_events row: its `raw` (keep_raw), else the record its pointer names in its local file."""
    rows = duckdb.sql(f"SELECT source_object, record_index, raw FROM read_parquet('{lake}/kms_events/*/*.parquet')")
    files: dict[str, dict[int, str]] = {}
    texts = []
    for obj, index, raw in rows.fetchall():
        if obj not in files:
            files[obj] = dict(salvage(Path(obj).read_bytes()).records)
        texts.append(raw or files[obj][index])
    return texts


def trail_text(records: list[Any]) -> str:
    """A trail file's text as CloudTrail writes it: one minified line."""
    return json.dumps({"Records": records}, separators=(",", ":"))


def write_trail(path: Path, records: list[Any], gz: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = trail_text(records).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def trail_key(account: str, region: str, day: str, n: int, org: str | None = None) -> str:
    """A key in the CloudTrail S3 layout, e.g. AWSLogs/1111…/CloudTrail/us-east-1/2026/11/20/…json.gz."""
    y, m, d = day.split("-")
    owner = f"{org}/{account}" if org else account
    stamp = f"{y}{m}{d}T{n % 24:02d}05Z"
    return f"AWSLogs/{owner}/CloudTrail/{region}/{y}/{m}/{d}/{account}_CloudTrail_{region}_{stamp}_{n:016x}.json.gz"
