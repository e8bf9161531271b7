"""What the log checks in record batches before it stores them (Kafka's LogValidator).

``PartitionLog.append`` runs ``validate_records`` on every produce request's batches,
whichever transport brought them (the broker's Produce handler, the embedded producer),
before anything is written: a request either passes whole or is refused whole, and the
log is untouched. Each batch, after the framing and CRC checks of ``iter_batch_spans``:

1. is at most ``max.message.bytes`` (``RecordTooLargeError``);
2. declares a record count that is positive and agrees with its last offset delta
   (``InvalidRecordError``);
3. from a client (``AppendOrigin.CLIENT``): is not a control batch ("clients are not
   allowed to write control records"), has a base sequence if it has a producer id
   (``InvalidRecordError``), and is transactional only when the caller says the producer
   is in a transaction that includes the partition (``transaction_verified``: the
   broker asks its transaction coordinator), else Kafka's INVALID_TXN_STATE
   (``InvalidTxnStateError``); a transactional batch needs a producer id and a sequence;
4. names a compression codec Kafka defines (``UnsupportedCompressionError``);
5. does not claim LogAppendTime on a CreateTime topic (``InvalidTimestampError``);
6. holds records that parse, decompressed within ``max.message.bytes`` (the bound is
   the same whether the batch is compressed or not; a payload that inflates past it is
   ``RecordTooLargeError`` after at most that many bytes of work, one that does not
   decompress or whose records do not parse is ``MalformedRecordError``): the declared
   count is the number of records, offset deltas run 0, 1, 2, ..., every varint and
   length is in bounds, header keys are UTF-8, nothing follows the last record;
7. holds records that keep the topic's rules: a key in a compacted topic
   (``RecordValidationError``), and on a CreateTime topic a timestamp within
   ``message.timestamp.before.max.ms`` / ``after.max.ms`` of the broker's clock, -1 (no
   timestamp) excepted (``InvalidTimestampError``). These two list the records at fault
   in ``record_errors``.

Then, as Kafka does: a CreateTime batch whose maxTimestamp is not its records' largest
timestamp gets the right one, and on a LogAppendTime topic every batch is stamped with
the broker's clock (each with its CRC recomputed, on a copy of the request's bytes).
Everything else is stored exactly as sent.

The record walk is the codec's ``scan_batch`` (in C when the C codec is built): it
makes no record objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from enum import Enum
from typing import NamedTuple

from streamlog.log.batch_header import (
    ATTRIBUTES,
    ATTRIBUTES_AT,
    MAX_TIMESTAMP,
    MAX_TIMESTAMP_AT,
    TIMESTAMP_TYPE_MASK,
    BatchHeader,
    write_crc,
)
from streamlog.log.compression import Compression, UnsupportedCompressionError
from streamlog.log.config import TopicConfig
from streamlog.log.errors import (
    CorruptRecordError,
    DecompressionLimitError,
    InvalidRecordError,
    InvalidTimestampError,
    InvalidTxnStateError,
    MalformedRecordError,
    RecordTooLargeError,
    RecordValidationError,
)
from streamlog.log.records import RecordProblem, RecordScan, scan_batch

__all__ = ["AppendOrigin", "MAX_RECORD_ERRORS", "ValidatedRecords", "validate_records"]

MAX_RECORD_ERRORS = 100
"""How many records at fault an error lists (Kafka lists all; its message shows 3)."""

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_CODECS = frozenset(int(codec) for codec in Compression)

Buffer = bytes | bytearray | memoryview
Span = tuple[int, BatchHeader]


class AppendOrigin(Enum):
    """Who wrote the batches (Kafka's AppendOrigin): a client gets every check; the
    broker's own writers (the group coordinator, transaction markers) may write control
    and transactional batches."""

    CLIENT = "client"
    COORDINATOR = "coordinator"


class ValidatedRecords(NamedTuple):
    """The batches to store: ``records`` (the caller's buffer, or a patched copy) and the
    (position, header) of each. ``log_append_time`` is -1 on a CreateTime topic."""

    records: Buffer
    spans: list[Span]
    log_append_time: int


def validate_records(
    records: Buffer,
    spans: Sequence[Span],
    config: TopicConfig,
    now_ms: int,
    origin: AppendOrigin = AppendOrigin.CLIENT,
    transaction_verified: bool = False,
) -> ValidatedRecords:
    """Check the batches of one produce request (see the module docstring) and return
    them as they are to be stored. ``spans`` come from ``iter_batch_spans``."""
    create_time = config.message_timestamp_type == "CreateTime"
    if create_time:
        min_ts = max(_INT64_MIN, now_ms - config.message_timestamp_before_max_ms)
        max_ts = min(_INT64_MAX, now_ms + config.message_timestamp_after_max_ms)
    else:
        min_ts, max_ts = _INT64_MIN, _INT64_MAX
    several = len(spans) > 1
    patched: bytearray | None = None
    out: list[Span] = []
    for number, (pos, header) in enumerate(spans):
        where = f"batch {number}: " if several else ""
        _check_header(header, config, origin, where, transaction_verified)
        scan = _scan(records, pos, header, config, min_ts, max_ts, where)
        if scan.problem_count:
            raise _rule_error(scan.problems, scan.problem_count, min_ts, max_ts, where)
        if create_time:
            if scan.max_timestamp != header.max_timestamp:
                if patched is None:
                    patched = bytearray(records)
                header = _restamp(patched, pos, header, header.attributes, scan.max_timestamp)
        else:
            if patched is None:
                patched = bytearray(records)
            header = _restamp(patched, pos, header, header.attributes | TIMESTAMP_TYPE_MASK, now_ms)
        out.append((pos, header))
    return ValidatedRecords(
        records if patched is None else patched, out, -1 if create_time else now_ms
    )


def _check_header(
    header: BatchHeader,
    config: TopicConfig,
    origin: AppendOrigin,
    where: str,
    transaction_verified: bool,
) -> None:
    max_bytes = config.max_message_bytes
    if header.size > max_bytes:
        raise RecordTooLargeError(
            f"{where}record batch of {header.size} bytes exceeds max.message.bytes={max_bytes}"
        )
    if header.record_count <= 0 or header.last_offset_delta != header.record_count - 1:
        raise InvalidRecordError(
            f"{where}record batch declares {header.record_count} records but last offset "
            f"delta {header.last_offset_delta}"
        )
    if origin is AppendOrigin.CLIENT:
        if header.is_control:
            raise InvalidRecordError(f"{where}clients are not allowed to write control records")
        if header.producer_id >= 0 and header.base_sequence < 0:
            raise InvalidRecordError(
                f"{where}invalid sequence number {header.base_sequence} in a record batch "
                f"with producer id {header.producer_id}"
            )
        if header.is_transactional:
            if not transaction_verified:
                raise InvalidTxnStateError(
                    f"{where}record was not part of an ongoing transaction (producer id "
                    f"{header.producer_id}): the partition was not added to a transaction"
                )
            if header.producer_id < 0:
                raise InvalidRecordError(f"{where}a transactional batch needs a producer id")
    if header.compression not in _CODECS:
        raise UnsupportedCompressionError(
            f"{where}compression type {header.compression} is not supported"
        )
    if header.is_log_append_time and config.message_timestamp_type == "CreateTime":
        raise InvalidTimestampError(
            f"{where}a producer must not set the timestamp type to LogAppendTime",
            tuple(
                (i, "the batch claims LogAppendTime on a CreateTime topic")
                for i in range(min(header.record_count, MAX_RECORD_ERRORS))
            ),
        )


def _scan(
    records: Buffer,
    pos: int,
    header: BatchHeader,
    config: TopicConfig,
    min_ts: int,
    max_ts: int,
    where: str,
) -> RecordScan:
    limit = config.max_message_bytes
    try:
        return scan_batch(
            records,
            pos,
            header,
            limit=limit,
            need_keys=config.compact,
            min_timestamp=min_ts,
            max_timestamp=max_ts,
            max_problems=MAX_RECORD_ERRORS,
        )
    except DecompressionLimitError:
        raise RecordTooLargeError(
            f"{where}the batch's records take more than max.message.bytes={limit} bytes "
            "once decompressed"
        ) from None
    except CorruptRecordError as exc:
        raise MalformedRecordError(f"{where}{exc}") from None


def _rule_error(
    problems: list[tuple[int, int]], count: int, min_ts: int, max_ts: int, where: str
) -> RecordValidationError:
    record_errors = tuple((index, _describe(kind, min_ts, max_ts)) for index, kind in problems)
    if any(kind == RecordProblem.TIMESTAMP_OUT_OF_RANGE for _, kind in problems):
        return InvalidTimestampError(
            f"{where}one or more records have been rejected due to invalid timestamp "
            f"({count} in total, the first: {_first(record_errors)})",
            record_errors,
        )
    return RecordValidationError(
        f"{where}one or more records have been rejected due to {count} record errors in "
        f"total, the first: {_first(record_errors)}",
        record_errors,
    )


def _describe(kind: int, min_ts: int, max_ts: int) -> str:
    if kind == RecordProblem.NO_KEY:
        return "compacted topic cannot accept a record without a key"
    return f"timestamp is out of range: it must be within [{min_ts}, {max_ts}]"


def _first(record_errors: tuple[tuple[int, str], ...]) -> str:
    return "; ".join(f"record {i}: {message}" for i, message in record_errors[:3])


def _restamp(
    buf: bytearray, pos: int, header: BatchHeader, attributes: int, max_timestamp: int
) -> BatchHeader:
    """Set the batch's attributes and maxTimestamp in ``buf`` and recompute its CRC."""
    ATTRIBUTES.pack_into(buf, pos + ATTRIBUTES_AT, attributes)
    MAX_TIMESTAMP.pack_into(buf, pos + MAX_TIMESTAMP_AT, max_timestamp)
    crc = write_crc(buf, pos, header.size)
    return replace(header, crc=crc, attributes=attributes, max_timestamp=max_timestamp)
