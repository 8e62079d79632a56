"""Bytes from a source, read without altering them: gunzip what can be gunzipped, never replace a byte.

Shared by the CloudTrail reader for damaged files (ingest/cloudtrail/salvage.py) and the CloudHSM export reader.
"""

from __future__ import annotations

import re
import zlib

GZIP_MAGIC = b"\x1f\x8b"
# A UTF-8 byte-order mark: some tools write one before the text; it is not part of the first record.
BOM = b"\xef\xbb\xbf"
# Bytes that are not UTF-8 come out of a `surrogateescape` decode as lone surrogates U+DC80..U+DCFF, and go back
# to the same bytes with `.encode("utf-8", "surrogateescape")` (ingest/lake/store.py quarantine_rows does).
NOT_UTF8 = re.compile("[\udc80-\udcff]")


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
