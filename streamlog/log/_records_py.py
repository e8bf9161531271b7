"""The per-record loops of the RecordBatch v2 codec, in pure Python.

``records.py`` does the batch framing (header, CRC, compression) once per batch and calls
one of two interchangeable *kernels* for the records section: this module, or the C
extension ``_records_c`` that implements the same three functions with the same
arguments, results and exceptions. The tests run every case against both and compare
them on fuzzed input, so a difference between the two is a bug in one of them.

This module also defines ``Record``, the type both kernels return (the C kernel imports
it from here), so that records compare equal whichever kernel decoded them.

Record layout (all integers zigzag varints; lengths of -1 mean null)::

    length: varint            -- bytes of the rest of the record
    attributes: int8          -- unused, written as 0
    timestampDelta: varlong   -- against the batch baseTimestamp
    offsetDelta: varint       -- against the batch baseOffset
    keyLength: varint, key
    valueLength: varint, value
    headerCount: varint, then per header: keyLength varint, UTF-8 key,
                                          valueLength varint, value

Varints are at most 5 bytes and 32 bits, varlongs at most 10 bytes and 64 bits: anything
longer or wider is corrupt (Kafka refuses the longer ones too).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from streamlog.log.errors import CorruptRecordError, InvalidRecordError

__all__ = [
    "Record",
    "Header",
    "decode_records",
    "encode_entries",
    "encode_records",
]

Header = tuple[str, bytes | None]

_INT32_MAX = 2**31 - 1
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
# Every record takes at least 7 bytes: length, attributes, timestamp delta, offset delta,
# key length, value length and header count, one byte each at the least.
MIN_RECORD_SIZE = 7


class Record(NamedTuple):
    """One record with its absolute offset and timestamp (milliseconds since the epoch)."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()


_new_record = tuple.__new__


# ---------------------------------------------------------------------------- decoding


def _read_varint(data: bytes, pos: int, max_bytes: int, bits: int) -> tuple[int, int]:
    """The multi-byte case of a zigzag varint (callers inline the one-byte case)."""
    value = 0
    shift = 0
    for _ in range(max_bytes):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value >> bits:
                raise CorruptRecordError(f"varint wider than {bits} bits ending at {pos}")
            return (value >> 1) ^ -(value & 1), pos
        shift += 7
    raise CorruptRecordError(f"varint longer than {max_bytes} bytes ending at {pos}")


def decode_records(
    buf: bytes | bytearray | memoryview,
    start: int,
    end: int,
    count: int,
    base_offset: int,
    base_timestamp: int,
    append_time: int | None,
) -> list[Record]:
    """Decode ``count`` records from ``buf[start:end]``, which they must fill exactly.

    ``append_time``, when not None, is every record's timestamp (LogAppendTime batches).
    """
    if not 0 <= start <= end <= len(buf) or count < 0:
        raise ValueError(f"bad records span [{start}, {end}) or count {count}")
    data = bytes(buf[start:end])
    size = len(data)
    if count > size // MIN_RECORD_SIZE:
        raise CorruptRecordError(f"{count} records cannot fit in {size} bytes")
    records: list[Record] = []
    append = records.append
    read = _read_varint
    pos = 0
    try:
        for _ in range(count):
            b = data[pos]
            if b < 0x80:
                length = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                length, pos = read(data, pos, 5, 32)
            record_end = pos + length
            if length < 0 or record_end > size:
                raise CorruptRecordError(f"record length {length} overruns the batch")
            pos += 1  # attributes: unused
            b = data[pos]
            if b < 0x80:
                ts_delta = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                ts_delta, pos = read(data, pos, 10, 64)
            b = data[pos]
            if b < 0x80:
                offset_delta = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                offset_delta, pos = read(data, pos, 5, 32)

            b = data[pos]
            if b < 0x80:
                n = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                n, pos = read(data, pos, 5, 32)
            if n >= 0:
                if pos + n > record_end:
                    raise CorruptRecordError(f"key of {n} bytes overruns its record")
                key: bytes | None = data[pos : pos + n]
                pos += n
            elif n == -1:
                key = None
            else:
                raise CorruptRecordError(f"negative key length {n}")

            b = data[pos]
            if b < 0x80:
                n = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                n, pos = read(data, pos, 5, 32)
            if n >= 0:
                if pos + n > record_end:
                    raise CorruptRecordError(f"value of {n} bytes overruns its record")
                value: bytes | None = data[pos : pos + n]
                pos += n
            elif n == -1:
                value = None
            else:
                raise CorruptRecordError(f"negative value length {n}")

            b = data[pos]
            if b < 0x80:
                n = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                n, pos = read(data, pos, 5, 32)
            if n == 0:
                headers: tuple[Header, ...] = ()
            else:
                headers, pos = _decode_headers(data, pos, record_end, n)

            if pos != record_end:
                used = length + pos - record_end
                raise CorruptRecordError(f"record declares {length} bytes, its fields take {used}")
            offset = base_offset + offset_delta
            timestamp = base_timestamp + ts_delta if append_time is None else append_time
            if not (_INT64_MIN <= offset <= _INT64_MAX and _INT64_MIN <= timestamp <= _INT64_MAX):
                raise CorruptRecordError("record offset or timestamp overflows int64")
            append(_new_record(Record, (offset, timestamp, key, value, headers)))
    except IndexError:
        raise CorruptRecordError(f"record {len(records)} is truncated") from None
    except CorruptRecordError as exc:
        raise CorruptRecordError(f"record {len(records)}: {exc}") from None
    if pos != size:
        raise CorruptRecordError(f"{size - pos} bytes follow the last of {count} records")
    return records


def _decode_headers(
    data: bytes, pos: int, record_end: int, count: int
) -> tuple[tuple[Header, ...], int]:
    if count < 0:
        raise CorruptRecordError(f"negative header count {count}")
    headers: list[Header] = []
    for _ in range(count):
        n, pos = _read_varint(data, pos, 5, 32)
        if n < 0 or pos + n > record_end:
            raise CorruptRecordError(f"header key length {n} is negative or overruns")
        try:
            name = data[pos : pos + n].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptRecordError(f"header key is not UTF-8: {exc}") from None
        pos += n
        n, pos = _read_varint(data, pos, 5, 32)
        if n >= 0:
            if pos + n > record_end:
                raise CorruptRecordError(f"header value of {n} bytes overruns its record")
            headers.append((name, data[pos : pos + n]))
            pos += n
        elif n == -1:
            headers.append((name, None))
        else:
            raise CorruptRecordError(f"negative header value length {n}")
    return tuple(headers), pos


# ---------------------------------------------------------------------------- encoding


def _zigzag_varint(value: int) -> bytes:
    z = (value << 1) ^ (value >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


# Encoded varints of -1..16382, which covers lengths, counts and offset deltas of ordinary
# records: a list index beats computing them byte by byte.
_SMALL_LIMIT = 16383
_SMALL = [_zigzag_varint(v) for v in range(-1, _SMALL_LIMIT)]


def _varint(value: int) -> bytes:
    if -1 <= value < _SMALL_LIMIT:
        return _SMALL[value + 1]
    return _zigzag_varint(value)


def _as_bytes(obj: Any, what: str) -> bytes:
    """A bytes-like key, value or header value as bytes (the C kernel reads its buffer)."""
    try:
        view = memoryview(obj)
    except TypeError:
        raise TypeError(f"{what} must be bytes-like or None, not {type(obj).__name__}") from None
    if not view.c_contiguous:
        raise TypeError(f"{what} must be a contiguous buffer")
    return view.tobytes()


def _timestamp(value: Any) -> int:
    if not isinstance(value, int):
        raise TypeError(f"timestamp must be an int, not {type(value).__name__}")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise InvalidRecordError(f"timestamp {value} does not fit in int64")
    return int(value)


def _append_record(
    out: bytearray, ts_delta: int, offset_delta: int, key: Any, value: Any, headers: Any
) -> None:
    if not _INT64_MIN <= ts_delta <= _INT64_MAX:
        raise InvalidRecordError(f"timestamp delta {ts_delta} does not fit in int64")
    body = bytearray(b"\x00")  # attributes
    body += _varint(ts_delta)
    body += _varint(offset_delta)
    if key is None:
        body += b"\x01"
    else:
        if type(key) is not bytes:
            key = _as_bytes(key, "key")
        body += _varint(len(key))
        body += key
    if value is None:
        body += b"\x01"
    else:
        if type(value) is not bytes:
            value = _as_bytes(value, "value")
        body += _varint(len(value))
        body += value
    if headers is None or (type(headers) is tuple and not headers):
        body += b"\x00"
    else:
        _append_headers(body, headers)
    if len(body) > _INT32_MAX:
        raise InvalidRecordError(f"record of {len(body)} bytes is larger than 2 GiB")
    out += _varint(len(body))
    out += body


def _append_headers(body: bytearray, headers: Any) -> None:
    if not isinstance(headers, tuple | list):
        raise TypeError(f"headers must be a tuple or list, not {type(headers).__name__}")
    if len(headers) > _INT32_MAX:
        raise InvalidRecordError("a record has more than 2**31 headers")
    body += _varint(len(headers))
    for pair in headers:
        name, value = _fields(pair, 2, "a header")
        if not isinstance(name, str):
            raise TypeError(f"header key must be a str, not {type(name).__name__}")
        raw = name.encode("utf-8")
        body += _varint(len(raw))
        body += raw
        if value is None:
            body += b"\x01"
        else:
            if type(value) is not bytes:
                value = _as_bytes(value, "header value")
            body += _varint(len(value))
            body += value


def _fields(item: Any, size: int, what: str) -> Sequence[Any]:
    if type(item) is not tuple and not isinstance(item, tuple | list):
        raise TypeError(f"{what} must be a tuple, not {type(item).__name__}")
    if len(item) != size:
        raise TypeError(f"{what} must have {size} fields, not {len(item)}")
    return item


def encode_entries(
    entries: Sequence[Any], base_timestamp: int | None, header_room: int
) -> tuple[bytearray, int, int | None, int | None, int]:
    """Encode ``(key, value, timestamp_ms, headers)`` entries with offset deltas 0, 1, ...

    Returns ``(buffer, count, base_timestamp, max_timestamp, last_offset_delta)``; the
    buffer starts with ``header_room`` zero bytes for the caller's batch header. The two
    timestamps are None when there are no entries and no base timestamp was given.
    """
    out = bytearray(header_room)
    max_ts: int | None = None
    if base_timestamp is not None:
        base_timestamp = _timestamp(base_timestamp)
    count = 0
    for entry in entries:
        key, value, ts, headers = _fields(entry, 4, "an entry")
        ts = _timestamp(ts)
        if base_timestamp is None:
            base_timestamp = ts
        if max_ts is None or ts > max_ts:
            max_ts = ts
        if count > _INT32_MAX:
            raise InvalidRecordError("a batch holds at most 2**31 records")
        _append_record(out, ts - base_timestamp, count, key, value, headers)
        count += 1
    return out, count, base_timestamp, max_ts, count - 1


def encode_records(
    records: Sequence[Any], base_offset: int, base_timestamp: int | None, header_room: int
) -> tuple[bytearray, int, int | None, int | None, int]:
    """Encode ``Record``s keeping their offsets (delta = offset - ``base_offset``).

    Offsets must increase strictly and not precede ``base_offset``. Same result as
    ``encode_entries``; ``last_offset_delta`` is that of the last record (-1 if none).
    """
    out = bytearray(header_room)
    max_ts: int | None = None
    if base_timestamp is not None:
        base_timestamp = _timestamp(base_timestamp)
    count = 0
    last_delta = -1
    for record in records:
        offset, ts, key, value, headers = _fields(record, 5, "a record")
        if not isinstance(offset, int):
            raise TypeError(f"offset must be an int, not {type(offset).__name__}")
        delta = offset - base_offset
        if delta <= last_delta or delta > _INT32_MAX:
            raise InvalidRecordError(
                f"record offset {offset} is out of order or out of range for base offset "
                f"{base_offset}"
            )
        ts = _timestamp(ts)
        if base_timestamp is None:
            base_timestamp = ts
        if max_ts is None or ts > max_ts:
            max_ts = ts
        _append_record(out, ts - base_timestamp, delta, key, value, headers)
        last_delta = delta
        count += 1
    return out, count, base_timestamp, max_ts, last_delta
