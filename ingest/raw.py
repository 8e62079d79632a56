"""Bytes from a source, read without altering them: gunzip what can be gunzipped, never replace a byte.

Shared by the CloudTrail reader for damaged files (ingest/cloudtrail/salvage.py) and the CloudHSM export reader.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from ingest.errors import KeytrailError

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 256 * 1024
# A UTF-8 byte-order mark: some tools write one before the text; it is not part of the first record.
BOM = b"\xef\xbb\xbf"
# Bytes that are not UTF-8 come out of a `surrogateescape` decode as lone surrogates U+DC80..U+DCFF, and go back
# to the same bytes with `.encode("utf-8", "surrogateescape")` (ingest/lake/store.py quarantine_rows does).
NOT_UTF8 = re.compile("[\udc80-\udcff]")


class Unreadable(KeytrailError):
    """A stored file cannot be read back to its content: corrupt or truncated gzip, or the store refused it."""


def inflate(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """A stored file's content, from its bytes in chunks: gzip members are inflated on the fly, a file that is
    not gzip comes out as it is. Raises Unreadable for a corrupt member (bad block, CRC or length), a stream
    cut before its end, or bytes after a member that are not another gzip member: the AWS CLI reports such a
    file as invalid too, and a hash of whatever could be inflated would prove nothing."""
    stream = (c for c in chunks if c)
    first = next(stream, b"")
    if not first.startswith(GZIP_MAGIC):
        yield from itertools.chain([first], stream)
        return
    inflater, members = zlib.decompressobj(wbits=31), 1
    try:
        for chunk in itertools.chain([first], stream):
            while chunk:
                if inflater.eof:  # the start of the next gzip member
                    inflater, members = zlib.decompressobj(wbits=31), members + 1
                yield inflater.decompress(chunk)
                chunk = inflater.unused_data
        yield inflater.flush()
    except zlib.error as err:
        raise Unreadable(gzip_problem(err, members)) from None
    if not inflater.eof:
        raise Unreadable("truncated gzip: the file ends before the end of its compressed stream")


def gzip_problem(err: zlib.error, member: int) -> str:
    """What a zlib error means for a stored file, naming the decompression error."""
    if member > 1:
        return f"bytes after the end of its gzip stream are not gzip (decompression error: {err})"
    return f"corrupt gzip (decompression error: {err})"


class Inspected(NamedTuple):
    """What one read of a stored file tells: its SHA-256, and its content (inflated), None when it is damaged."""

    sha256: str
    content: bytes | None  # None for a damaged file: no part of it is trusted


def inspect_file(path: Path) -> Inspected:
    """SHA-256 and content of a file, from one read. The content is None for a gzip file whose stream is
    damaged (bad data, CRC or length, cut short, bytes after it): a reader that does not check the CRC would take
    altered bytes for records. The SHA-256 is the file's identity in the ingest state; the content, inflated and
    CRC-checked here, is what the writer parses (so no reader inflates the file a second time)."""
    data = path.read_bytes()
    content = content_of(data)
    return Inspected(hashlib.sha256(data).hexdigest(), content)


def content_of(data: bytes) -> bytes | None:
    """A stored file's content: gzip inflated and CRC-checked (None when the stream is damaged), else as it is."""
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return b"".join(piece for piece in inflate([data]) if piece)  # one member: no copy
    except Unreadable:
        return None


def decompress(data: bytes) -> tuple[bytes, str | None]:
    """Gunzip every gzip member; returns the bytes and, for a damaged stream, why it stopped. A truncated stream
    gives up what came before the cut, junk after a member what came before the junk; a corrupt member gives up
    nothing (a flipped bit inside the data is only caught by the CRC at its end, so no part of it is trusted)."""
    if data[:2] != GZIP_MAGIC:
        return data, None
    out: list[bytes] = []
    while data:
        inflater = zlib.decompressobj(wbits=31)
        try:
            piece = inflater.decompress(data)
        except zlib.error as err:
            if out:  # the members before were whole and CRC-checked
                return b"".join(out), f"bytes after the end of its gzip stream are not gzip ({err}); not read"
            return b"", f"corrupt gzip ({err})"
        if not inflater.eof:
            return b"".join([*out, piece]), "truncated gzip: the file ends before the end of its compressed stream"
        out.append(piece)
        data = inflater.unused_data
    return b"".join(out), None


def decode(data: bytes) -> str:
    """Text from UTF-8 bytes without a byte-order mark; bytes that are not UTF-8 become lone surrogates."""
    return data.removeprefix(BOM).decode("utf-8", errors="surrogateescape")


def not_utf8(bad_byte: re.Match[str], start: int, what: str = "record") -> str:
    """Why a record with bytes that are not UTF-8 is quarantined, naming the first such byte."""
    byte = ord(bad_byte.group()) - 0xDC00
    return (
        f"not valid UTF-8: byte 0x{byte:02x} at character {bad_byte.start() - start} of the {what}; its bytes are "
        "kept unchanged in raw_base64 (AWS writes UTF-8: the file was altered or written by another tool)"
    )


def cannot_read(err: OSError) -> str:
    """Why a local file cannot be read (the OS error), and the fix."""
    return (
        f"cannot read the file: {err.strerror or err} ({type(err).__name__}, errno {err.errno}): give the user "
        "keytrail runs as read permission on it (and search permission on its folders)"
    )
