"""Reading the transaction marker of a control batch, bounded.

A marker batch holds one control record (Kafka's EndTransactionMarker: key = version int16
+ type int16, 0 abort / 1 commit; value = version int16 + coordinator epoch int32) and is
about 80 bytes. The appender, the recovery replay and the cleaner all read markers through
``read_marker``, which refuses anything larger than ``MAX_MARKER_BATCH_BYTES`` before
decoding it (decompression stops at that bound too).
"""

from __future__ import annotations

from streamlog.log.batch_header import BatchHeader
from streamlog.log.errors import InvalidRecordError
from streamlog.log.records import ControlRecord, DecodedBatch, decode_batch, decode_control_record

__all__ = ["MAX_MARKER_BATCH_BYTES", "read_marker"]

MAX_MARKER_BATCH_BYTES = 1024
"""A transaction marker batch is about 80 bytes; a larger control batch is not one."""


def read_marker(
    buf: bytes | bytearray | memoryview, pos: int, header: BatchHeader
) -> tuple[DecodedBatch, ControlRecord]:
    """The batch at ``pos`` of ``buf`` (with its parsed ``header``) and its marker.

    ``InvalidRecordError`` for a control batch that is too large or does not hold exactly
    one record; ``CorruptRecordError`` (or ``InvalidRecordError`` for an unknown type)
    from ``decode_control_record`` for a record that is not a marker.
    """
    if header.size > MAX_MARKER_BATCH_BYTES or header.record_count != 1:
        raise InvalidRecordError(
            f"a control batch must be one transaction marker ({header.record_count} records, "
            f"{header.size} bytes)"
        )
    batch = decode_batch(memoryview(buf)[pos : pos + header.size], limit=MAX_MARKER_BATCH_BYTES)
    if len(batch.records) != 1:
        raise InvalidRecordError(f"a control batch of {len(batch.records)} records")
    return batch, decode_control_record(batch.records[0])
