"""The exact, forgiving reader for trail files the fast path cannot take: truncated gzip, invalid JSON,
pretty-printed files. It recovers every record it can and names what it cannot, with the reason."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ingest.raw import NOT_UTF8, decode, decompress, not_utf8

# A record of a trail file starts with its eventVersion: where to resume after an unreadable record.
RECORD_START = re.compile(r'\{\s*"eventVersion"')
RECORDS_ARRAY = re.compile(r'^\s*\{\s*"Records"\s*:\s*\[')
# What closes a trail file after its last record.
ARRAY_END = re.compile(r"\s*\]\s*\}\s*$")
DECODER = json.JSONDecoder()


@dataclass
class Salvaged:
    """What could be read from one file: good records and quarantine entries (index, reason, raw)."""

    records: list[tuple[int, str]] = field(default_factory=list)
    problems: list[tuple[int | None, str, str | None]] = field(default_factory=list)


def salvage(data: bytes) -> Salvaged:
    """Read a trail file record by record, resynchronising after each unreadable record."""
    result = Salvaged()
    text_bytes, gzip_problem = decompress(data)
    # Never replace a byte: what is not UTF-8 is carried as lone surrogates and quarantined as the bytes it was.
    text = decode(text_bytes)
    start = RECORDS_ARRAY.match(text)
    if not text.strip():
        result.problems.append((None, gzip_problem or "empty file: not a CloudTrail log file", None))
        return result
    if not start:
        reason = 'not a CloudTrail log file: it does not start with {"Records": ['
        result.problems.append((None, gzip_problem or reason, text[:2000]))
        return result
    _read_records(text, start.end(), result)
    if gzip_problem:
        result.problems.append((None, gzip_problem + f"; recovered {len(result.records)} records before it", None))
    return result


def _read_records(text: str, pos: int, result: Salvaged) -> None:
    index = 0
    while True:
        pos = _skip_separators(text, pos)
        if pos >= len(text) or text[pos] == "]":
            return
        try:
            obj, end = DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            resume = RECORD_START.search(text, pos + 1)
            stop = resume.start() if resume else len(text)
            reason = _describe(err, text, pos, at_end=resume is None)
            result.problems.append((index, reason, _unreadable_text(text[pos:stop], last=resume is None)))
            pos, index = stop, index + 1
            continue
        bad_byte = NOT_UTF8.search(text, pos, end)
        if bad_byte:
            result.problems.append((index, not_utf8(bad_byte, pos), text[pos:end]))
        elif isinstance(obj, dict):
            result.records.append((index, text[pos:end]))
        else:
            result.problems.append((index, "record is not a JSON object", text[pos:end]))
        pos, index = end, index + 1


def _unreadable_text(piece: str, last: bool) -> str | None:
    """An unreadable record's text as written: what lies before the next record, without the comma between them
    (or, for the last record, the `]}` that closes the file)."""
    piece = ARRAY_END.sub("", piece) if last else piece.rstrip().removesuffix(",")
    return piece.rstrip() or None


def _skip_separators(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n,":
        pos += 1
    return pos


def _describe(err: json.JSONDecodeError, text: str, pos: int, at_end: bool) -> str:
    if at_end and not text.rstrip().endswith("]}"):
        return "record cut off at the end of the file"
    line = text.count("\n", pos, err.pos) + 1
    return f"invalid JSON: {err.msg} at line {line} of the record (char {err.pos - pos})"
