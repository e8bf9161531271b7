"""Log compaction for ``cleanup.policy=compact``: keep the latest record per key.

One pass over a partition (Kafka's algorithm, simplified where noted):

1. The cleanable range is every inactive segment, up to the first one younger than
   ``min.compaction.lag.ms`` or holding offsets at or past the last stable offset (data
   of a transaction still open is not decided yet). The active segment is never cleaned.
2. The dirty section is the cleanable range past the cleaner checkpoint (where the last
   pass stopped). Build a map key -> latest offset over the dirty section only: the clean
   section already holds at most one record per key.
3. Rewrite the cleanable segments, in groups that fit ``segment.bytes``, into ``.cleaned``
   files: a record survives if no later record has its key. Offsets never change: a
   rewritten batch keeps its base offset and last offset delta.
4. Tombstones (null values) survive the pass that first sees them, with the batch's delete
   horizon set to now + ``delete.retention.ms`` (Kafka's ``hasDeleteHorizonMs``); a later
   pass after the horizon drops them, so consumers that read within the horizon see them.
5. Records of aborted transactions are removed (and never enter the offset map);
   transaction markers are kept until their transaction's records are gone and
   ``delete.retention.ms`` has passed, with their ``.txnindex`` entries
   (``cleaner_txns.py``).
6. Swap each group in through ``PartitionLog.replace_segments`` (crash-safe renames) and
   advance the checkpoint to the first uncleanable offset.

Simplifications: the offset map is a dict, not a bounded hash buffer (memory grows with
the number of distinct keys in the dirty section); keyless records are kept.

A stored batch the cleaner cannot decode (corrupt records, or a compressed payload that
inflates past the log's ``read_limit``: decompression stops there) is kept as it is and
its keys stay out of the offset map: a pass never fails, and never drops records, because
of one batch (Kafka's cleaner fails the partition instead). Appends validate every batch,
so such a batch can only date from before that validation.

Appends are never blocked by a pass: the log's lock is taken only for the swap.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streamlog.log.batch_header import BatchHeader, parse_header
from streamlog.log.checkpoint import OffsetCheckpoint
from streamlog.log.cleaner_txns import TransactionTracker
from streamlog.log.clock import Clock
from streamlog.log.errors import CorruptRecordError, InvalidRecordError
from streamlog.log.loader import CLEANED_SUFFIX
from streamlog.log.markers import read_marker
from streamlog.log.partition_log import PartitionLog
from streamlog.log.records import DecodedBatch, Record, decode_batch, encode_records
from streamlog.log.segment import LogSegment, SegmentFiles
from streamlog.log.txn_index import AbortedTxn

__all__ = ["LogCleaner", "CleanResult", "CLEANER_CHECKPOINT_FILE"]

log = logging.getLogger(__name__)

CLEANER_CHECKPOINT_FILE = "cleaner-checkpoint"


@dataclass(frozen=True, slots=True)
class CleanResult:
    segments_before: int
    segments_after: int
    bytes_before: int
    bytes_after: int
    records_removed: int
    tombstones_removed: int
    first_uncleanable_offset: int
    aborted_records_removed: int = 0
    markers_removed: int = 0


class LogCleaner:
    """Compacts partition logs; holds no per-log state but the pending tombstone horizons."""

    def __init__(self, clock: Clock, on_step: Callable[[str], None] | None = None) -> None:
        self.clock = clock
        self._on_step = on_step
        self._next_horizon: dict[str, int] = {}

    # -- when ----------------------------------------------------------------------------

    def _cleanable(self, plog: PartitionLog) -> list[LogSegment]:
        segments = list(plog.segments)[:-1]
        stable = plog.last_stable_offset
        lag = plog.config.min_compaction_lag_ms
        limit = self.clock.time_ms() - lag
        for i, segment in enumerate(segments):
            if segment.next_offset > stable or (lag > 0 and segment.max_timestamp > limit):
                return segments[:i]
        return segments

    def dirty_ratio(self, plog: PartitionLog) -> float:
        checkpoint = _checkpoint(plog).read() or 0
        clean = dirty = 0
        for segment in self._cleanable(plog):
            if segment.next_offset <= checkpoint:
                clean += segment.size
            else:
                dirty += segment.size
        total = clean + dirty
        return dirty / total if total else 0.0

    def needs_cleaning(self, plog: PartitionLog) -> bool:
        horizon = self._next_horizon.get(plog.directory)
        if horizon is not None and self.clock.time_ms() >= horizon:
            return True
        return self.dirty_ratio(plog) >= plog.config.min_cleanable_dirty_ratio

    # -- how -----------------------------------------------------------------------------

    def clean(self, plog: PartitionLog) -> CleanResult | None:
        """Run one compaction pass; None if there was nothing cleanable."""
        cleanable = self._cleanable(plog)
        if not cleanable or all(s.size == 0 for s in cleanable):
            return None
        checkpoint = _checkpoint(plog)
        dirty_from = checkpoint.read() or 0
        first_uncleanable = plog.segments[len(cleanable)].base_offset
        limit = plog.read_limit
        start = cleanable[0].base_offset
        aborted = plog.aborted_transactions(start, first_uncleanable)
        latest = self._offset_map(cleanable, dirty_from, limit, aborted)
        now = self.clock.time_ms()
        horizon_for_new = now + plog.config.delete_retention_ms
        removed = tombstones_removed = aborted_removed = markers_removed = 0
        bytes_before = sum(s.size for s in cleanable)
        next_horizon: int | None = None
        new_segments = 0
        tracker = TransactionTracker(aborted, start)
        for group in _groups(cleanable, plog.config.segment_bytes):
            cleaned = _fresh_cleaned_segment(plog, group[0].base_offset)
            kept_aborts: list[AbortedTxn] = []
            try:
                for segment in group:
                    for _, raw in segment.read_batches():
                        header = parse_header(raw)
                        horizon: int | None = None
                        out: bytes | None
                        if header.is_control:
                            out, horizon, entry = _clean_marker(
                                raw, header, tracker, now, horizon_for_new
                            )
                            if out is None:
                                markers_removed += 1
                            elif entry is not None:
                                kept_aborts.append(entry)
                        elif tracker.is_aborted(header):
                            out = None
                            aborted_removed += header.record_count
                        else:
                            out, dropped, dropped_tombstones, horizon = _clean_batch(
                                raw, latest, now, horizon_for_new, limit
                            )
                            removed += dropped
                            tombstones_removed += dropped_tombstones
                        if horizon is not None:
                            next_horizon = (
                                horizon if next_horizon is None else min(next_horizon, horizon)
                            )
                        if out is not None:
                            header = parse_header(out)
                            cleaned.append([(header.base_offset, memoryview(out)[8:])], [header])
                cleaned.txn_index.reset(kept_aborts)
                cleaned.seal()
                self._step("cleaned")
                plog.replace_segments(group, cleaned, on_step=self._on_step)
                new_segments += 1
            except BaseException:
                cleaned.delete_files()
                raise
        checkpoint.write(first_uncleanable, durable=True)
        if next_horizon is None:
            self._next_horizon.pop(plog.directory, None)
        else:
            self._next_horizon[plog.directory] = next_horizon
        result = CleanResult(
            len(cleanable),
            new_segments,
            bytes_before,
            sum(s.size for s in plog.segments[:new_segments]),
            removed,
            tombstones_removed,
            first_uncleanable,
            aborted_removed,
            markers_removed,
        )
        log.info("cleaned %s: %s", plog.directory, result)
        return result

    def _offset_map(
        self, segments: list[LogSegment], dirty_from: int, limit: int, aborted: list[AbortedTxn]
    ) -> dict[bytes, int]:
        latest: dict[bytes, int] = {}
        tracker: TransactionTracker | None = None
        for segment in segments:
            if segment.next_offset <= dirty_from:
                continue
            if tracker is None:
                tracker = TransactionTracker(aborted, segment.base_offset)
            for position, raw in segment.read_batches():
                header = parse_header(raw)
                if header.is_control:
                    # the marker ends its producer's transaction for the tracker: else
                    # that producer's later committed batches would count as aborted
                    # and stay out of the map (their keys' older values never removed)
                    try:
                        _, marker = read_marker(raw, 0, header)
                    except (CorruptRecordError, InvalidRecordError):
                        continue
                    tracker.on_marker(header, marker.type)
                    continue
                if tracker.is_aborted(header):
                    continue
                try:
                    batch = decode_batch(raw, limit=limit)
                except (CorruptRecordError, InvalidRecordError) as exc:
                    log.warning(
                        "%s: keeping an undecodable batch at position %d as it is: %s",
                        segment.files.log,
                        position,
                        exc,
                    )
                    continue
                for record in batch.records:
                    if record.key is not None and record.offset >= dirty_from:
                        latest[record.key] = record.offset
        return latest

    def _step(self, name: str) -> None:
        if self._on_step is not None:
            self._on_step(name)


def _checkpoint(plog: PartitionLog) -> OffsetCheckpoint:
    return OffsetCheckpoint(os.path.join(plog.directory, CLEANER_CHECKPOINT_FILE))


def _groups(segments: list[LogSegment], max_bytes: int) -> list[list[LogSegment]]:
    """Consecutive runs of segments small enough to be merged into one."""
    groups: list[list[LogSegment]] = []
    current: list[LogSegment] = []
    size = 0
    for segment in segments:
        span = segment.next_offset - (current[0].base_offset if current else segment.base_offset)
        if current and (size + segment.size > max_bytes or span > (1 << 31) - 1):
            groups.append(current)
            current, size = [], 0
        current.append(segment)
        size += segment.size
    if current:
        groups.append(current)
    return groups


def _fresh_cleaned_segment(plog: PartitionLog, base_offset: int) -> LogSegment:
    stale = SegmentFiles.at(plog.directory, base_offset, CLEANED_SUFFIX)
    for path in stale.all:
        if os.path.exists(path):
            os.unlink(path)
    return LogSegment(
        plog.directory,
        base_offset,
        index_interval_bytes=plog.config.index_interval_bytes,
        created_ms=plog.clock.time_ms(),
        suffix=CLEANED_SUFFIX,
    )


def _clean_marker(
    raw: bytes,
    header: BatchHeader,
    tracker: TransactionTracker,
    now: int,
    horizon_for_new: int,
) -> tuple[bytes | None, int | None, AbortedTxn | None]:
    """(marker batch to keep or None, pending horizon, index entry it carries).

    A control batch that is not a readable marker is kept as it is, like any batch the
    cleaner cannot decode.
    """
    try:
        batch, marker = read_marker(raw, 0, header)
    except (CorruptRecordError, InvalidRecordError):
        return raw, None, None
    removable, entry = tracker.on_marker(header, marker.type)
    if not removable:
        return raw, None, entry
    if header.has_delete_horizon:
        if now >= header.base_timestamp:
            return None, None, None
        return raw, header.base_timestamp, entry
    return _with_horizon(batch, horizon_for_new), horizon_for_new, entry


def _with_horizon(batch: DecodedBatch, horizon: int) -> bytes:
    return _reencode(batch.header, batch.records, horizon, control=True)


def _reencode(
    header: BatchHeader, records: Sequence[Record], horizon: int | None, *, control: bool = False
) -> bytes:
    """``records`` as a batch with ``header``'s offsets, producer and flags, and a delete
    horizon: what the cleaner writes back, kept or with records dropped."""
    return encode_records(
        records,
        base_offset=header.base_offset,
        last_offset_delta=header.last_offset_delta,
        compression=header.compression,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        transactional=header.is_transactional or control,  # markers are transactional
        control=control,
        log_append_time=header.is_log_append_time,
        partition_leader_epoch=header.partition_leader_epoch,
        delete_horizon_ms=horizon,
    )


def _clean_batch(
    raw: bytes, latest: dict[bytes, int], now: int, horizon_for_new: int, limit: int
) -> tuple[bytes | None, int, int, int | None]:
    """(batch to keep or None, records dropped, tombstones dropped, pending horizon).

    An undecodable batch is kept as it is (see the module docstring).
    """
    try:
        batch = decode_batch(raw, limit=limit)
    except (CorruptRecordError, InvalidRecordError):
        return raw, 0, 0, None
    header = batch.header
    if header.is_control:
        return raw, 0, 0, None
    horizon = header.base_timestamp if header.has_delete_horizon else None
    kept = []
    dropped = dropped_tombstones = 0
    has_tombstone = False
    for record in batch.records:
        key = record.key
        if key is not None and latest.get(key, record.offset) > record.offset:
            dropped += 1
            continue
        if record.value is None and key is not None:
            if horizon is not None and now >= horizon:
                dropped += 1
                dropped_tombstones += 1
                continue
            has_tombstone = True
        kept.append(record)
    if not kept:
        return None, dropped, dropped_tombstones, None
    new_horizon = horizon
    if has_tombstone and horizon is None:
        new_horizon = horizon_for_new
    if not has_tombstone:
        new_horizon = None
    if dropped == 0 and new_horizon == horizon:
        return raw, 0, 0, new_horizon
    out = _reencode(header, kept, new_horizon)
    return out, dropped, dropped_tombstones, new_horizon
