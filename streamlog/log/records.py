"""Kafka RecordBatch v2 (magic 2): encode records into batches and decode them back.

The batch header is described in ``batch_header.py`` and the record layout in
``_records_py.py``. This module does what happens once per batch (header fields and
attributes, CRC-32C, compression) and hands the records section to a *kernel*: the C
extension ``_records_c`` when it is built, or the pure-Python ``_records_py``. Both
return the same ``Record`` type and raise the same exceptions; ``IMPLEMENTATION`` says
which one the module-level functions use. Setting ``STREAMLOG_PURE_PYTHON`` (to anything
but "" or "0") forces the pure-Python kernel. ``PYTHON_CODEC`` and ``C_CODEC`` (None when
the extension is not built) give direct access to each, for tests and benchmarks.

For clients: a producer fills a ``BatchBuilder`` (``batch_builder``), which encodes each
record as it is added, and frames it with ``encode_built``; a consumer decodes with
``decode_batch_as``, straight into its own record type.

Errors: bytes that fail a structural check or the CRC raise ``CorruptRecordError``;
a well-formed batch we cannot use (magic other than 2, unknown compression) raises an
``InvalidRecordError``; bad arguments to the encoders raise ``TypeError``/``ValueError``,
and values Kafka cannot represent (a timestamp outside int64, offsets out of order)
raise ``InvalidRecordError``.

Everything here but a ``BatchBuilder`` (one owner at a time) is a pure function of its
arguments: safe to call from any thread.
"""

from __future__ import annotations

import importlib
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from enum import IntEnum
from types import ModuleType
from typing import Any, NamedTuple, Protocol, TypeVar

from crc32c import crc32c

from streamlog.log import _records_py
from streamlog.log._records_py import Header, Record
from streamlog.log.batch_header import (
    BATCH_LENGTH,
    BATCH_LENGTH_AT,
    COMPRESSION_MASK,
    CONTROL_MASK,
    CRC,
    CRC_AT,
    CRC_START,
    DELETE_HORIZON_MASK,
    HEADER_LAYOUT,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_MASK,
    BatchHeader,
    validate_batch,
)
from streamlog.log.compression import (
    DEFAULT_DECOMPRESSED_LIMIT,
    Compression,
    UnsupportedCompressionError,
    compress,
    decompress,
)
from streamlog.log.errors import CorruptRecordError, DecompressionLimitError, InvalidRecordError

__all__ = [
    "IMPLEMENTATION",
    "NO_TIMESTAMP",
    "BatchBuilder",
    "Compression",
    "ControlRecord",
    "ControlType",
    "DecodedBatch",
    "DEFAULT_DECOMPRESSED_LIMIT",
    "Entry",
    "Header",
    "Record",
    "RecordCodec",
    "RecordProblem",
    "RecordScan",
    "PYTHON_CODEC",
    "C_CODEC",
    "encode_batch",
    "encode_records",
    "batch_builder",
    "encode_built",
    "decode_batch",
    "decode_batch_as",
    "scan_batch",
    "iter_batches",
    "encode_control_batch",
    "decode_control_record",
]

NO_TIMESTAMP = -1
_INT64_MIN = -(2**63)
_T = TypeVar("_T", bound=tuple[Any, ...])

Buffer = bytes | bytearray | memoryview
# (key, value, timestamp_ms, headers) as given to encode_batch.
Entry = tuple[bytes | None, bytes | None, int, Sequence[Header]]

_INT32_MAX = 2**31 - 1


class BatchBuilder(Protocol):
    """What ``RecordCodec.batch_builder`` returns (either kernel's ``BatchBuilder``)."""

    @property
    def count(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def full(self) -> bool: ...

    @property
    def owner(self) -> Any: ...

    def add(
        self,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None,
        headers: Sequence[Header],
    ) -> Any: ...

    def add_many(
        self,
        keys: Sequence[bytes | None] | None,
        values: Sequence[bytes | None],
        start: int,
        timestamp_ms: int,
        headers: Sequence[Header],
        check: bool,
    ) -> int: ...

    def take(self) -> tuple[bytearray, int, int | None, int | None, int]: ...


class DecodedBatch(NamedTuple):
    """A batch's header and its records (absolute offsets and timestamps)."""

    header: BatchHeader
    records: list[Record]


class RecordProblem(IntEnum):
    """Why ``scan_batch`` lists a record (the kernels return these numbers)."""

    NO_KEY = _records_py.PROBLEM_NO_KEY
    TIMESTAMP_OUT_OF_RANGE = _records_py.PROBLEM_TIMESTAMP_OUT_OF_RANGE


class RecordScan(NamedTuple):
    """What ``RecordCodec.scan_batch`` found in a batch's records, none of them decoded.

    ``max_timestamp`` is the largest record timestamp (-1 if every record has none);
    ``problems`` lists ``(record index, problem)`` for the first ``max_problems`` records
    that break a rule the scan was given (a ``RecordProblem``, one per record, the key
    first, as Kafka's LogValidator reports them) and ``problem_count`` counts all of them.
    """

    max_timestamp: int
    problem_count: int
    problems: list[tuple[int, int]]


class ControlType(IntEnum):
    """The transaction markers a control batch carries (Kafka's ControlRecordType)."""

    ABORT = 0
    COMMIT = 1


class ControlRecord(NamedTuple):
    """A decoded transaction marker: its type and the coordinator epoch that wrote it."""

    type: ControlType
    coordinator_epoch: int


def _check_int(name: str, value: Any, bits: int) -> None:
    if not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    limit = 1 << (bits - 1)
    if not -limit <= value < limit:
        raise ValueError(f"{name}={value} does not fit in int{bits}")


def _as_byte_buffer(buf: Buffer) -> Buffer:
    # A memoryview of wider items (or several dimensions) would make len() count items.
    if isinstance(buf, memoryview) and (buf.itemsize != 1 or buf.ndim != 1):
        return buf.cast("B")
    return buf


class RecordCodec:
    """The batch codec over one kernel (``_records_py`` or ``_records_c``).

    Stateless: one instance per kernel, shared by everyone.
    """

    __slots__ = ("_kernel", "name")

    def __init__(self, kernel: ModuleType, name: str) -> None:
        self._kernel = kernel
        self.name = name

    def __repr__(self) -> str:
        return f"RecordCodec({self.name!r})"

    def encode_batch(
        self,
        entries: Sequence[Entry],
        *,
        base_offset: int = 0,
        compression: Compression | int = Compression.NONE,
        producer_id: int = NO_PRODUCER_ID,
        producer_epoch: int = -1,
        base_sequence: int = NO_SEQUENCE,
        transactional: bool = False,
        control: bool = False,
        log_append_time: bool = False,
        partition_leader_epoch: int = -1,
        base_timestamp: int | None = None,
        delete_horizon_ms: int | None = None,
        max_timestamp: int | None = None,
    ) -> bytes:
        """One batch of ``(key, value, timestamp_ms, headers)`` entries, offsets consecutive.

        baseTimestamp is the first entry's timestamp unless ``base_timestamp`` (or
        ``delete_horizon_ms``) is given; maxTimestamp the largest entry timestamp unless
        ``max_timestamp`` is given (a broker stamping LogAppendTime passes its clock).
        """
        base_timestamp = _base_timestamp(base_timestamp, delete_horizon_ms)
        buf, count, base_ts, max_ts, last_delta = self._kernel.encode_entries(
            entries, base_timestamp, HEADER_SIZE
        )
        if count == 0:
            raise ValueError("a batch needs at least one entry (encode_records writes empty ones)")
        return _finish(
            buf,
            count=count,
            base_offset=base_offset,
            last_offset_delta=last_delta,
            base_timestamp=base_ts,
            max_timestamp=max_ts if max_timestamp is None else max_timestamp,
            compression=compression,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            base_sequence=base_sequence,
            transactional=transactional,
            control=control,
            log_append_time=log_append_time,
            partition_leader_epoch=partition_leader_epoch,
            delete_horizon=delete_horizon_ms is not None,
        )

    def encode_records(
        self,
        records: Sequence[Record],
        *,
        base_offset: int,
        last_offset_delta: int | None = None,
        compression: Compression | int = Compression.NONE,
        producer_id: int = NO_PRODUCER_ID,
        producer_epoch: int = -1,
        base_sequence: int = NO_SEQUENCE,
        transactional: bool = False,
        control: bool = False,
        log_append_time: bool = False,
        partition_leader_epoch: int = -1,
        base_timestamp: int | None = None,
        delete_horizon_ms: int | None = None,
        max_timestamp: int | None = None,
    ) -> bytes:
        """One batch of ``records`` keeping their offsets: what log compaction writes.

        Offsets must increase and not precede ``base_offset``. ``last_offset_delta``
        defaults to that of the last record; compaction passes the original batch's so
        the batch still ends at the same offset (and the producer's sequence range stays
        whole). An empty ``records`` is allowed when ``last_offset_delta`` is given
        (Kafka keeps such a batch to preserve producer state); its timestamps are
        ``base_timestamp``/``max_timestamp`` if given, each defaulting to the other, else
        -1 (NO_TIMESTAMP).

        With ``delete_horizon_ms`` the batch's baseTimestamp is the horizon and
        attribute bit 6 is set; record timestamp deltas are taken against the horizon.
        """
        _check_int("base_offset", base_offset, 64)
        base_timestamp = _base_timestamp(base_timestamp, delete_horizon_ms)
        buf, count, base_ts, max_ts, last_delta = self._kernel.encode_records(
            records, base_offset, base_timestamp, HEADER_SIZE
        )
        if last_offset_delta is not None:
            _check_int("last_offset_delta", last_offset_delta, 32)
            if last_offset_delta < max(last_delta, 0):
                raise InvalidRecordError(
                    f"last_offset_delta {last_offset_delta} is before the last record "
                    f"(delta {last_delta})"
                )
            last_delta = last_offset_delta
        elif count == 0:
            raise ValueError("an empty batch needs last_offset_delta")
        if max_timestamp is not None:
            max_ts = max_timestamp
        if base_ts is None:
            base_ts = NO_TIMESTAMP if max_ts is None else max_ts
        if max_ts is None:
            max_ts = base_ts
        return _finish(
            buf,
            count=count,
            base_offset=base_offset,
            last_offset_delta=last_delta,
            base_timestamp=base_ts,
            max_timestamp=max_ts,
            compression=compression,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            base_sequence=base_sequence,
            transactional=transactional,
            control=control,
            log_append_time=log_append_time,
            partition_leader_epoch=partition_leader_epoch,
            delete_horizon=delete_horizon_ms is not None,
        )

    def decode_batch(
        self, buf: Buffer, pos: int = 0, *, limit: int = DEFAULT_DECOMPRESSED_LIMIT
    ) -> DecodedBatch:
        """Validate (lengths, magic, CRC) and decode the batch at ``pos``.

        LogAppendTime batches report the batch maxTimestamp as every record's timestamp,
        as Kafka clients do. A compressed batch whose records take more than ``limit``
        bytes once decompressed raises ``DecompressionLimitError`` (a
        ``CorruptRecordError``) without being decompressed further.
        """
        buf = _as_byte_buffer(buf)
        header = validate_batch(buf, pos)
        codec = header.attributes & COMPRESSION_MASK
        append_time = header.max_timestamp if header.attributes & TIMESTAMP_TYPE_MASK else None
        start = pos + HEADER_SIZE
        end = pos + header.size
        if codec == Compression.NONE:
            records = self._kernel.decode_records(
                buf,
                start,
                end,
                header.record_count,
                header.base_offset,
                header.base_timestamp,
                append_time,
            )
        else:
            data = decompress(codec, memoryview(buf)[start:end], limit)
            records = self._kernel.decode_records(
                data,
                0,
                len(data),
                header.record_count,
                header.base_offset,
                header.base_timestamp,
                append_time,
            )
        return DecodedBatch(header, records)

    def decode_batch_as(
        self,
        buf: Buffer,
        pos: int,
        record_type: type[_T],
        prefix: tuple[Any, ...] = (),
        min_offset: int = _INT64_MIN,
        *,
        limit: int = DEFAULT_DECOMPRESSED_LIMIT,
    ) -> tuple[BatchHeader, list[_T]]:
        """``decode_batch`` for a consumer: records as ``record_type(*prefix, offset,
        timestamp, key, value, headers)``, those before ``min_offset`` left out.

        A consumer hands out its own record type with the topic and partition first;
        made here, each record is one object instead of a ``Record`` plus a copy.
        ``record_type`` is a tuple subclass (a NamedTuple) whose fields are the prefix's
        then Record's five, or ``tuple``. ``limit`` bounds decompression as in
        ``decode_batch``.
        """
        fields = getattr(record_type, "_fields", None)
        if fields is not None and len(fields) != len(prefix) + 5:
            raise TypeError(
                f"{record_type.__name__} has {len(fields)} fields; a prefix of "
                f"{len(prefix)} and a record's 5 make {len(prefix) + 5}"
            )
        buf = _as_byte_buffer(buf)
        header = validate_batch(buf, pos)
        codec = header.attributes & COMPRESSION_MASK
        append_time = header.max_timestamp if header.attributes & TIMESTAMP_TYPE_MASK else None
        start = pos + HEADER_SIZE
        end = pos + header.size
        if codec != Compression.NONE:
            buf = decompress(codec, memoryview(buf)[start:end], limit)
            start, end = 0, len(buf)
        records = self._kernel.decode_records(
            buf,
            start,
            end,
            header.record_count,
            header.base_offset,
            header.base_timestamp,
            append_time,
            prefix,
            record_type,
            min_offset,
        )
        return header, records

    def scan_batch(
        self,
        buf: Buffer,
        pos: int,
        header: BatchHeader,
        *,
        limit: int,
        need_keys: bool,
        min_timestamp: int,
        max_timestamp: int,
        max_problems: int,
    ) -> RecordScan:
        """Walk the records of the batch at ``pos`` (whose ``header`` the caller has
        validated) without making them: what a broker checks before it stores a batch.

        Raises ``CorruptRecordError`` for anything ``decode_batch`` would refuse (framing,
        varints, lengths, a record count that is not the number of records, header keys
        that are not UTF-8, trailing bytes) and for offset deltas other than 0, 1, 2, ...;
        ``DecompressionLimitError`` for records taking more than ``limit`` bytes once
        decompressed. Records are then checked against the rules given: a key
        (``need_keys``) and a timestamp in [``min_timestamp``, ``max_timestamp``] (records
        without a timestamp, -1, are not checked); see ``RecordScan``.
        """
        buf = _as_byte_buffer(buf)
        codec = header.attributes & COMPRESSION_MASK
        start = pos + HEADER_SIZE
        end = pos + header.size
        if codec != Compression.NONE:
            buf = decompress(codec, memoryview(buf)[start:end], limit)
            start, end = 0, len(buf)
        elif end - start > limit:
            raise DecompressionLimitError(f"{end - start} bytes of records exceed {limit}")
        max_ts, count, problems = self._kernel.scan_records(
            buf,
            start,
            end,
            header.record_count,
            header.base_timestamp,
            need_keys,
            min_timestamp,
            max_timestamp,
            max_problems,
        )
        return RecordScan(max_ts, count, problems)

    def batch_builder(
        self,
        limit: int,
        owner: Any = None,
        handle_type: type[tuple[Any, ...]] | None = None,
        clock: Callable[[], int] | None = None,
    ) -> BatchBuilder:
        """A batch encoded as records are added (``_records_py.BatchBuilder``), to be
        framed by ``encode_built``: what a producer fills between sends.

        ``add`` stops taking records (returns None) when the next would take the
        encoded batch past ``limit`` bytes; ``handle_type(owner, index, timestamp)`` is
        what each ``add`` returns (the index alone without a ``handle_type``). A record
        added without a timestamp gets ``clock()`` (epoch milliseconds), or the wall
        clock's when ``clock`` is None (read in C by the C kernel: the cheap case).
        """
        builder: BatchBuilder = self._kernel.BatchBuilder(
            limit, HEADER_SIZE, owner, handle_type, clock
        )
        return builder

    def encode_built(
        self,
        builder: BatchBuilder,
        *,
        base_offset: int = 0,
        compression: Compression | int = Compression.NONE,
        producer_id: int = NO_PRODUCER_ID,
        producer_epoch: int = -1,
        base_sequence: int = NO_SEQUENCE,
        transactional: bool = False,
        partition_leader_epoch: int = -1,
    ) -> bytes:
        """The batch ``builder`` holds, framed as ``encode_batch`` frames entries (the same
        bytes for the same records). Ends the builder."""
        buf, count, base_ts, max_ts, last_delta = builder.take()
        if count == 0 or base_ts is None or max_ts is None:
            raise ValueError("a batch needs at least one record")
        return _finish(
            buf,
            count=count,
            base_offset=base_offset,
            last_offset_delta=last_delta,
            base_timestamp=base_ts,
            max_timestamp=max_ts,
            compression=compression,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            base_sequence=base_sequence,
            transactional=transactional,
            control=False,
            log_append_time=False,
            partition_leader_epoch=partition_leader_epoch,
            delete_horizon=False,
        )

    def iter_batches(
        self, buf: Buffer, *, limit: int = DEFAULT_DECOMPRESSED_LIMIT
    ) -> Iterator[DecodedBatch]:
        """Decode each batch of a buffer of concatenated batches, in order.

        A partial batch at the end (a fetch response may cut the last one short) ends the
        iteration quietly; anything corrupt before it raises. ``limit`` bounds each
        batch's decompression as in ``decode_batch``.
        """
        buf = _as_byte_buffer(buf)
        pos = 0
        end = len(buf)
        while end - pos >= LOG_OVERHEAD:
            (batch_length,) = BATCH_LENGTH.unpack_from(buf, pos + BATCH_LENGTH_AT)
            if batch_length < HEADER_SIZE - LOG_OVERHEAD:
                raise CorruptRecordError(
                    f"record batch length {batch_length} at position {pos} is too small"
                )
            size = batch_length + LOG_OVERHEAD
            if end - pos < size:
                return
            yield self.decode_batch(buf, pos, limit=limit)
            pos += size


def _base_timestamp(base_timestamp: int | None, delete_horizon_ms: int | None) -> int | None:
    if delete_horizon_ms is None:
        return base_timestamp
    if base_timestamp is not None:
        raise ValueError("give base_timestamp or delete_horizon_ms, not both")
    _check_int("delete_horizon_ms", delete_horizon_ms, 64)
    return delete_horizon_ms


def _finish(
    buf: bytearray,
    *,
    count: int,
    base_offset: int,
    last_offset_delta: int,
    base_timestamp: int,
    max_timestamp: int,
    compression: Compression | int,
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
    transactional: bool,
    control: bool,
    log_append_time: bool,
    partition_leader_epoch: int,
    delete_horizon: bool,
) -> bytes:
    """Compress the records section if asked, then write the header and the CRC."""
    _check_int("base_offset", base_offset, 64)
    _check_int("max_timestamp", max_timestamp, 64)
    _check_int("producer_id", producer_id, 64)
    _check_int("producer_epoch", producer_epoch, 16)
    _check_int("base_sequence", base_sequence, 32)
    _check_int("partition_leader_epoch", partition_leader_epoch, 32)
    try:
        codec = Compression(compression)
    except ValueError:
        raise UnsupportedCompressionError(
            f"compression type {compression} is not supported"
        ) from None
    attributes = int(codec)
    if log_append_time:
        attributes |= TIMESTAMP_TYPE_MASK
    if transactional:
        attributes |= TRANSACTIONAL_MASK
    if control:
        attributes |= CONTROL_MASK
    if delete_horizon:
        attributes |= DELETE_HORIZON_MASK
    if codec is not Compression.NONE:
        body = compress(codec, memoryview(buf)[HEADER_SIZE:])
        buf = bytearray(HEADER_SIZE + len(body))
        buf[HEADER_SIZE:] = body
    if len(buf) - LOG_OVERHEAD > _INT32_MAX:
        raise InvalidRecordError(f"a batch of {len(buf)} bytes is larger than 2 GiB")
    HEADER_LAYOUT.pack_into(
        buf,
        0,
        base_offset,
        len(buf) - LOG_OVERHEAD,
        partition_leader_epoch,
        MAGIC,
        0,
        attributes,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        count,
    )
    CRC.pack_into(buf, CRC_AT, crc32c(memoryview(buf)[CRC_START:]))
    return bytes(buf)


# ---------------------------------------------------------------------- control batches

_CONTROL_KEY = struct.Struct(">hh")  # version, type
_CONTROL_VALUE = struct.Struct(">hi")  # version, coordinatorEpoch


def encode_control_batch(
    control_type: ControlType | int,
    *,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    timestamp: int,
    base_offset: int = 0,
    partition_leader_epoch: int = -1,
) -> bytes:
    """A transaction marker batch: one control record, transactional and control bits set."""
    control_type = ControlType(control_type)
    _check_int("coordinator_epoch", coordinator_epoch, 32)
    key = _CONTROL_KEY.pack(0, control_type)
    value = _CONTROL_VALUE.pack(0, coordinator_epoch)
    return encode_batch(
        [(key, value, timestamp, ())],
        base_offset=base_offset,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        transactional=True,
        control=True,
        partition_leader_epoch=partition_leader_epoch,
    )


def decode_control_record(record: Record) -> ControlRecord:
    """The marker in a control batch's record.

    ``CorruptRecordError`` if the key or value is too short or has a negative version;
    ``InvalidRecordError`` for a control type other than ABORT/COMMIT (KRaft's metadata
    log uses others; a data partition never should).
    """
    key, value = record.key, record.value
    if key is None or len(key) < _CONTROL_KEY.size:
        raise CorruptRecordError(f"control record key {key!r} is shorter than 4 bytes")
    version, type_id = _CONTROL_KEY.unpack_from(key)
    if version < 0:
        raise CorruptRecordError(f"control record key has negative version {version}")
    try:
        control_type = ControlType(type_id)
    except ValueError:
        raise InvalidRecordError(
            f"control record type {type_id} is not a transaction marker"
        ) from None
    if value is None or len(value) < _CONTROL_VALUE.size:
        raise CorruptRecordError(f"transaction marker value {value!r} is shorter than 6 bytes")
    value_version, coordinator_epoch = _CONTROL_VALUE.unpack_from(value)
    if value_version < 0:
        raise CorruptRecordError(f"transaction marker has negative version {value_version}")
    return ControlRecord(control_type, coordinator_epoch)


# ---------------------------------------------------------------------- kernel choice


def _load_c_codec() -> RecordCodec | None:
    try:
        kernel = importlib.import_module("streamlog.log._records_c")
    except ImportError:
        return None
    return RecordCodec(kernel, "c")


PYTHON_CODEC = RecordCodec(_records_py, "python")
C_CODEC = _load_c_codec()
_PURE_PYTHON = os.environ.get("STREAMLOG_PURE_PYTHON", "") not in ("", "0")
_CODEC = PYTHON_CODEC if _PURE_PYTHON or C_CODEC is None else C_CODEC
IMPLEMENTATION: str = _CODEC.name

encode_batch = _CODEC.encode_batch
encode_records = _CODEC.encode_records
batch_builder = _CODEC.batch_builder
encode_built = _CODEC.encode_built
decode_batch = _CODEC.decode_batch
decode_batch_as = _CODEC.decode_batch_as
scan_batch = _CODEC.scan_batch
iter_batches = _CODEC.iter_batches
