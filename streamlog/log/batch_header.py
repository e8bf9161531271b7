"""The fixed 61-byte header of a Kafka RecordBatch v2, read without touching the records.

Layout (big-endian), as in Kafka's ``DefaultRecordBatch``::

    0  baseOffset            int64    -- outside the CRC: the log patches it on append
    8  batchLength           int32    -- bytes after this field (total size - 12)
    12 partitionLeaderEpoch  int32    -- outside the CRC
    16 magic                 int8     -- 2
    17 crc                   uint32   -- CRC-32C of bytes 21..end
    21 attributes            int16
    23 lastOffsetDelta       int32
    27 baseTimestamp         int64
    35 maxTimestamp          int64
    43 producerId            int64
    51 producerEpoch         int16
    53 baseSequence          int32
    57 recordCount           int32
    61 records...

The log stores and serves batches as bytes; this module is everything the storage layer
needs to know about them (offsets, sizes, timestamps, validity).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from crc32c import crc32c

from streamlog.log.errors import CorruptRecordError, InvalidRecordError

__all__ = [
    "HEADER_SIZE",
    "LOG_OVERHEAD",
    "MAGIC",
    "HEADER_LAYOUT",
    "OFFSET_AND_LENGTH",
    "BATCH_LENGTH",
    "BATCH_LENGTH_AT",
    "CRC",
    "CRC_AT",
    "CRC_START",
    "ATTRIBUTES",
    "ATTRIBUTES_AT",
    "LAST_OFFSET_DELTA",
    "LAST_OFFSET_DELTA_AT",
    "MAX_TIMESTAMP",
    "MAX_TIMESTAMP_AT",
    "PRODUCER_ID",
    "PRODUCER_FIELDS",
    "PRODUCER_ID_AT",
    "BatchHeader",
    "COMPRESSION_MASK",
    "TIMESTAMP_TYPE_MASK",
    "TRANSACTIONAL_MASK",
    "CONTROL_MASK",
    "DELETE_HORIZON_MASK",
    "NO_PRODUCER_ID",
    "NO_SEQUENCE",
    "parse_header",
    "peek_offsets",
    "validate_batch",
    "batch_crc",
    "iter_batch_spans",
    "write_crc",
]

HEADER_SIZE = 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: the bytes not counted by batchLength
MAGIC = 2

# The layout above, the one definition of it: every field in order, then where each
# field that is read or patched on its own starts and its struct. Codecs, the validator
# and the clients take these from here (tests/log/test_batch_header.py checks each
# position against HEADER_LAYOUT).
HEADER_LAYOUT = struct.Struct(">qiibIhiqqqhii")
OFFSET_AND_LENGTH = struct.Struct(">qi")  # baseOffset, batchLength: the framing, at 0
BATCH_LENGTH_AT = 8
BATCH_LENGTH = struct.Struct(">i")
CRC_AT = 17
CRC = struct.Struct(">I")
ATTRIBUTES_AT = 21
ATTRIBUTES = struct.Struct(">h")
CRC_START = ATTRIBUTES_AT  # the CRC covers the attributes and everything after them
LAST_OFFSET_DELTA_AT = 23
LAST_OFFSET_DELTA = struct.Struct(">i")
MAX_TIMESTAMP_AT = 35
MAX_TIMESTAMP = struct.Struct(">q")
PRODUCER_ID_AT = 43
PRODUCER_ID = struct.Struct(">q")
# producerId, producerEpoch, baseSequence: adjacent from PRODUCER_ID_AT, what an
# idempotent producer stamps on a batch.
PRODUCER_FIELDS = struct.Struct(">qhi")

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20
DELETE_HORIZON_MASK = 0x40

NO_PRODUCER_ID = -1
NO_SEQUENCE = -1


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The decoded header of one stored batch. ``size`` is the whole batch in bytes."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def is_log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE_MASK)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)

    @property
    def has_delete_horizon(self) -> bool:
        return bool(self.attributes & DELETE_HORIZON_MASK)

    @property
    def last_sequence(self) -> int:
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        return (self.base_sequence + self.last_offset_delta) & 0x7FFFFFFF


def parse_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Decode the header at ``pos``; checks size and magic, not the CRC."""
    if len(buf) - pos < HEADER_SIZE:
        raise CorruptRecordError(
            f"record batch header needs {HEADER_SIZE} bytes, {len(buf) - pos} available"
        )
    header = BatchHeader(*HEADER_LAYOUT.unpack_from(buf, pos))
    if header.magic != MAGIC:
        raise InvalidRecordError(f"record batch magic {header.magic} is not supported (need 2)")
    if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
        raise CorruptRecordError(f"record batch length {header.batch_length} is too small")
    return header


def peek_offsets(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int, int]:
    """(base offset, size in bytes, last offset) of the batch at ``pos``, with no checks.

    The storage layer walks batches it wrote itself with this; it is the cheapest read.
    """
    base_offset, batch_length = OFFSET_AND_LENGTH.unpack_from(buf, pos)
    (delta,) = LAST_OFFSET_DELTA.unpack_from(buf, pos + LAST_OFFSET_DELTA_AT)
    return base_offset, batch_length + LOG_OVERHEAD, base_offset + delta


def batch_crc(buf: bytes | bytearray | memoryview, pos: int, size: int) -> int:
    """CRC-32C of the CRC-covered part of the batch at ``pos`` of ``size`` bytes."""
    view = memoryview(buf)[pos + CRC_START : pos + size]
    return crc32c(view)


def write_crc(buf: bytearray, pos: int, size: int) -> int:
    """Compute the CRC of the batch at ``pos`` of ``size`` bytes and store it in its
    header, after a writer filled or patched the fields the CRC covers; returns it."""
    crc = batch_crc(buf, pos, size)
    CRC.pack_into(buf, pos + CRC_AT, crc)
    return crc


def validate_batch(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Parse and fully check the batch at ``pos``: bounds, magic, lengths and CRC.

    Raises ``CorruptRecordError`` for anything a torn or bit-flipped write could produce.
    """
    header = parse_header(buf, pos)
    size = header.size
    if len(buf) - pos < size:
        raise CorruptRecordError(
            f"record batch of {size} bytes at position {pos} is truncated "
            f"({len(buf) - pos} bytes available)"
        )
    actual = batch_crc(buf, pos, size)
    if actual != header.crc:
        raise CorruptRecordError(
            f"record batch at offset {header.base_offset} fails its CRC "
            f"(stored {header.crc:#010x}, computed {actual:#010x})"
        )
    if header.last_offset_delta < 0 or header.record_count < 0:
        raise CorruptRecordError("record batch has negative offset delta or record count")
    return header


def iter_batch_spans(
    buf: bytes | bytearray | memoryview,
) -> list[tuple[int, BatchHeader]]:
    """Validate every batch in a records buffer; return (position, header) for each.

    A produce request carries a buffer of one or more batches; each must be whole and
    valid, or the whole request is refused (nothing is appended).
    """
    spans: list[tuple[int, BatchHeader]] = []
    pos = 0
    end = len(buf)
    while pos < end:
        header = validate_batch(buf, pos)
        spans.append((pos, header))
        pos += header.size
    return spans
