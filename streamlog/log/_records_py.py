"""The per-record loops of the RecordBatch v2 codec, in pure Python.

``records.py`` does the batch framing (header, CRC, compression) once per batch and calls
one of two interchangeable *kernels* for the records section: this module, or the C
extension ``_records_c`` that implements the same four functions and ``BatchBuilder``
type with the same arguments, results and exceptions. The tests run every case against
both and compare them on fuzzed input, so a difference between the two is a bug in one
of them.

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

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from streamlog.log.errors import CorruptRecordError, InvalidRecordError

__all__ = [
    "Record",
    "Header",
    "BatchBuilder",
    "decode_records",
    "scan_records",
    "PROBLEM_NO_KEY",
    "PROBLEM_TIMESTAMP_OUT_OF_RANGE",
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

# What scan_records reports about a record (records.RecordProblem names them).
PROBLEM_NO_KEY = 1
PROBLEM_TIMESTAMP_OUT_OF_RANGE = 2


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
    prefix: tuple[Any, ...] = (),
    record_type: type[tuple[Any, ...]] = Record,
    min_offset: int = _INT64_MIN,
) -> list[Any]:
    """Decode ``count`` records from ``buf[start:end]``, which they must fill exactly.

    ``append_time``, when not None, is every record's timestamp (LogAppendTime batches).
    Each record is returned as ``record_type(*prefix, offset, timestamp, key, value,
    headers)`` (made with ``tuple.__new__``, so ``record_type`` is any tuple type whose
    fields end with Record's): a consumer gets its own record type, topic and partition
    first, in one object. Records before ``min_offset`` are checked like the others and
    left out (a read that starts inside a batch).
    """
    if not isinstance(prefix, tuple):
        raise TypeError(f"prefix must be a tuple, not {type(prefix).__name__}")
    if not (isinstance(record_type, type) and issubclass(record_type, tuple)):
        raise TypeError("record_type must be tuple or a subclass of it")
    if not isinstance(min_offset, int):
        raise TypeError(f"min_offset must be an int, not {type(min_offset).__name__}")
    if not _INT64_MIN <= min_offset <= _INT64_MAX:
        raise ValueError(f"min_offset {min_offset} does not fit in int64")
    if not 0 <= start <= end <= len(buf) or count < 0:
        raise ValueError(f"bad records span [{start}, {end}) or count {count}")
    data = bytes(buf[start:end])
    size = len(data)
    if count > size // MIN_RECORD_SIZE:
        raise CorruptRecordError(f"{count} records cannot fit in {size} bytes")
    records: list[Any] = []
    append = records.append
    read = _read_varint
    pos = 0
    index = 0  # of the record being decoded, for error messages
    try:
        for index in range(count):  # noqa: B007 (read by the handlers below)
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
            if offset >= min_offset:
                append(_new_record(record_type, (*prefix, offset, timestamp, key, value, headers)))
    except IndexError:
        raise CorruptRecordError(f"record {index} is truncated") from None
    except CorruptRecordError as exc:
        raise CorruptRecordError(f"record {index}: {exc}") from None
    if pos != size:
        raise CorruptRecordError(f"{size - pos} bytes follow the last of {count} records")
    return records


def scan_records(
    buf: bytes | bytearray | memoryview,
    start: int,
    end: int,
    count: int,
    base_timestamp: int,
    need_keys: bool,
    min_timestamp: int,
    max_timestamp: int,
    max_problems: int,
) -> tuple[int, int, list[tuple[int, int]]]:
    """Check ``count`` records in ``buf[start:end]`` as a broker does before storing them.

    Refuses (``CorruptRecordError``) what ``decode_records`` refuses, and offset deltas
    that are not the record's index. Returns ``(max timestamp, problem count, problems)``:
    the largest record timestamp (-1 when none is larger), and ``(index, problem)`` for
    the first ``max_problems`` records without a key when ``need_keys`` is set
    (``PROBLEM_NO_KEY``) or else with a timestamp other than -1 outside
    [``min_timestamp``, ``max_timestamp``] (``PROBLEM_TIMESTAMP_OUT_OF_RANGE``).

    The C kernel walks the bytes without making records; this one decodes them, so the
    two accept exactly what ``decode_records`` accepts.
    """
    for name, value in (("min_timestamp", min_timestamp), ("max_timestamp", max_timestamp)):
        if not isinstance(value, int):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"{name} {value} does not fit in int64")
    if not isinstance(max_problems, int) or max_problems < 0:
        raise ValueError(f"max_problems must be a non-negative int, not {max_problems!r}")
    records = decode_records(buf, start, end, count, 0, base_timestamp, None)
    highest = -1
    problem_count = 0
    problems: list[tuple[int, int]] = []
    for index, (offset_delta, timestamp, key, _, _) in enumerate(records):
        if offset_delta != index:
            raise CorruptRecordError(f"record {index} has offset delta {offset_delta}")
        if timestamp > highest:
            highest = timestamp
        if need_keys and key is None:
            problem = PROBLEM_NO_KEY
        elif timestamp != -1 and not min_timestamp <= timestamp <= max_timestamp:
            problem = PROBLEM_TIMESTAMP_OUT_OF_RANGE
        else:
            continue
        problem_count += 1
        if len(problems) < max_problems:
            problems.append((index, problem))
    return highest, problem_count, problems


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


# ---------------------------------------------------------------------- batch builder


class BatchBuilder:
    """A record batch encoded as its records arrive, for producers.

    ``add`` encodes the record into the buffer at once (no entry kept per record, no
    second pass when the batch is sent) and returns its handle:
    ``handle_type(owner, index, timestamp)`` made with ``tuple.__new__``, or the index
    when ``handle_type`` is None. It returns None, adding nothing, when the batch holds
    records and this one would take ``size`` past ``limit`` (so a record larger than the
    limit still gets a batch of its own). A ``timestamp_ms`` of None is ``clock()``, or
    the wall clock's now without a ``clock``. ``add_many`` adds a run of records that
    share a timestamp and headers. ``take`` ends the batch and returns what
    ``encode_entries`` returns for the same entries (``records.py`` frames it): the same
    bytes.
    """

    __slots__ = (
        "_out",
        "_limit",
        "_count",
        "_base_ts",
        "_max_ts",
        "_owner",
        "_handle",
        "_clock",
        "_taken",
    )

    def __init__(
        self,
        limit: int,
        header_room: int,
        owner: Any = None,
        handle_type: type[tuple[Any, ...]] | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        if not isinstance(limit, int) or not isinstance(header_room, int):
            raise TypeError("limit and header_room must be ints")
        if not 0 <= header_room <= 4096:
            raise ValueError("header_room must be in [0, 4096]")
        if handle_type is not None and not (
            isinstance(handle_type, type) and issubclass(handle_type, tuple)
        ):
            raise TypeError("handle_type must be None or a subclass of tuple")
        if clock is not None and not callable(clock):
            raise TypeError("clock must be None or callable")
        self._out = bytearray(header_room)
        self._limit = limit
        self._count = 0
        self._base_ts = 0
        self._max_ts = 0
        self._owner = owner
        self._handle = handle_type
        self._clock = clock
        self._taken = False

    @property
    def count(self) -> int:
        """Records added."""
        return self._count

    @property
    def size(self) -> int:
        """Bytes so far, header room included."""
        return len(self._out)

    @property
    def full(self) -> bool:
        """Whether ``size`` has reached the limit."""
        return len(self._out) >= self._limit

    @property
    def owner(self) -> Any:
        """The first item of each handle."""
        return self._owner

    def add(self, key: Any, value: Any, timestamp_ms: int | None, headers: Any) -> Any:
        """Encode one record; its handle, or None if it does not fit (see the class)."""
        if self._taken:
            raise ValueError("the batch was already taken")
        if timestamp_ms is not None:
            ts = _timestamp(timestamp_ms)
        elif self._clock is None:
            ts = time.time_ns() // 1_000_000
        else:
            ts = _timestamp(self._clock())
        count = self._count
        if count > _INT32_MAX:
            raise InvalidRecordError("a batch holds at most 2**31 records")
        out = self._out
        mark = len(out)
        # Appends the whole record or, on an error, nothing.
        _append_record(out, ts - (self._base_ts if count else ts), count, key, value, headers)
        if count and len(out) > self._limit:
            del out[mark:]
            return None
        if not count:
            self._base_ts = self._max_ts = ts
        elif ts > self._max_ts:
            self._max_ts = ts
        self._count = count + 1
        if self._handle is None:
            return count
        return _new_record(self._handle, (self._owner, count, ts))

    def add_many(
        self,
        keys: Sequence[Any] | None,
        values: Sequence[Any],
        start: int,
        timestamp_ms: int,
        headers: Any,
        check: bool,
    ) -> int:
        """Encode ``values[start:]`` (``keys[start:]`` their keys, or None for null keys),
        all with this timestamp and these headers, until one would take the batch past
        its limit; return how many were added.

        With ``check``, every key and value from ``start`` on is type-checked first, so
        that a bad one raises before any record is added. Errors found while encoding
        (a header, the timestamp) leave the records added before it in the batch.
        """
        if self._taken:
            raise ValueError("the batch was already taken")
        if not isinstance(values, list | tuple):
            raise TypeError(f"values must be a list or tuple, not {type(values).__name__}")
        n = len(values)
        if keys is not None:
            if not isinstance(keys, list | tuple):
                raise TypeError(f"keys must be a list or tuple, not {type(keys).__name__}")
            if len(keys) != n:
                raise ValueError(f"{len(keys)} keys for {n} values")
        if not isinstance(start, int):
            raise TypeError(f"start must be an int, not {type(start).__name__}")
        if not 0 <= start <= n:
            raise ValueError(f"start {start} is outside [0, {n}]")
        ts = _timestamp(timestamp_ms)
        if check:
            for i in range(start, n):
                if keys is not None and keys[i] is not None and type(keys[i]) is not bytes:
                    _as_bytes(keys[i], "key")
                if values[i] is not None and type(values[i]) is not bytes:
                    _as_bytes(values[i], "value")
        out = self._out
        limit = self._limit
        added = 0
        for i in range(start, n):
            count = self._count
            if count > _INT32_MAX:
                raise InvalidRecordError("a batch holds at most 2**31 records")
            mark = len(out)
            key = None if keys is None else keys[i]
            delta = ts - (self._base_ts if count else ts)
            _append_record(out, delta, count, key, values[i], headers)
            if count and len(out) > limit:
                del out[mark:]
                break
            if not count:
                self._base_ts = self._max_ts = ts
            elif ts > self._max_ts:
                self._max_ts = ts
            self._count = count + 1
            added += 1
        return added

    def take(self) -> tuple[bytearray, int, int | None, int | None, int]:
        """End the batch: ``(buffer, count, base_timestamp, max_timestamp,
        last_offset_delta)`` as ``encode_entries`` returns them."""
        if self._taken:
            raise ValueError("the batch was already taken")
        self._taken = True
        out, self._out = self._out, bytearray()
        if not self._count:
            return out, 0, None, None, -1
        return out, self._count, self._base_ts, self._max_ts, self._count - 1
