"""Opening a partition directory: finish interrupted swaps, recover, rebuild state.

Kafka's ``LogLoader``, in one function. What it decides:

* an interrupted compaction is completed or discarded by file suffix (``.cleaned``
  discarded, ``.swap`` promoted, ``.deleted`` removed) before any segment is opened;
* after a clean shutdown (``clean-shutdown`` marker present) segments and their indexes
  are trusted, except the tail of each segment: the batches from its last index entry to
  the end of the file are checked (length, CRC, offsets, ending exactly at the file's
  end); a damaged tail or an index that does not fit its log sends the segment through
  recovery, which cuts it at the first bad byte and logs a warning naming the file,
  position and offset (files can be damaged while the broker is stopped);
* otherwise every segment from the one holding the recovery point onward is scanned:
  each batch's length and CRC are checked, the log is cut at the first bad byte, later
  segments are dropped, and indexes are rebuilt;
* the log start offset comes from its checkpoint, never below the first segment;
* the idempotent-producer and transaction state (open transactions, the aborted
  transactions' ``.txnindex`` files) come from the shutdown snapshot and the index files
  when the shutdown was clean, nothing was cut and every index validates; otherwise from
  a scan of every batch header (``producer_scan.py``), which rewrites the indexes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from streamlog.log.checkpoint import OffsetCheckpoint, fsync_directory
from streamlog.log.clock import Clock
from streamlog.log.config import TopicConfig
from streamlog.log.errors import CorruptRecordError, IndexCorruptError, InvalidRecordError
from streamlog.log.producer_scan import scan_producer_state
from streamlog.log.producer_state import ProducerStateManager
from streamlog.log.segment import (
    LOG_SUFFIX,
    TXN_INDEX_SUFFIX,
    LogSegment,
    SegmentFiles,
    parse_segment_file_name,
)
from streamlog.log.txn_index import TransactionIndex

__all__ = [
    "load_partition",
    "LoadedPartition",
    "RecoveryReport",
    "CLEAN_SHUTDOWN_FILE",
    "RECOVERY_POINT_FILE",
    "LOG_START_FILE",
    "CLEANED_SUFFIX",
    "SWAP_SUFFIX",
    "DELETED_SUFFIX",
]

log = logging.getLogger("streamlog.log.partition_log")

_EMPTY_DIGEST = TransactionIndex("").digest()

CLEAN_SHUTDOWN_FILE = "clean-shutdown"
RECOVERY_POINT_FILE = "recovery-point"
LOG_START_FILE = "log-start-offset"
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
DELETED_SUFFIX = ".deleted"


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What opening the log found: whether it scanned, and what it cut."""

    clean: bool
    segments_scanned: int
    bytes_truncated: int
    segments_deleted: int


@dataclass(slots=True)
class LoadedPartition:
    segments: list[LogSegment]
    log_start_offset: int
    recovery_point: int
    report: RecoveryReport
    producers: ProducerStateManager


def load_partition(directory: str, config: TopicConfig, clock: Clock) -> LoadedPartition:
    """Open the segments of ``directory`` (created if missing) as described above."""
    os.makedirs(directory, exist_ok=True)
    swapped = _complete_interrupted_swaps(directory)
    marker = os.path.join(directory, CLEAN_SHUTDOWN_FILE)
    clean = os.path.exists(marker)
    if clean:
        os.unlink(marker)
        fsync_directory(directory)
    stored_start = OffsetCheckpoint(os.path.join(directory, LOG_START_FILE)).read()
    recovery_point = OffsetCheckpoint(os.path.join(directory, RECOVERY_POINT_FILE)).read()
    now = clock.time_ms()

    bases = sorted(
        parsed[0]
        for name in os.listdir(directory)
        if (parsed := parse_segment_file_name(name)) and parsed[1] == LOG_SUFFIX
    )
    interval = config.index_interval_bytes
    segments = [
        LogSegment(directory, b, index_interval_bytes=interval, created_ms=now) for b in bases
    ]
    scanned = truncated = deleted = 0
    if not clean and recovery_point is None:
        recovery_point = 0
    for i, segment in enumerate(segments):
        following = segments[i + 1].base_offset if i + 1 < len(segments) else None
        needs_scan = not clean and (
            following is None or (recovery_point is not None and following > recovery_point)
        )
        if needs_scan:
            cut = segment.recover()
            scanned += 1
            if cut:
                _log_cut(segment, cut, "recovering after an unclean shutdown")
                truncated += cut
                # Anything after a corrupt point was written after it: drop it too.
                for later in segments[i + 1 :]:
                    later.delete_files()
                    deleted += 1
                del segments[i + 1 :]
                break
        else:
            cut = segment.load_clean(following)
            if cut:
                # Damaged while the broker was stopped (or since the last flush): the
                # batches after the damage in later segments were acknowledged and are
                # intact, so they stay; the offsets cut here become a gap, which
                # consumers skip as they skip offsets removed by compaction.
                _log_cut(segment, cut, "checking the tail after a clean shutdown")
                truncated += cut
    # A segment emptied by recovery is kept only if it is the last one.
    while len(segments) > 1 and segments[-1].size == 0 and segments[-2].size > 0:
        if segments[-1].base_offset != segments[-2].next_offset:
            break
        segments.pop().delete_files()
    start = stored_start if stored_start is not None else 0
    if not segments:
        segments.append(LogSegment(directory, start, index_interval_bytes=interval, created_ms=now))
    first = segments[0].base_offset
    log_start = max(start, first)
    log_end = segments[-1].next_offset
    if log_start > log_end:
        log_start = log_end
    active = segments[-1]
    active.created_ms = _rolling_time(active, now)
    rp = min(recovery_point if recovery_point is not None else log_end, log_end)
    if not clean or truncated:
        rp = log_end  # everything now on disk was validated or trusted; flush below
    report = RecoveryReport(clean, scanned, truncated, deleted)
    trusted = clean and not truncated and not swapped
    producers = _load_producer_state(directory, segments, trusted, log_end)
    return LoadedPartition(segments, log_start, rp, report, producers)


def _load_producer_state(
    directory: str, segments: list[LogSegment], trusted: bool, log_end: int
) -> ProducerStateManager:
    """The snapshot and ``.txnindex`` files of a clean shutdown, else a scan of the log."""
    state = ProducerStateManager(directory)
    if (
        trusted
        and state.load_snapshot() == log_end
        and _load_txn_indexes(segments, state.snapshot_txn_digests)
    ):
        return state
    return scan_producer_state(directory, segments)


def _load_txn_indexes(segments: list[LogSegment], digests: dict[int, int]) -> bool:
    """Load every ``.txnindex``; False (after a warning) if one cannot be trusted."""
    for segment in segments:
        index = segment.txn_index
        try:
            index.load(segment.base_offset, segment.next_offset, segment.size)
            if index.digest() != digests.get(segment.base_offset, _EMPTY_DIGEST):
                raise IndexCorruptError(f"{index.path} is not the index written at shutdown")
        except (IndexCorruptError, OSError) as exc:
            log.warning("rebuilding the transaction indexes from the log: %s", exc)
            return False
    return True


def _log_cut(segment: LogSegment, cut: int, when: str) -> None:
    log.warning(
        "%s: cut %d bytes of invalid data at position %d (offset %d) while %s",
        segment.files.log,
        cut,
        segment.size,
        segment.next_offset,
        when,
    )


def _rolling_time(segment: LogSegment, now: int) -> int:
    """When a reopened active segment started, for ``segment.ms``; never in the future."""
    if segment.size == 0:
        return now
    try:
        for _, header in segment.headers_from(0):
            if 0 <= header.max_timestamp <= now:
                return header.max_timestamp
            break
    except (CorruptRecordError, InvalidRecordError):
        pass  # a damaged first batch: reads report it; the segment rolls on segment.ms
    return now


def _complete_interrupted_swaps(directory: str) -> bool:
    """Finish what a crash interrupted, by file suffix, before segments are opened.

    ``.cleaned``: the cleaner had not committed; discard. ``.swap``: the cleaner had
    committed (files were fsynced before the rename); promote it to live and remove the
    live segments it covers. ``.deleted``: already replaced or expired; remove.
    Returns whether a swap was completed.
    """
    names = os.listdir(directory)
    for name in names:
        if (
            name.endswith(CLEANED_SUFFIX)
            or name.endswith(DELETED_SUFFIX)
            or (TXN_INDEX_SUFFIX in name and name.endswith(".tmp"))  # an interrupted rewrite
        ):
            os.unlink(os.path.join(directory, name))
    swaps = sorted(
        parsed[0]
        for name in names
        if name.endswith(SWAP_SUFFIX)
        and (parsed := parse_segment_file_name(name))
        and parsed[1] == LOG_SUFFIX + SWAP_SUFFIX
    )
    for base in swaps:
        swap = SegmentFiles.at(directory, base, SWAP_SUFFIX)
        live = SegmentFiles.at(directory, base)
        # The swap covers offsets up to its last batch; drop live segments inside that range.
        probe = LogSegment(
            directory, base, index_interval_bytes=4096, created_ms=0, suffix=SWAP_SUFFIX
        )
        probe.recover()
        end = probe.next_offset
        probe.close()
        for name in os.listdir(directory):
            parsed = parse_segment_file_name(name)
            if parsed and parsed[1] == LOG_SUFFIX and base < parsed[0] < end:
                covered = SegmentFiles.at(directory, parsed[0])
                for path in covered.all:
                    if os.path.exists(path):
                        os.unlink(path)
        if os.path.exists(live.txn_index):
            os.unlink(live.txn_index)  # the swap's own (or none) replaces it
        for src, dst in zip(swap.all, live.all, strict=True):
            if os.path.exists(src):
                os.replace(src, dst)
    if swaps:
        fsync_directory(directory)
    return bool(swaps)
