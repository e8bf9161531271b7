"""One segment of a partition: a ``.log`` file of record batches and its two indexes.

A segment covers offsets from ``base_offset`` (its file name, 20 digits) up to the next
segment's base offset. Batches are stored exactly as they were appended, one after the
other; the log never rewrites a segment in place (compaction writes a replacement file and
swaps it in by rename). Positions in the file are byte offsets; the indexes map offsets and
timestamps to positions sparsely, one entry every ``index_interval_bytes``.

Invariants: batches are whole and their base offsets increase; ``size`` is the length of
the valid prefix of the file; ``next_offset`` is one past the last offset stored here.
Not thread-safe: ``PartitionLog`` serialises access to the segments it owns.

Descriptors: none is held while a segment is idle. The ``.log`` file is a ``CachedFile``,
opened on first use and closed when its ``FileCache`` needs room; the indexes are opened
only to write (see ``file_cache.py``). So a partition nobody reads or writes holds no
descriptor, whatever its number of segments.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from streamlog.log.batch_header import (
    HEADER_SIZE,
    BatchHeader,
    parse_header,
    peek_offsets,
    validate_batch,
)
from streamlog.log.errors import CorruptRecordError, InvalidRecordError
from streamlog.log.file_cache import CachedFile, FileCache
from streamlog.log.index import IndexCorruptError, OffsetIndex, TimeIndex
from streamlog.log.txn_index import TransactionIndex

__all__ = [
    "LogSegment",
    "MAX_RELATIVE_OFFSET",
    "SegmentFiles",
    "segment_file_name",
    "parse_segment_file_name",
    "LOG_SUFFIX",
    "INDEX_SUFFIX",
    "TIME_INDEX_SUFFIX",
    "TXN_INDEX_SUFFIX",
]

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
TXN_INDEX_SUFFIX = ".txnindex"

_SCAN_CHUNK = 64 * 1024
_RECOVERY_CHUNK = 8 * 1024 * 1024
_IOV_MAX = 1000
_OFFSET = struct.Struct(">q")
# Index entries hold an offset relative to the segment's base (Kafka keeps it within an
# int32) and a file position (uint32).
MAX_RELATIVE_OFFSET = (1 << 31) - 1
_MAX_POSITION = (1 << 32) - 1


def segment_file_name(base_offset: int, suffix: str) -> str:
    return f"{base_offset:020d}{suffix}"


def parse_segment_file_name(name: str) -> tuple[int, str] | None:
    """(base offset, suffix) of a segment file name, or None for any other file."""
    stem, dot, rest = name.partition(".")
    if not dot or len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem), "." + rest


@dataclass(frozen=True, slots=True)
class SegmentFiles:
    """The paths of a segment, given a directory, base offset and an extra suffix (the
    ``.txnindex`` exists only while the segment holds aborted transactions)."""

    log: str
    index: str
    time_index: str
    txn_index: str

    @classmethod
    def at(cls, directory: str, base_offset: int, extra: str = "") -> SegmentFiles:
        return cls(
            os.path.join(directory, segment_file_name(base_offset, LOG_SUFFIX + extra)),
            os.path.join(directory, segment_file_name(base_offset, INDEX_SUFFIX + extra)),
            os.path.join(directory, segment_file_name(base_offset, TIME_INDEX_SUFFIX + extra)),
            os.path.join(directory, segment_file_name(base_offset, TXN_INDEX_SUFFIX + extra)),
        )

    @property
    def all(self) -> tuple[str, str, str, str]:
        return (self.log, self.index, self.time_index, self.txn_index)


class LogSegment:
    """A ``.log`` file with its offset and time index; see the module docstring."""

    def __init__(
        self,
        directory: str,
        base_offset: int,
        *,
        index_interval_bytes: int,
        created_ms: int,
        suffix: str = "",
        file_cache: FileCache | None = None,
    ) -> None:
        """Open (or create) the segment's files; ``file_cache`` bounds the descriptor of its
        ``.log`` (without one, the descriptor stays open from first use until ``close``;
        ``attach_file_cache`` can hand it to a cache later)."""
        self.directory = directory
        self.base_offset = base_offset
        self.index_interval_bytes = index_interval_bytes
        self.created_ms = created_ms
        self.files = SegmentFiles.at(directory, base_offset, suffix)
        fd = os.open(self.files.log, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self.size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        self._file = CachedFile(self.files.log, file_cache)
        # Whether the .log may hold bytes not yet fsynced: unknown for a file with data (a
        # crashed process may have left some in the page cache), so assume it does.
        self._unsynced = self.size > 0
        self.offset_index = OffsetIndex(self.files.index, base_offset)
        self.time_index = TimeIndex(self.files.time_index, base_offset)
        self.txn_index = TransactionIndex(self.files.txn_index)
        self.next_offset = base_offset
        self.max_timestamp = -1
        self._bytes_since_index = 0
        self._closed = False

    # -- opening -----------------------------------------------------------------------

    def load_clean(self, next_offset: int | None) -> int:
        """Open after a clean shutdown: trust the indexes, but check the tail of the log.

        The clean-shutdown marker says the broker closed the files, not that nobody
        touched them since: every batch from the last offset-index entry to the end of the
        file must be whole, CRC-valid and in offset order, and must end exactly at the end
        of the file. Anything else (an index that does not fit, a truncated or
        bit-flipped tail, a non-positive length) sends the segment through ``recover``,
        which cuts it at the first bad byte. Returns the number of bytes cut.

        ``next_offset`` is the following segment's base offset, or None for the last
        segment, whose end is the last offset of its last batch.
        """
        try:
            self.offset_index.load(self.size)
            if self.size and not len(self.offset_index):
                raise IndexCorruptError(f"{self.files.index} is missing or empty")
            last = self._check_tail()
            if next_offset is None:
                next_offset = last + 1
            self.next_offset = max(next_offset, self.base_offset)
            self.time_index.load(self.next_offset)
            self.max_timestamp = self.time_index.max_timestamp
        except (IndexCorruptError, CorruptRecordError, InvalidRecordError):
            return self.recover()
        return 0

    def _check_tail(self) -> int:
        """Validate the batches from the last indexed one to the end; return the last offset.

        Raises ``CorruptRecordError`` unless they are all valid and fill the file exactly,
        and the first of them is the batch the index says is there.
        """
        position = self.offset_index.lookup(1 << 62)
        last = self.base_offset - 1
        indexed = self.offset_index.last_offset
        end = position
        for at, header in self._validated_batches(position, self.base_offset):
            if at == position and indexed is not None and header.last_offset != indexed:
                break
            last = header.last_offset
            end = at + header.size
        if end != self.size:
            raise CorruptRecordError(
                f"{self.files.log}: invalid data at position {end} of {self.size}"
            )
        return last

    def recover(self) -> int:
        """Validate every batch, rebuild both indexes, cut the file at the first bad byte.

        Returns the number of bytes truncated. A batch is kept only if it is whole, its CRC
        matches and its base offset does not go back.
        """
        self.offset_index.reset()
        self.time_index.reset()
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self._bytes_since_index = 0
        valid = 0
        for position, header in self._validated_batches(0, self.base_offset):
            self._track(header.last_offset, header.max_timestamp, position, header.size)
            valid = position + header.size
        truncated = self.size - valid
        if truncated:
            with self._file as fd:
                os.ftruncate(fd, valid)
            self.size = valid
            self._unsynced = True
        return truncated

    def _validated_batches(self, position: int, expected: int) -> Iterator[tuple[int, BatchHeader]]:
        """(position, header) of each valid batch from ``position``, up to the first bad one.

        Valid: a whole header with magic 2 and a length of at least a header (never zero or
        negative, so the walk always moves forward), the whole batch inside the file, its
        CRC right, its base offset not below ``expected`` (then the previous batch's end).
        """
        while position < self.size:
            chunk = self.read_at(position, min(_RECOVERY_CHUNK, self.size - position))
            pos = 0
            while True:
                if len(chunk) - pos < HEADER_SIZE:
                    break
                try:
                    header = parse_header(chunk, pos)
                except (CorruptRecordError, InvalidRecordError):
                    return
                if position + pos + header.size > self.size:
                    return  # cut short, or a length no batch here can have
                if len(chunk) - pos < header.size:
                    if pos == 0:  # one batch larger than the chunk: read it whole
                        chunk = self.read_at(position, header.size)
                        if len(chunk) < header.size:
                            return
                    else:
                        break
                try:
                    header = validate_batch(chunk, pos)
                except (CorruptRecordError, InvalidRecordError):
                    return
                if header.base_offset < expected:
                    return
                expected = header.next_offset
                yield position + pos, header
                pos += header.size
            if pos == 0:
                return
            position += pos

    def _walk(self, position: int) -> Iterator[tuple[int, int, int]]:
        """(position, size, last offset) of each batch from ``position`` to the end.

        Trusts the bytes (they were validated when appended or recovered) except for the
        one check that keeps the walk finite: a length shorter than a batch header is
        ``CorruptRecordError``, never a step of zero or backwards.
        """
        while position < self.size:
            chunk = self.read_at(position, min(_SCAN_CHUNK, self.size - position))
            pos = 0
            while len(chunk) - pos >= HEADER_SIZE:
                _, size, last_offset = peek_offsets(chunk, pos)
                if size < HEADER_SIZE:
                    raise self._bad_length(position + pos, size)
                yield position + pos, size, last_offset
                pos += size
                if pos > len(chunk):
                    break
            if pos == 0:
                raise CorruptRecordError(f"{self.files.log}: short batch at {position}")
            position += pos

    # -- writing -------------------------------------------------------------------------

    def _track(self, last_offset: int, max_timestamp: int, position: int, size: int) -> None:
        if self._bytes_since_index >= self.index_interval_bytes or position == 0:
            self.offset_index.append(last_offset, position)
            self._bytes_since_index = 0
            if max_timestamp > self.max_timestamp:
                self.time_index.append(max_timestamp, last_offset)
        self._bytes_since_index += size
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
        self.next_offset = last_offset + 1

    def append(self, pieces: list[tuple[int, memoryview]], headers: list[BatchHeader]) -> int:
        """Append batches, each given as (new base offset, bytes after the offset field).

        Writes with ``writev`` so the caller's buffer is never copied to patch offsets.
        All or nothing, as a reader sees it: batches whose offsets the indexes cannot hold
        (more than 2**31 - 1 past the segment's base, as in Kafka) are refused with
        ``InvalidRecordError`` before anything is written; a short write (a full disk)
        cuts the file back and raises ``OSError``; and if indexing fails after the write,
        the file and both indexes are put back as they were before the error is raised.
        """
        start = self.size
        buffers: list[bytes | memoryview] = []
        total = 0
        for (base_offset, rest), header in zip(pieces, headers, strict=True):
            relative = base_offset + header.last_offset_delta - self.base_offset
            if base_offset < self.base_offset or relative > MAX_RELATIVE_OFFSET:
                raise InvalidRecordError(
                    f"offsets {base_offset}..{base_offset + header.last_offset_delta} cannot "
                    f"be indexed in the segment at {self.base_offset}"
                )
            if start + total > _MAX_POSITION:
                raise InvalidRecordError(f"{self.files.log} cannot grow past 4 GiB")
            buffers.append(_OFFSET.pack(base_offset))
            buffers.append(rest)
            total += 8 + len(rest)
        written = 0
        self._unsynced = True
        with self._file as fd:
            try:
                for i in range(0, len(buffers), _IOV_MAX):
                    group = buffers[i : i + _IOV_MAX]
                    want = sum(len(b) for b in group)
                    n = os.pwritev(fd, group, start + written)
                    written += n
                    if n != want:
                        raise OSError(errno.ENOSPC, f"short write to {self.files.log}")
            except OSError:
                os.ftruncate(fd, start)
                raise
        before = (self.next_offset, self.max_timestamp, self._bytes_since_index)
        position = start
        try:
            for (base_offset, _), header in zip(pieces, headers, strict=True):
                size = header.size
                self._track(
                    base_offset + header.last_offset_delta, header.max_timestamp, position, size
                )
                position += size
        except BaseException:
            self._undo_append(start, *before)
            raise
        self.size = start + total
        return start

    def _undo_append(
        self, start: int, next_offset: int, max_timestamp: int, bytes_since_index: int
    ) -> None:
        """Put the file and indexes back as they were before an append at ``start``."""
        with self._file as fd:
            os.ftruncate(fd, start)
        self.size = start
        self.offset_index.truncate_to_position(start)
        self.time_index.truncate_to_offset(next_offset)
        self.next_offset = next_offset
        self.max_timestamp = max_timestamp
        self._bytes_since_index = bytes_since_index

    # -- reading -------------------------------------------------------------------------

    def find_position(self, offset: int) -> int | None:
        """Position of the first batch whose last offset >= ``offset``, or None."""
        for position, _, last_offset in self._walk(self.offset_index.lookup(offset)):
            if last_offset >= offset:
                return position
        return None

    def read(
        self, offset: int, max_bytes: int, min_one: bool = True, max_offset: int | None = None
    ) -> bytes | memoryview | None:
        """Whole batches from the one containing ``offset``, at most ``max_bytes`` of them,
        and none whose base offset is ``max_offset`` or more (a ``read_committed`` read
        stops at the last stable offset, which is always a batch's base offset).

        If the first batch alone exceeds ``max_bytes`` it is returned anyway when
        ``min_one`` is set, so a consumer always makes progress (as Kafka does).
        """
        position = self.find_position(offset)
        if position is None:
            return None
        data = self.read_at(position, min(max(max_bytes, HEADER_SIZE), self.size - position))
        end = 0
        while len(data) - end >= HEADER_SIZE:
            base, size, _ = peek_offsets(data, end)
            if size < HEADER_SIZE:
                raise self._bad_length(position + end, size)
            if end + size > len(data) or (max_offset is not None and base >= max_offset):
                break
            end += size
        if end == 0:
            if not min_one or len(data) < 12:
                return b""
            base, size, _ = peek_offsets(self.read_at(position, HEADER_SIZE), 0)
            if max_offset is not None and base >= max_offset:
                return b""
            if not HEADER_SIZE <= size <= self.size - position:
                raise self._bad_length(position, size)
            return self.read_at(position, size)
        if end < len(data):
            return memoryview(data)[:end]  # no copy: the fetch path joins it into a response
        return data

    def _bad_length(self, position: int, size: int) -> CorruptRecordError:
        return CorruptRecordError(
            f"{self.files.log}: batch at position {position} claims {size} bytes "
            f"({self.size - position} left in the file)"
        )

    def read_batches(self, start_position: int = 0) -> Iterator[tuple[int, bytes]]:
        """(position, batch bytes) for each batch from ``start_position``; for the cleaner."""
        for position, size, _ in self._walk(start_position):
            yield position, self.read_at(position, size)

    def read_all(self) -> bytes:
        return self.read_at(0, self.size) if self.size else b""

    def read_at(self, position: int, size: int) -> bytes:
        """Up to ``size`` bytes of the ``.log`` from ``position`` (fewer at its end)."""
        with self._file as fd:
            return os.pread(fd, size, position)

    def timestamp_scan_start(self, timestamp: int) -> int:
        """Position from which to scan for the first record with timestamp >= ``timestamp``."""
        return self.offset_index.lookup(self.time_index.lookup(timestamp))

    def headers_from(self, position: int) -> Iterator[tuple[int, BatchHeader]]:
        """(position, header) of each batch from ``position``, reading in large chunks."""
        while position < self.size:
            chunk = self.read_at(position, min(_SCAN_CHUNK, self.size - position))
            pos = 0
            while len(chunk) - pos >= HEADER_SIZE:
                header = parse_header(chunk, pos)
                yield position + pos, header
                pos += header.size
            if pos == 0:
                raise CorruptRecordError(f"{self.files.log}: short batch at {position}")
            position += pos

    # -- lifecycle -----------------------------------------------------------------------

    def truncate_to(self, offset: int) -> int:
        """Remove every batch whose base offset >= ``offset``; return bytes removed.

        A batch that straddles ``offset`` is kept whole (as Kafka does): offsets are never
        split inside a batch.
        """
        cut = None
        last_kept = self.base_offset - 1
        for position, _, last_offset in self._walk(0):
            base = peek_offsets(self.read_at(position, HEADER_SIZE), 0)[0]
            if base >= offset:
                cut = position
                break
            last_kept = last_offset
        if cut is None:
            return 0
        removed = self.size - cut
        with self._file as fd:
            os.ftruncate(fd, cut)
        self._unsynced = True
        self.size = cut
        self.offset_index.truncate_to_position(cut)
        self.time_index.truncate_to_offset(last_kept + 1)
        self.next_offset = max(last_kept + 1, self.base_offset)
        self.max_timestamp = self.time_index.max_timestamp
        self.txn_index.truncate_to(self.next_offset)
        return removed

    def seal(self) -> None:
        """Mark the segment inactive: index its final max timestamp, as Kafka does on roll."""
        if self.max_timestamp >= 0 and self.next_offset > self.base_offset:
            self.time_index.append(self.max_timestamp, self.next_offset - 1)

    def flush(self, fsync: bool = True) -> None:
        """Write buffered index entries; with ``fsync``, make the segment durable.

        The ``.log`` is fdatasynced only if it may hold bytes not synced yet: a segment
        nobody wrote since its last flush is not reopened for nothing.
        """
        self.offset_index.flush(fsync)
        self.time_index.flush(fsync)
        self.txn_index.flush(fsync)
        if fsync and self._unsynced:
            with self._file as fd:
                os.fdatasync(fd)
            self._unsynced = False

    def sync_records(self) -> None:
        """fdatasync the ``.log`` alone (if it may hold bytes not synced yet): the records
        are durable, the indexes are not (recovery rebuilds them past the recovery
        point)."""
        if self._unsynced:
            with self._file as fd:
                os.fdatasync(fd)
            self._unsynced = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.offset_index.close()
        self.time_index.close()
        self._file.close()

    @property
    def holds_descriptor(self) -> bool:
        """Whether the ``.log``'s descriptor is open now (the indexes never stay open)."""
        return self._file.is_open

    def attach_file_cache(self, cache: FileCache) -> None:
        """Let ``cache`` bound this segment's descriptor from now on (see ``__init__``)."""
        self._file.attach(cache)

    def change_suffix(self, suffix: str) -> None:
        """Rename the three files to carry ``suffix`` ('' for live, '.deleted', ...)."""
        target = SegmentFiles.at(self.directory, self.base_offset, suffix)
        self._file.rename(target.log)
        self.offset_index.rename(target.index)
        self.time_index.rename(target.time_index)
        self.txn_index.rename(target.txn_index)
        self.files = target

    def delete_files(self) -> None:
        self.close()
        for path in self.files.all:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def __repr__(self) -> str:
        return f"LogSegment(base={self.base_offset}, next={self.next_offset}, size={self.size})"
