"""Rebuilding a partition's producer state and aborted-transaction indexes from its log.

Used when the snapshot of a clean shutdown cannot be used (a crash, a damaged tail, a
missing or corrupt ``.txnindex``, an interrupted compaction) and after a truncation.
Every batch header is read in offset order, as Kafka's ``LogLoader`` replays segments:

* an idempotent or transactional data batch updates its producer's sequence cache, and a
  transactional one opens its producer's transaction if none is open;
* a control batch is decoded (it is one small record: version and type in the key,
  version and coordinator epoch in the value) and ends its producer's transaction; an
  ended aborted transaction becomes an entry of the ``.txnindex`` of the segment holding
  its marker, each segment's index being rewritten from what the scan found.

Bounded: markers are read with ``markers.read_marker`` (a control batch larger than
``MAX_MARKER_BATCH_BYTES`` is not even read), and one that does not decode or is not a
transaction marker is not used. Such a marker is
logged and taken as an abort: the transaction it ends is over (so the last stable offset
is not held forever), and what cannot be shown committed is not exposed to
``read_committed`` readers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from streamlog.log.batch_header import BatchHeader
from streamlog.log.errors import CorruptRecordError, InvalidRecordError
from streamlog.log.markers import MAX_MARKER_BATCH_BYTES, read_marker
from streamlog.log.producer_state import ProducerStateManager
from streamlog.log.records import ControlType
from streamlog.log.segment import LogSegment
from streamlog.log.txn_index import AbortedTxn

__all__ = ["scan_producer_state"]

log = logging.getLogger("streamlog.log.partition_log")


def scan_producer_state(directory: str, segments: Sequence[LogSegment]) -> ProducerStateManager:
    """The producer state of ``segments`` (in order), rewriting their ``.txnindex`` files.

    A segment whose headers cannot be read past some point (damage inside a sealed
    segment, which the tail check does not reach) is logged and the scan goes on with the
    next one: a producer whose state is lost gets OUT_OF_ORDER_SEQUENCE_NUMBER and starts
    over, which loses nothing.
    """
    state = ProducerStateManager(directory)
    for segment in segments:
        aborted: list[AbortedTxn] = []
        try:
            for position, header in segment.headers_from(0):
                if header.is_control:
                    _apply_marker(state, segment, position, header, aborted)
                elif header.producer_id >= 0 and header.base_sequence >= 0:
                    state.record(header, header.base_offset)
        except (CorruptRecordError, InvalidRecordError) as exc:
            log.warning("%s: producer state not read past the damage: %s", segment.files.log, exc)
        segment.txn_index.reset(aborted)
    return state


def _apply_marker(
    state: ProducerStateManager,
    segment: LogSegment,
    position: int,
    header: BatchHeader,
    aborted: list[AbortedTxn],
) -> None:
    coordinator_epoch = -1
    is_abort = True
    try:
        if header.size > MAX_MARKER_BATCH_BYTES:  # checked before reading it
            raise InvalidRecordError(f"a control batch of {header.size} bytes")
        _, marker = read_marker(segment.read_at(position, header.size), 0, header)
        coordinator_epoch = marker.coordinator_epoch
        is_abort = marker.type == ControlType.ABORT
    except (CorruptRecordError, InvalidRecordError) as exc:
        log.warning(
            "%s: control batch at offset %d is not a readable transaction marker (%s): "
            "taken as an abort",
            segment.files.log,
            header.base_offset,
            exc,
        )
    completed = state.complete(
        header.producer_id,
        header.producer_epoch,
        coordinator_epoch,
        header.last_offset,
        header.max_timestamp,
        is_abort,
    )
    if completed.aborted:
        aborted.append(
            AbortedTxn(
                completed.producer_id,
                completed.first_offset,
                completed.last_offset,
                state.stable_offset_after(completed),
            )
        )
