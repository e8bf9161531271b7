"""The log of one topic partition: an ordered run of segments behind one façade.

What a caller sees (Kafka's meanings):

* ``log_start_offset``: the first offset that may be read; below it is gone (retention,
  ``delete_records_before``).
* ``log_end_offset``: one past the last appended offset; the next append starts here.
* ``high_watermark``: what consumers may read. There is one replica, so every appended
  batch is committed at once and the high watermark equals the log end offset.
* ``last_stable_offset``: what ``read_committed`` consumers may read: the first offset of
  the earliest transaction still open on the partition, else the high watermark (never
  below the log start offset). Transactions: see ``producer_state.py`` (the rules),
  ``txn_index.py`` (the aborted transactions a ``read_committed`` read returns) and
  ``write_txn_marker``.
* ``recovery_point``: everything below it has been fsynced; after an unclean shutdown
  only segments from the one holding the recovery point onward are scanned.

Files in the partition directory: the segments (``<20-digit base>.log``, ``.index``,
``.timeindex``, ``.txnindex`` when it holds aborted transactions), ``recovery-point`` and
``log-start-offset`` checkpoints, ``producer-state.json`` while the log is closed, and
``clean-shutdown`` while the log is closed cleanly. Compaction replaces segments through
``.cleaned`` -> ``.swap`` -> live renames; opening finishes or discards a swap that a crash
interrupted (see ``_complete_interrupted_swaps``).

Thread-safety: every public method takes the log's lock, so the background cleaner and
flusher can share a log with the thread that appends.

Descriptors: with a ``FileCache`` (``LogManager`` passes its own) the segments' files are
opened on first use and at most the cache's capacity are open across every log sharing
it; an idle partition holds none (see ``file_cache.py``).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from streamlog.log.batch_header import (
    BatchHeader,
    iter_batch_spans,
    peek_offsets,
)
from streamlog.log.checkpoint import OffsetCheckpoint, fsync_directory
from streamlog.log.clock import Clock
from streamlog.log.compression import DEFAULT_DECOMPRESSED_LIMIT
from streamlog.log.config import TopicConfig
from streamlog.log.errors import (
    CorruptRecordError,
    InvalidRecordError,
    LogClosedError,
    OffsetOutOfRangeError,
)
from streamlog.log.file_cache import FileCache
from streamlog.log.loader import (
    CLEAN_SHUTDOWN_FILE,
    DELETED_SUFFIX,
    LOG_START_FILE,
    RECOVERY_POINT_FILE,
    SWAP_SUFFIX,
    RecoveryReport,
    load_partition,
)
from streamlog.log.markers import read_marker
from streamlog.log.producer_scan import scan_producer_state
from streamlog.log.producer_state import ProducerStateManager
from streamlog.log.records import ControlType, encode_control_batch
from streamlog.log.segment import MAX_RELATIVE_OFFSET, LogSegment
from streamlog.log.txn_index import AbortedTxn
from streamlog.log.validator import AppendOrigin, validate_records

__all__ = [
    "PartitionLog",
    "AbortedTxn",
    "AppendOrigin",
    "AppendResult",
    "IsolationLevel",
    "ReadResult",
    "RecoveryReport",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an append landed. ``log_append_time`` is -1 unless the topic stamps time."""

    base_offset: int
    last_offset: int
    record_count: int
    log_append_time: int
    log_start_offset: int
    duplicate: bool = False


class IsolationLevel(IntEnum):
    """What a read may see (Kafka's values, as a Fetch or ListOffsets request carries them)."""

    READ_UNCOMMITTED = 0
    READ_COMMITTED = 1


_READ_COMMITTED = IsolationLevel.READ_COMMITTED
_CLIENT = AppendOrigin.CLIENT


class ReadResult(NamedTuple):
    """Stored batch bytes from the requested offset, with the offsets a fetch reports.

    ``aborted_transactions`` (``read_committed`` reads only, else None) lists the aborted
    transactions with records in the range read: what a Fetch response carries so that
    the consumer drops their records. A named tuple: it is made on every fetch, and a
    frozen dataclass costs several times as much to build.
    """

    records: bytes | memoryview
    high_watermark: int
    log_start_offset: int
    log_end_offset: int
    last_stable_offset: int = -1
    aborted_transactions: tuple[AbortedTxn, ...] | None = None


class PartitionLog:
    """See the module docstring. Create with ``PartitionLog.open``."""

    def __init__(
        self,
        directory: str,
        config: TopicConfig,
        clock: Clock,
        segments: list[LogSegment],
        log_start_offset: int,
        recovery_point: int,
        report: RecoveryReport,
        producers: ProducerStateManager,
        file_cache: FileCache | None = None,
    ) -> None:
        self.directory = directory
        self.config = config
        self.clock = clock
        self._segments = segments
        self._log_start_offset = log_start_offset
        self._recovery_point = recovery_point
        self.recovery_report = report
        self.producers = producers
        self._lock = threading.RLock()
        self._unflushed_messages = 0
        self._last_flush_ms = clock.monotonic_ms()
        self._recovery_checkpoint = OffsetCheckpoint(os.path.join(directory, RECOVERY_POINT_FILE))
        self._start_checkpoint = OffsetCheckpoint(os.path.join(directory, LOG_START_FILE))
        self._closed = False
        self._file_cache = file_cache
        # The first offset of the earliest open transaction (None: none open), kept in
        # step with ``producers`` so that a read costs no search for it.
        self._first_unstable = producers.first_unstable_offset()
        if file_cache is not None:
            for segment in segments:
                segment.attach_file_cache(file_cache)

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: str,
        config: TopicConfig,
        clock: Clock,
        file_cache: FileCache | None = None,
    ) -> PartitionLog:
        """Open (or create) the log in ``directory``, recovering it if it was not closed.

        ``file_cache`` bounds the descriptors its segments hold (none: each segment keeps
        its file open from first use until the log is closed).
        """
        loaded = load_partition(directory, config, clock)
        plog = cls(
            directory,
            config,
            clock,
            loaded.segments,
            loaded.log_start_offset,
            loaded.recovery_point,
            loaded.report,
            loaded.producers,
            file_cache,
        )
        if not loaded.report.clean or loaded.report.bytes_truncated:
            plog.flush()  # what recovery kept is now the durable baseline
        return plog

    # -- offsets -------------------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._segments[-1].next_offset

    @property
    def high_watermark(self) -> int:
        return self._segments[-1].next_offset

    @property
    def last_stable_offset(self) -> int:
        """See the module docstring; ListOffsets' latest offset for ``read_committed``."""
        with self._lock:
            return self._stable_offset()

    def _stable_offset(self) -> int:
        first = self._first_unstable
        if first is None:
            return self._segments[-1].next_offset
        return max(first, self._log_start_offset)

    @property
    def recovery_point(self) -> int:
        return self._recovery_point

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    @property
    def segments(self) -> tuple[LogSegment, ...]:
        with self._lock:
            return tuple(self._segments)

    @property
    def active_segment(self) -> LogSegment:
        return self._segments[-1]

    # -- appending -----------------------------------------------------------------------

    def append(
        self,
        records: bytes | bytearray | memoryview,
        origin: AppendOrigin = AppendOrigin.CLIENT,
        *,
        transaction_verified: bool = False,
    ) -> AppendResult:
        """Validate one produce request's batches and append them with new offsets.

        Every batch must be whole, magic 2, CRC-valid and pass ``validate_records``
        (``validator.py``: sizes, counts, record framing, the topic's rules); if any is
        not, nothing is appended and the error says why. The broker stores the bytes as
        sent: only the 8-byte base offset is rewritten (it is outside the CRC), except
        where the validator restamps a batch's maxTimestamp (a wrong one, or a
        ``LogAppendTime`` topic) and recomputes its CRC. The write either lands whole
        with its index entries or leaves the log as it was.

        ``transaction_verified``: the caller (the broker, from its transaction
        coordinator) vouches that the producer of a transactional batch has added this
        partition to its open transaction; without it a client's transactional batch is
        ``InvalidTxnStateError``. A control batch (``AppendOrigin.COORDINATOR`` only) is
        a transaction marker: it must come alone and is applied as ``write_txn_marker``
        applies one.
        """
        view: bytes | bytearray | memoryview = (
            records if isinstance(records, bytes) else memoryview(records).cast("B")
        )
        spans = iter_batch_spans(view)
        if not spans:
            raise InvalidRecordError("a produce request must carry at least one record batch")
        validated = validate_records(
            view, spans, self.config, self.clock.time_ms(), origin, transaction_verified
        )
        view, spans, append_time = validated
        if origin is not _CLIENT and any(h.is_control for _, h in spans):
            return self._append_marker(view, spans, append_time)
        idempotent = any(h.producer_id >= 0 and h.base_sequence >= 0 for _, h in spans)
        if idempotent and len(spans) > 1:
            raise InvalidRecordError(
                "an idempotent producer must send one batch per partition per request"
            )
        with self._lock:
            self._check_open()
            if idempotent:
                duplicate = self.producers.check(spans[0][1])
                if duplicate is not None:
                    first = duplicate.original
                    return AppendResult(
                        first.first_offset,
                        first.last_offset,
                        spans[0][1].record_count,
                        append_time,
                        self._log_start_offset,
                        duplicate=True,
                    )
            total = sum(h.size for _, h in spans)
            max_ts = max(h.max_timestamp for _, h in spans)
            offsets = sum(h.last_offset_delta + 1 for _, h in spans)
            self._maybe_roll(total, max_ts, offsets)
            base = self.log_end_offset
            pieces: list[tuple[int, memoryview]] = []
            headers: list[BatchHeader] = []
            next_offset = base
            mv = memoryview(view)
            count = 0
            for pos, header in spans:
                pieces.append((next_offset, mv[pos + 8 : pos + header.size]))
                headers.append(header)
                next_offset += header.last_offset_delta + 1
                count += header.record_count
            self.active_segment.append(pieces, headers)
            if idempotent:
                self.producers.record(headers[0], base)
                if headers[0].is_transactional:
                    self._first_unstable = self.producers.first_unstable_offset()
            self._unflushed_messages += count
            self._maybe_flush()
            return AppendResult(base, next_offset - 1, count, append_time, self._log_start_offset)

    def write_txn_marker(
        self,
        producer_id: int,
        producer_epoch: int,
        control_type: ControlType,
        coordinator_epoch: int,
    ) -> AppendResult:
        """Append a COMMIT or ABORT marker for ``producer_id`` (Kafka's WriteTxnMarkers),
        ending its transaction on the partition; an abort adds the transaction to the
        active segment's ``.txnindex``.

        Fencing: a marker with an epoch older than the producer's is
        ``InvalidProducerEpochError``, one from an older coordinator epoch
        ``TransactionCoordinatorFencedError``; nothing is written then. A marker for a
        producer with no transaction open here is written all the same (the coordinator
        may send it again after a failure): it ends an empty transaction (an abort is
        indexed with its own offset as first offset, as Kafka does).
        """
        marker = encode_control_batch(
            control_type,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            coordinator_epoch=coordinator_epoch,
            timestamp=self.clock.time_ms(),
        )
        return self.append(marker, AppendOrigin.COORDINATOR)

    def _append_marker(
        self,
        view: bytes | bytearray | memoryview,
        spans: list[tuple[int, BatchHeader]],
        append_time: int,
    ) -> AppendResult:
        if len(spans) != 1:
            raise InvalidRecordError("a transaction marker must be the only batch of its append")
        pos, header = spans[0]
        try:
            _, marker = read_marker(view, pos, header)
        except CorruptRecordError as exc:
            raise InvalidRecordError(f"unreadable transaction marker: {exc}") from None
        pid, epoch = header.producer_id, header.producer_epoch
        with self._lock:
            self._check_open()
            self.producers.check_marker(pid, epoch, marker.coordinator_epoch)
            self._maybe_roll(header.size, header.max_timestamp, 1)
            base = self.log_end_offset
            segment = self.active_segment
            segment.append([(base, memoryview(view)[pos + 8 : pos + header.size])], [header])
            completed = self.producers.complete(
                pid,
                epoch,
                marker.coordinator_epoch,
                base,
                header.max_timestamp,
                marker.type == ControlType.ABORT,
            )
            self._unflushed_messages += 1
            self._first_unstable = self.producers.first_unstable_offset()
            if completed.aborted:
                segment.txn_index.append(
                    AbortedTxn(
                        pid,
                        completed.first_offset,
                        base,
                        self.producers.stable_offset_after(completed),
                    )
                )
            self._maybe_flush()
            return AppendResult(base, base, 1, append_time, self._log_start_offset)

    def append_as_is(self, batch: bytes) -> None:
        """Append one batch keeping its own base offset (compaction rewrites, replication).

        The batch's offsets must not go below the log end offset. Producer and
        transaction state are not updated from it (only tests use this today; a replica
        fetcher would have to apply them as ``append`` does).
        """
        spans = iter_batch_spans(batch)
        with self._lock:
            self._check_open()
            for pos, header in spans:
                if header.base_offset < self.log_end_offset:
                    raise InvalidRecordError(
                        f"batch at offset {header.base_offset} is below the log end offset "
                        f"{self.log_end_offset}"
                    )
                self._maybe_roll(
                    header.size, header.max_timestamp, header.next_offset - self.log_end_offset
                )
                mv = memoryview(batch)
                self.active_segment.append(
                    [(header.base_offset, mv[pos + 8 : pos + header.size])], [header]
                )
                self._unflushed_messages += header.record_count
            self._maybe_flush()

    def _maybe_roll(self, incoming_bytes: int, incoming_max_ts: int, incoming_offsets: int) -> None:
        """Roll before an append of ``incoming_offsets`` offsets that the active segment
        should not take; among the reasons, one its index could not hold (offsets
        relative to the segment's base must fit in 31 bits, as in Kafka)."""
        active = self.active_segment
        if active.size == 0:
            return
        cfg = self.config
        max_index_entries = max(1, cfg.segment_index_bytes // 8)
        last_relative = self.log_end_offset + incoming_offsets - 1 - active.base_offset
        if (
            active.size + incoming_bytes > cfg.segment_bytes
            or self.clock.time_ms() - active.created_ms > cfg.segment_ms
            or len(active.offset_index) >= max_index_entries
            or self.log_end_offset - active.base_offset > MAX_RELATIVE_OFFSET - 1_000_000
            or last_relative > MAX_RELATIVE_OFFSET
        ):
            self.roll()

    def roll(self) -> LogSegment:
        """Start a new active segment at the log end offset (no-op if the active is empty)."""
        with self._lock:
            self._check_open()
            active = self.active_segment
            if active.size == 0:
                return active
            active.seal()
            active.flush(fsync=False)
            segment = LogSegment(
                self.directory,
                self.log_end_offset,
                index_interval_bytes=self.config.index_interval_bytes,
                created_ms=self.clock.time_ms(),
                file_cache=self._file_cache,
            )
            self._segments.append(segment)
            return segment

    # -- flushing ------------------------------------------------------------------------

    def _maybe_flush(self) -> None:
        cfg = self.config
        if self._unflushed_messages >= cfg.flush_messages or (
            self._unflushed_messages
            and self.clock.monotonic_ms() - self._last_flush_ms >= cfg.flush_ms
        ):
            self.flush()

    def flush_if_due(self) -> bool:
        """Apply ``flush.ms`` from a timer, for logs that stopped receiving appends."""
        with self._lock:
            if self._closed or not self._unflushed_messages:
                return False
            if self.clock.monotonic_ms() - self._last_flush_ms >= self.config.flush_ms:
                self.flush()
                return True
            return False

    def flush(self) -> None:
        """fsync every segment holding data past the recovery point, then advance it."""
        with self._lock:
            self._check_open()
            end = self.log_end_offset
            for segment in self._segments:
                if segment.next_offset > self._recovery_point or segment is self.active_segment:
                    segment.flush(fsync=True)
            self._recovery_point = end
            self._recovery_checkpoint.write(end)
            self._unflushed_messages = 0
            self._last_flush_ms = self.clock.monotonic_ms()

    def sync_records(self) -> None:
        """Make every appended record durable with one fdatasync per segment file written
        since the recovery point, leaving indexes and the recovery point as they are.

        Cheaper than ``flush`` (which also fsyncs the indexes and moves the recovery
        point): what a caller needs before it acts on a write, as the transaction
        coordinator does for its state and markers. After a crash the records past the
        recovery point are recovered by the usual scan, which rebuilds their indexes.
        """
        with self._lock:
            self._check_open()
            for segment in self._segments:
                if segment.next_offset > self._recovery_point or segment is self.active_segment:
                    segment.sync_records()

    @property
    def unflushed_messages(self) -> int:
        return self._unflushed_messages

    # -- reading -------------------------------------------------------------------------

    def read(
        self,
        offset: int,
        max_bytes: int = 1 << 20,
        min_one: bool = True,
        isolation: IsolationLevel = IsolationLevel.READ_UNCOMMITTED,
    ) -> ReadResult:
        """Stored batches from the one containing ``offset``, up to ``max_bytes``.

        Reading at the log end offset returns no bytes; outside [log start, log end] is
        ``OffsetOutOfRangeError``. The first batch may begin before ``offset`` (a batch is
        never split); clients skip the records below what they asked for, as with Kafka.

        ``READ_COMMITTED`` returns no batch at or past the last stable offset (nothing
        when ``offset`` is there already), and the aborted transactions with records in
        the range returned.
        """
        committed = isolation == _READ_COMMITTED
        with self._lock:
            self._check_open()
            start, end = self._log_start_offset, self.log_end_offset
            if offset < start or offset > end:
                raise OffsetOutOfRangeError(offset, start, end)
            stable = self._stable_offset()
            limit = stable if committed else end
            data: bytes | memoryview = b""
            if offset < limit:
                index = self._segment_index_for(offset)
                segments = self._segments
                while index < len(segments) and segments[index].base_offset < limit:
                    chunk = segments[index].read(
                        offset, max_bytes, min_one, limit if committed else None
                    )
                    if chunk:
                        data = chunk
                        break
                    index += 1
            if not committed:
                return ReadResult(data, end, start, end, stable)
            aborted: tuple[AbortedTxn, ...] = ()
            if data:
                aborted = tuple(self._aborted_between(offset, _last_offset_in(data) + 1))
            return ReadResult(data, end, start, end, stable, aborted)

    def aborted_transactions(self, start: int, upper: int) -> list[AbortedTxn]:
        """The aborted transactions with records in [start, upper), in marker order."""
        with self._lock:
            self._check_open()
            return self._aborted_between(start, upper)

    def _aborted_between(self, start: int, upper: int) -> list[AbortedTxn]:
        out: list[AbortedTxn] = []
        segments = self._segments
        for index in range(self._segment_index_for(start), len(segments)):
            if segments[index].txn_index.overlapping(start, upper, out):
                break
        return out

    def _segment_index_for(self, offset: int) -> int:
        segments = self._segments
        lo, hi = 0, len(segments) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if segments[mid].base_offset <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo

    @property
    def read_limit(self) -> int:
        """The most bytes a stored batch's records may take when the log decompresses
        them (to search by timestamp, to compact): ``max.message.bytes``, which bounds
        what ``append`` accepts, but never less than the codec's default bound, so that
        batches stored before the topic's limit was lowered stay readable."""
        return max(self.config.max_message_bytes, DEFAULT_DECOMPRESSED_LIMIT)

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record whose timestamp >= ``timestamp``.

        None when every record is older, as Kafka's ListOffsets answers with -1. A batch
        on the way that cannot be decoded (corrupt, or inflating past ``read_limit``)
        raises ``CorruptRecordError``.
        """
        from streamlog.log.records import decode_batch

        with self._lock:
            self._check_open()
            for segment in self._segments:
                if segment.max_timestamp < timestamp:
                    continue
                for pos, header in segment.headers_from(segment.timestamp_scan_start(timestamp)):
                    if (
                        header.max_timestamp < timestamp
                        or header.next_offset <= self._log_start_offset
                    ):
                        continue
                    batch = decode_batch(segment.read_at(pos, header.size), limit=self.read_limit)
                    for record in batch.records:
                        if (
                            record.timestamp >= timestamp
                            and record.offset >= self._log_start_offset
                        ):
                            return record.offset, record.timestamp
            return None

    def iter_batches(self, start_offset: int = 0) -> Iterator[bytes]:
        """Every stored batch from ``start_offset``, one at a time (loading, tools, tests)."""
        offset = max(start_offset, self._log_start_offset)
        while True:
            result = self.read(offset, 1 << 20)
            if not result.records:
                return
            pos = 0
            data = result.records
            while pos < len(data):
                _, size, last = peek_offsets(data, pos)
                yield bytes(data[pos : pos + size])
                pos += size
                offset = last + 1
            if offset >= result.log_end_offset:
                return

    # -- truncation and retention --------------------------------------------------------

    def truncate_to(self, offset: int) -> None:
        """Remove every batch at or after ``offset`` (whole batches; see LogSegment)."""
        with self._lock:
            self._check_open()
            if offset >= self.log_end_offset:
                return
            if offset < 0:
                raise ValueError("cannot truncate to a negative offset")
            while len(self._segments) > 1 and self._segments[-1].base_offset >= offset:
                self._segments.pop().delete_files()
            active = self.active_segment
            if active.base_offset >= offset:
                # Only one segment left and all of it goes: restart the log at ``offset``.
                active.delete_files()
                self._segments[-1] = LogSegment(
                    self.directory,
                    offset,
                    index_interval_bytes=self.config.index_interval_bytes,
                    created_ms=self.clock.time_ms(),
                    file_cache=self._file_cache,
                )
                self._set_log_start(min(self._log_start_offset, offset))
            else:
                active.truncate_to(offset)
            # A marker cut off reopens its transaction: replay the log rather than guess.
            self.producers = scan_producer_state(self.directory, self._segments)
            self._first_unstable = self.producers.first_unstable_offset()
            self._recovery_point = min(self._recovery_point, self.log_end_offset)
            self._recovery_checkpoint.write(self._recovery_point)
            self.flush()

    def delete_records_before(self, offset: int) -> int:
        """Advance the log start offset to ``offset`` and drop segments wholly below it."""
        with self._lock:
            self._check_open()
            if offset > self.high_watermark:
                raise OffsetOutOfRangeError(offset, self._log_start_offset, self.high_watermark)
            if offset > self._log_start_offset:
                self._set_log_start(offset)
            return self._delete_segments_below_start()

    def enforce_retention(self) -> int:
        """Delete whole segments past ``retention.ms`` or beyond ``retention.bytes``.

        Only for ``cleanup.policy`` including ``delete``. Oldest first, stopping at the
        first segment that may stay. An expired active segment is rolled, then deleted, so
        an idle topic does empty out (as in Kafka). Returns the number of segments deleted.
        """
        with self._lock:
            self._check_open()
            deleted = self._delete_segments_below_start()
            cfg = self.config
            if not cfg.delete:
                return deleted
            now = self.clock.time_ms()
            if cfg.retention_ms >= 0:
                cutoff = now - cfg.retention_ms
                active = self.active_segment
                if active.size and 0 <= active.max_timestamp < cutoff:
                    self.roll()
                deleted += self._delete_oldest_while(
                    lambda s: s.size > 0 and 0 <= s.max_timestamp < cutoff
                )
            if cfg.retention_bytes >= 0:
                total = self.size_bytes

                def over(segment: LogSegment) -> bool:
                    nonlocal total
                    if total - segment.size >= cfg.retention_bytes:
                        total -= segment.size
                        return True
                    return False

                deleted += self._delete_oldest_while(over)
            return deleted

    def _delete_oldest_while(self, predicate) -> int:  # type: ignore[no-untyped-def]
        deleted = 0
        try:
            while len(self._segments) > 1 and predicate(self._segments[0]):
                self._delete_first_segment()
                deleted += 1
        finally:
            # What was deleted before a failure is gone: the log start must say so.
            if deleted:
                self._set_log_start(max(self._log_start_offset, self._segments[0].base_offset))
        return deleted

    def _delete_segments_below_start(self) -> int:
        deleted = 0
        while len(self._segments) > 1 and self._segments[1].base_offset <= self._log_start_offset:
            self._delete_first_segment()
            deleted += 1
        return deleted

    def _delete_first_segment(self) -> None:
        """Rename the oldest segment ``.deleted``, then drop it from the log.

        If the rename fails (an ``OSError`` from the file system) the segment stays in
        the log, whole, and the next retention pass tries again.
        """
        segment = self._segments[0]
        segment.change_suffix(DELETED_SUFFIX)
        self._segments.pop(0)
        segment.delete_files()

    def _set_log_start(self, offset: int) -> None:
        self._log_start_offset = offset
        self._start_checkpoint.write(offset, durable=True)

    # -- compaction support --------------------------------------------------------------

    def replace_segments(
        self,
        old: list[LogSegment],
        cleaned: LogSegment,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        """Swap ``cleaned`` (files with the ``.cleaned`` suffix) in for ``old``.

        Crash-safe sequence: the cleaned files are fsynced and renamed to ``.swap`` (from
        now on recovery completes the swap), the old segments are renamed ``.deleted`` and
        removed, and the swap files take the live names. ``old`` must be consecutive,
        inactive, and start at ``cleaned.base_offset``.
        """
        with self._lock:
            self._check_open()
            first = self._segments.index(old[0])
            if self._segments[first : first + len(old)] != old or old[-1] is self.active_segment:
                raise ValueError("segments to replace must be consecutive and inactive")
            if cleaned.base_offset != old[0].base_offset:
                raise ValueError("a cleaned segment must keep the first segment's base offset")
            cleaned.flush(fsync=True)
            cleaned.change_suffix(SWAP_SUFFIX)
            fsync_directory(self.directory)
            if on_step:
                on_step("swap")
            for segment in old:
                segment.change_suffix(DELETED_SUFFIX)
            if on_step:
                on_step("deleted")
            cleaned.change_suffix("")
            fsync_directory(self.directory)
            for segment in old:
                segment.delete_files()
            if self._file_cache is not None:
                cleaned.attach_file_cache(self._file_cache)
            self._segments[first : first + len(old)] = [cleaned]

    # -- lifecycle -----------------------------------------------------------------------

    def update_config(self, config: TopicConfig) -> None:
        with self._lock:
            self.config = config

    def close(self) -> None:
        """Flush, seal the active segment's indexes and leave the clean-shutdown marker.

        If the files cannot be made durable (``OSError``: a full or failing disk) they are
        closed without the marker, so the next open recovers them, and the error is
        raised: the log is closed either way.
        """
        with self._lock:
            if self._closed:
                return
            try:
                self.active_segment.seal()
                self.flush()
                self.producers.write_snapshot(
                    self.log_end_offset,
                    {s.base_offset: s.txn_index.digest() for s in self._segments if s.txn_index},
                )
            finally:  # closed either way; only a log made durable gets the marker
                self._closed = True
                for segment in self._segments:
                    segment.close()
            marker = os.path.join(self.directory, CLEAN_SHUTDOWN_FILE)
            with open(marker, "wb") as f:
                f.flush()
                os.fsync(f.fileno())
            fsync_directory(self.directory)

    def close_unclean(self) -> None:
        """Close file handles without flushing or marking clean (tests of crash recovery)."""
        with self._lock:
            for segment in self._segments:
                segment.close()
            self._closed = True

    def delete(self) -> None:
        """Close and remove the whole partition directory."""
        with self._lock:
            for segment in self._segments:
                segment.close()
            self._closed = True
            shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"log {self.directory} is closed")

    def __repr__(self) -> str:
        return (
            f"PartitionLog({self.directory!r}, start={self._log_start_offset}, "
            f"end={self.log_end_offset}, segments={len(self._segments)})"
        )


def _last_offset_in(data: bytes | memoryview) -> int:
    """The last offset of the last of the whole batches in ``data``."""
    pos, last = 0, -1
    while pos < len(data):
        _, size, last = peek_offsets(data, pos)
        pos += size
    return last
