"""Primitive readers and writers shared by the hand-written parts of the codec.

kio does the generic work; these exist for the request/response headers (read before we
know which kio schema applies) and for the hot paths (Produce decode, Fetch encode).
Readers take a buffer and a position and return ``(value, new_position)``; they raise
``WireError`` on anything that does not fit the grammar, never IndexError and friends.
"""

from __future__ import annotations

import struct
from typing import Final

from .errors import WireError

__all__ = [
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "WireError",
    "read_nullable_string",
    "read_uvarint",
    "skip_tagged_fields",
    "uvarint",
]

INT8: Final = struct.Struct(">b")
INT16: Final = struct.Struct(">h")
INT32: Final = struct.Struct(">i")
INT64: Final = struct.Struct(">q")

Buffer = bytes | bytearray | memoryview


def read_uvarint(buf: Buffer, pos: int) -> tuple[int, int]:
    """Read an unsigned varint of at most 5 bytes (a Kafka ``UNSIGNED_VARINT``)."""
    end = len(buf)
    if pos >= end:
        raise WireError("truncated varint")
    byte = buf[pos]
    if byte < 0x80:
        return byte, pos + 1
    value = byte & 0x7F
    shift = 7
    pos += 1
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise WireError("varint longer than 5 bytes")


def read_nullable_string(buf: Buffer, pos: int) -> tuple[str | None, int]:
    """Read an int16-length-prefixed UTF-8 string; length -1 is null."""
    if pos + 2 > len(buf):
        raise WireError("truncated string length")
    (length,) = INT16.unpack_from(buf, pos)
    pos += 2
    if length < 0:
        if length != -1:
            raise WireError(f"invalid string length {length}")
        return None, pos
    end = pos + length
    if end > len(buf):
        raise WireError("truncated string")
    try:
        return str(buf[pos:end], "utf-8"), end
    except UnicodeDecodeError as e:
        raise WireError("string is not valid UTF-8") from e


def skip_tagged_fields(buf: Buffer, pos: int) -> int:
    """Skip a tagged-field section (count, then tag/size/data triples) and return its end.

    The protocol lets a reader ignore tags it does not know, which is what this does; it
    still checks that tags ascend and that every field lies inside the buffer.
    """
    count, pos = read_uvarint(buf, pos)
    previous = -1
    for _ in range(count):
        tag, pos = read_uvarint(buf, pos)
        if tag <= previous:
            raise WireError("tagged fields out of order")
        previous = tag
        size, pos = read_uvarint(buf, pos)
        pos += size
        if pos > len(buf):
            raise WireError("truncated tagged field")
    return pos


_SMALL_UVARINTS: Final = tuple(bytes((i,)) for i in range(128))


def uvarint(value: int) -> bytes:
    """Encode a non-negative int as an unsigned varint."""
    if value < 128:
        if value < 0:
            raise ValueError(f"unsigned varint cannot hold {value}")
        return _SMALL_UVARINTS[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
