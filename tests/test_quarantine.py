"""The quarantine holds each bad record once: a rerun after a kill and a re-copied file add nothing; and it keeps
the record's original bytes (valid UTF-8 in `raw`, anything else base64 in `raw_base64`)."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from keytrail.cli import cli
from tests.conftest import ROOT
from tests.test_cloudhsm import CLUSTER, entry, write_jsonl
from tests.trailfiles import fresh_records, lake_texts, trail_text

KEYTRAIL = [sys.executable, "-m", "keytrail"]
EXIT_QUARANTINED = 3


def keytrail(*args: str, kill_at: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEYTRAIL_KILL_AT": kill_at}
    return subprocess.run([*KEYTRAIL, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def quarantine(lake: Path) -> list[tuple[str, int | None, str]]:
    rows = duckdb.sql(f"SELECT source_object, record_index, reason FROM read_parquet('{lake}/_quarantine/*.parquet')")
    return sorted(rows.fetchall(), key=str)


def hsm_source(folder: Path) -> Path:
    t = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    good = [("hsm-one", entry(n, t + dt.timedelta(seconds=n))) for n in range(1, 4)]
    write_jsonl(folder / CLUSTER / "hsm-one" / "a.jsonl", [*good, ("hsm-one", "garbage")])
    write_jsonl(folder / CLUSTER / "hsm-one" / "b.jsonl", [("hsm-one", "Sequence No : 0x9")])
    return folder


SOURCES = {
    # the malformed trail files of the sample: truncated gzip, invalid JSON, missing fields, a bad account, empty
    "cloudtrail": (lambda folder: Path(shutil.copytree(ROOT / "sample_logs" / "bad", folder)), "before-state"),
    "cloudhsm": (hsm_source, "hsm-before-state"),
}


@pytest.mark.parametrize("kind", SOURCES)
def test_a_rerun_after_a_kill_and_recopied_files_add_no_quarantine_rows(tmp_path: Path, kind: str) -> None:
    make, kill_point = SOURCES[kind]
    source = make(tmp_path / "source")
    clean, lake = tmp_path / "clean", tmp_path / "lake"
    assert keytrail("ingest", kind, str(source), "--lake", str(clean)).returncode == EXIT_QUARANTINED
    expected = quarantine(clean)
    assert len(expected) >= 2

    killed = keytrail("ingest", kind, str(source), "--lake", str(lake), kill_at=kill_point)
    assert killed.returncode == -signal.SIGKILL  # after the lake and quarantine writes, before the state
    assert keytrail("ingest", kind, str(source), "--lake", str(lake)).returncode == EXIT_QUARANTINED
    assert quarantine(lake) == expected

    later = dt.datetime.now().timestamp() + 3600
    for path in source.rglob("*"):
        if path.is_file():
            os.utime(path, (later, later))  # copied again: new modification times, same bytes
    again = keytrail("ingest", kind, str(source), "--lake", str(lake))
    assert again.returncode == EXIT_QUARANTINED, again.stderr
    assert quarantine(lake) == expected


# --- bytes are evidence ----------------------------------------------------------------------------------

BOM = b"\xef\xbb\xbf"


def ingest(kind: str, source: Path, lake: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["ingest", kind, str(source), "--lake", str(lake)])
    return result.exit_code, result.output


def landed_raw(lake: Path, table: str = "kms_events") -> list[str]:
    if table == "kms_events":
        return lake_texts(lake)
    return [r[0] for r in duckdb.sql(f"SELECT raw FROM read_parquet('{lake}/{table}/*/*.parquet')").fetchall()]


def held(lake: Path) -> list[dict[str, Any]]:
    rows = duckdb.sql(f"SELECT * FROM read_parquet('{lake}/_quarantine/*.parquet') ORDER BY record_index")
    return [dict(zip(rows.columns, r, strict=True)) for r in rows.fetchall()]


@pytest.mark.parametrize("layout", ["gzip", "plain", "pretty"])
def test_a_trail_file_starting_with_a_byte_order_mark_parses(tmp_path: Path, layout: str) -> None:
    records = fresh_records(5, seed=31)
    text = json.dumps({"Records": records}, indent=2) if layout == "pretty" else trail_text(records)
    data = BOM + text.encode()
    name = "bom.json.gz" if layout == "gzip" else "bom.json"
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / name).write_bytes(gzip.compress(data) if layout == "gzip" else data)
    code, out = ingest("cloudtrail", tmp_path / "src", tmp_path / "lake")
    assert code == 0, out
    assert "5 KMS events kept" in out and "0 quarantined" in out
    assert sorted(json.loads(r)["eventID"] for r in landed_raw(tmp_path / "lake")) == sorted(
        r["eventID"] for r in records
    )


def test_a_record_that_is_not_utf8_is_quarantined_as_its_bytes(tmp_path: Path) -> None:
    records = fresh_records(4, seed=32)
    records[2]["userAgent"] = "MARK"
    data = trail_text(records).encode().replace(b"MARK", b"caf\xe9 \xff\xfe latin-1")
    write_gz = tmp_path / "src" / "latin1.json.gz"
    write_gz.parent.mkdir()
    write_gz.write_bytes(gzip.compress(data))
    code, out = ingest("cloudtrail", tmp_path / "src", tmp_path / "lake")
    assert code == EXIT_QUARANTINED, out
    assert "3 KMS events kept" in out and "1 quarantined" in out
    assert not any("\ufffd" in r for r in landed_raw(tmp_path / "lake"))
    (entry,) = held(tmp_path / "lake")
    original = json.dumps(records[2], separators=(",", ":")).encode().replace(b"MARK", b"caf\xe9 \xff\xfe latin-1")
    assert entry["raw"] is None and entry["record_index"] == 2
    assert entry["reason"].startswith("not valid UTF-8: byte 0xe9 at character ")
    kept = base64.b64decode(entry["raw_base64"])
    assert kept == original
    assert entry["content_sha256"] == hashlib.sha256(kept).hexdigest()


def export(entries: list[str], start: dt.datetime) -> bytes:
    lines = [
        f"{(start + dt.timedelta(seconds=n)).isoformat().replace('+00:00', 'Z')} {m}" for n, m in enumerate(entries)
    ]
    return ("\n".join(lines) + "\n").encode()


def test_a_truncated_cloudhsm_export_gives_up_the_entries_before_the_cut(tmp_path: Path) -> None:
    t = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    entries = [entry(n, t + dt.timedelta(seconds=n)) for n in range(1, 41)]
    data = gzip.compress(export(entries, t))
    path = tmp_path / "src" / CLUSTER / "task" / "hsm-one" / "000000.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(data[: len(data) * 3 // 4])
    code, out = ingest("cloudhsm", tmp_path / "src", tmp_path / "lake")
    assert code == EXIT_QUARANTINED, out
    landed = landed_raw(tmp_path / "lake", "hsm_events")
    assert 20 <= len(landed) < 40
    assert sorted(landed) == sorted(entries[: len(landed)])  # whole entries only, none shortened by the cut
    (entry_held,) = held(tmp_path / "lake")
    assert entry_held["reason"].startswith("truncated gzip: the file ends before the end of its compressed stream")
    assert entry_held["raw"].split(" ", 1)[1] in entries[len(landed)]


def test_cloudhsm_entries_with_a_byte_order_mark_or_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    t = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    entries = [entry(n, t + dt.timedelta(seconds=n)) for n in range(1, 6)]
    data = BOM + export(entries, t).replace(
        b"Session Handle : 0xc008004\nResponse", b"Session Handle : 0xc008004\xff\nResponse", 1
    )
    path = tmp_path / "src" / CLUSTER / "task" / "hsm-one" / "000000.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(data))
    code, out = ingest("cloudhsm", tmp_path / "src", tmp_path / "lake")
    assert code == EXIT_QUARANTINED, out
    assert sorted(landed_raw(tmp_path / "lake", "hsm_events")) == sorted(entries[1:])
    (entry_held,) = held(tmp_path / "lake")
    assert entry_held["record_index"] == 1 and entry_held["raw"] is None
    assert entry_held["reason"].startswith("not valid UTF-8: byte 0xff at character ")
    assert base64.b64decode(entry_held["raw_base64"]) == data[len(BOM) : data.index(b"\n2026-03-01T12:00:01")]


def test_a_trail_file_whose_gzip_crc_fails_lands_no_altered_record(tmp_path: Path) -> None:
    # Stored (level 0) gzip: one changed byte keeps the stream readable, and only the CRC at its end tells.
    records = fresh_records(5, seed=33)
    data = bytearray(gzip.compress(trail_text(records).encode(), compresslevel=0))
    at = data.index(b'"eventName":"') + len(b'"eventName":"')
    data[at] ^= 0x01
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "crc.json.gz").write_bytes(bytes(data))
    code, out = ingest("cloudtrail", tmp_path / "src", tmp_path / "lake")
    assert code == EXIT_QUARANTINED, out
    assert not (tmp_path / "lake" / "kms_events").exists()
    (entry_held,) = held(tmp_path / "lake")
    assert entry_held["reason"] == "corrupt gzip (Error -3 while decompressing data: incorrect data check)"
