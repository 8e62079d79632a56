"""The records of a trail file are cut out of its content without a JSON parse (ingest/cloudtrail/cut.py): every
slice is a record exactly as written, and a file the cut cannot be trusted with goes to the exact reader, so what
lands is the same either way."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from ingest.cloudtrail.cut import cut_records
from ingest.raw import BOM
from tests.test_quarantine import EXIT_QUARANTINED, held, ingest, landed_raw
from tests.trailfiles import fresh_records, trail_text


def compact(record: object) -> str:
    return json.dumps(record, separators=(",", ":"))


@pytest.mark.parametrize("prefix", [b"", BOM], ids=["plain", "byte-order mark"])
def test_each_slice_is_a_record_as_written(prefix: bytes) -> None:
    records = fresh_records(7, seed=41)
    records[3]["errorMessage"] = 'a string holding the separator },{"eventVersion":"1.08"'
    cut = cut_records("f.json.gz", prefix + trail_text(records).encode() + b"\n")
    assert cut is not None
    assert cut.column("rec").to_pylist() == [compact(r) for r in records]
    assert cut.column("record_index").to_pylist() == list(range(7))
    assert set(cut.column("source_object").to_pylist()) == {"f.json.gz"}


def agent(records: list[dict[str, Any]], user_agent: str) -> list[dict[str, Any]]:
    records[1]["userAgent"] = user_agent
    return records


EXACT = {
    "no records": lambda records: '{"Records":[]}',
    "pretty-printed": lambda records: json.dumps({"Records": records}, indent=2),
    "a record under 13 bytes": lambda records: trail_text([{"a": 1}, *records]),
    "two documents": lambda records: trail_text(records) + "\n" + trail_text(records),
}


@pytest.mark.parametrize("case", EXACT)
def test_a_file_the_cut_cannot_be_trusted_with_is_left_to_the_exact_reader(case: str) -> None:
    text = EXACT[case](fresh_records(3, seed=42))
    assert cut_records("f.json", text.encode("utf-8")) is None
    assert cut_records("damaged.json.gz", None) is None


def test_bytes_that_are_not_utf8_are_left_to_the_exact_reader() -> None:
    data = trail_text(agent(fresh_records(3, seed=43), "MARK")).encode().replace(b"MARK", b"\xe9\xff")
    assert cut_records("f.json", data) is None


def write(tmp_path: Path, text: str) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.json.gz").write_bytes(gzip.compress(text.encode()))
    return src


def test_strings_that_look_like_framing_land_as_written(tmp_path: Path) -> None:
    records = fresh_records(5, seed=44)
    records[2]["errorMessage"] = 'mentions },{"eventVersion":"1.08","eventID":"forged"} inside'
    records[3]["userAgent"] = "aws-cli,] ,} MARK"  # a trailing comma's look-alike, and a real U+FFFD
    text = trail_text(records).replace("MARK", "\ufffd")
    code, out = ingest("cloudtrail", write(tmp_path, text), tmp_path / "lake")
    assert code == 0, out
    assert sorted(landed_raw(tmp_path / "lake")) == sorted(compact(r).replace("MARK", "\ufffd") for r in records)


def test_a_record_with_a_trailing_comma_is_held_and_the_rest_lands(tmp_path: Path) -> None:
    records = fresh_records(5, seed=45)
    text = trail_text(records)
    second = compact(records[1])
    text = text.replace(second, second[:-1] + ", }")
    code, out = ingest("cloudtrail", write(tmp_path, text), tmp_path / "lake")
    assert code == EXIT_QUARANTINED, out
    assert sorted(landed_raw(tmp_path / "lake")) == sorted(compact(r) for i, r in enumerate(records) if i != 1)
    (entry,) = held(tmp_path / "lake")
    assert entry["record_index"] == 1 and entry["reason"].startswith("invalid JSON")
    assert entry["raw"] == second[:-1] + ", }"


def test_a_record_that_is_not_json_is_held_and_the_batch_lands(tmp_path: Path) -> None:
    """A record the cut gives that is not valid JSON is held with its text; its file's other records and the
    batch's other files land."""
    records = fresh_records(6, seed=46)
    text = trail_text(records[:3])
    second = compact(records[1])
    broken = second.replace('"eventName":', '"eventName"', 1)
    src = write(tmp_path, text.replace(second, broken))
    (src / "g.json.gz").write_bytes(gzip.compress(trail_text(records[3:]).encode()))
    code, out = ingest("cloudtrail", src, tmp_path / "lake")
    assert code == EXIT_QUARANTINED, out
    assert sorted(landed_raw(tmp_path / "lake")) == sorted(compact(r) for i, r in enumerate(records) if i != 1)
    (entry,) = held(tmp_path / "lake")
    assert entry["source_object"].endswith("f.json.gz") and entry["record_index"] == 1
    assert entry["reason"].startswith("invalid JSON") and entry["raw"] == broken
