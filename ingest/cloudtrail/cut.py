"""A trail file's records cut out of its content without a JSON parse and without a copy.

CloudTrail writes a file as one minified line `{"Records":[{"eventVersion":…},…]}`, and the bytes
`},{"eventVersion"` can only occur there between two records (inside a JSON string the quote would be escaped). So
each record is a slice of the content, and the slices become an Arrow `string_view` column that points into the
content itself: DuckDB parses the records where they lie (sql/kms_rows.sql).

A file this cut cannot be trusted with goes to the exact reader (salvage.py), which reads it record by record and
says what is wrong: a file that is not one framed line, bytes that are not UTF-8 (checked over the whole content
before anything is cut), no records, a record under 13 bytes (Arrow would hold it inline), or a file over 2 GiB (a
view's offset is 32 bits). A wrong cut cannot reach the lake either: a slice that is not one JSON object fails its
parse (sql/kms_rows.sql), and its file is read again exactly.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ingest.raw import BOM

# What the cut gives for one file: one row per record, its text a view into the file's content.
RECORDS_CUT = pa.schema([("source_object", pa.string()), ("record_index", pa.int64()), ("rec", pa.string_view())])
HEAD = b'{"Records":['
TAIL = b"]}"
SEPARATOR = b'},{"eventVersion"'
INLINE = 12  # a string_view value of at most this many bytes is held in the view itself, not in the content
MAX_OFFSET = 2**31 - 1


def cut_records(source_object: str, content: bytes | None) -> pa.RecordBatch | None:
    """The records of a file's content (None for a damaged file: ingest/raw.py content_of) as a RECORDS_CUT batch,
    or None when the exact reader must read the file."""
    if content is None:
        return None
    start = len(BOM) if content.startswith(BOM) else 0
    end = len(content) - content.endswith(b"\n")
    if not _framed(content, start, end) or not _utf8(content):
        return None
    starts, ends = _slices(content, start + len(HEAD), end - len(TAIL))
    if len(starts) == 1 and starts[0] == ends[0] or min(e - s for s, e in zip(starts, ends, strict=True)) <= INLINE:
        return None
    n = len(starts)
    rec = pa.Array.from_buffers(pa.string_view(), n, [None, _views(content, starts, ends), pa.py_buffer(content)])
    objects = pa.repeat(pa.scalar(source_object, pa.string()), n)
    return pa.record_batch([objects, pa.array(np.arange(n, dtype=np.int64)), rec], schema=RECORDS_CUT)


def _framed(content: bytes, start: int, end: int) -> bool:
    """Whether the content is one `{"Records":[…]}` line the cut can be trusted with (see the module's doc)."""
    return (
        content.startswith(HEAD, start)
        and content.endswith(TAIL, start, end)
        and end < MAX_OFFSET
        and content.find(b"\n", start, end) < 0
    )


def _utf8(content: bytes) -> bool:
    """Whether the content is UTF-8 (Arrow's check, over the bytes where they are)."""
    offsets = pa.array([0, len(content)], pa.int64()).buffers()[1]
    whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(content)])
    try:
        whole.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def _slices(content: bytes, start: int, end: int) -> tuple[list[int], list[int]]:
    """Where each record of the body content[start:end] starts and ends: the separator's `}` ends one, its
    `{"eventVersion"` starts the next."""
    starts, ends = [start], []
    find = content.find
    at = find(SEPARATOR, start, end)
    while at >= 0:
        ends.append(at + 1)
        starts.append(at + 2)
        at = find(SEPARATOR, at + 2, end)
    ends.append(end)
    return starts, ends


def _views(content: bytes, starts: list[int], ends: list[int]) -> pa.Buffer:
    """The string_view views of the slices: length, first 4 bytes, buffer 0, offset (each 32 bits)."""
    first = np.array(starts, np.int32)
    views = np.empty((len(first), 4), np.int32)
    views[:, 0] = np.array(ends, np.int32) - first
    prefixes = np.frombuffer(content, np.uint8)[first[:, None] + np.arange(4, dtype=np.int32)]
    views[:, 1] = prefixes.copy().view(np.int32).ravel()
    views[:, 2] = 0
    views[:, 3] = first
    return pa.py_buffer(views)
