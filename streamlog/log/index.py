"""Sparse offset and time indexes of one segment.

On disk (big-endian, as Kafka lays them out):

* ``.index``: 8-byte entries ``(relative offset: uint32, position: uint32)``; the
  relative offset is the *last* offset of an indexed batch minus the segment's base offset.
* ``.timeindex``: 12-byte entries ``(timestamp: int64, relative offset: uint32)``; the
  largest timestamp seen so far and the last offset of the batch that carried it.

Both are sparse (an entry every ``index.interval.bytes`` of log) and derived: if a file is
missing, short or inconsistent the segment rebuilds it from the log. They are held in memory
as two parallel ``array`` columns so lookups are a ``bisect`` and appends are cheap; the
file is appended to as entries are added and made durable when the segment is flushed.
Not thread-safe: the owning segment serialises access.
"""

from __future__ import annotations

import os
import struct
from array import array
from bisect import bisect_right

from streamlog.log.errors import IndexCorruptError

__all__ = ["OffsetIndex", "TimeIndex", "IndexCorruptError"]

_OFFSET_ENTRY = struct.Struct(">II")
_TIME_ENTRY = struct.Struct(">qI")


class _IndexFile:
    """Append-only file of fixed-size entries with buffered writes and explicit flush.

    No descriptor is held between writes: entries are buffered in memory (the lookups use
    the in-memory columns) and the file is opened only to write them, so an idle segment
    costs no descriptor for its indexes (see ``file_cache.py``).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._pending = bytearray()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            # Whether the file may hold bytes not yet fsynced: unknown for one with
            # entries (a crashed process may have left some unsynced), so assume it does.
            self._unsynced = os.fstat(fd).st_size > 0
        finally:
            os.close(fd)

    def read_all(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()

    def append(self, entry: bytes) -> None:
        self._pending += entry

    def flush(self, fsync: bool) -> None:
        """Write the pending entries; on a full disk what was not written stays pending.

        A short write is continued, never dropped: a dropped tail would leave a partial
        entry and shift every entry after it. The file is opened for the write only.
        """
        if not self._pending and not (fsync and self._unsynced):
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            while self._pending:
                written = os.write(fd, self._pending)
                del self._pending[:written]
                self._unsynced = True
            if fsync:
                os.fsync(fd)
                self._unsynced = False
        finally:
            os.close(fd)

    def reset(self, content: bytes = b"") -> None:
        self._pending.clear()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if content:
                os.write(fd, content)
        finally:
            os.close(fd)
        self._unsynced = True

    def close(self) -> None:
        try:
            self.flush(fsync=False)
        except OSError:
            pass  # derived data: a short index is rebuilt or extended on the next open

    def rename(self, path: str) -> None:
        os.rename(self.path, path)
        self.path = path


class OffsetIndex:
    """Maps an offset to the file position of the batch that may contain it."""

    ENTRY_SIZE = _OFFSET_ENTRY.size

    def __init__(self, path: str, base_offset: int) -> None:
        self.base_offset = base_offset
        self._file = _IndexFile(path)
        self._offsets = array("q")
        self._positions = array("q")

    @property
    def path(self) -> str:
        return self._file.path

    def __len__(self) -> int:
        return len(self._offsets)

    @property
    def last_offset(self) -> int | None:
        """The last offset of the last indexed batch, or None when empty."""
        return self._offsets[-1] if self._offsets else None

    def load(self, log_size: int) -> None:
        """Read entries from disk; raise ``IndexCorruptError`` if they cannot be right."""
        data = self._file.read_all()
        if len(data) % self.ENTRY_SIZE:
            raise IndexCorruptError(f"{self.path}: size {len(data)} is not a multiple of 8")
        offsets, positions = array("q"), array("q")
        last_offset, last_pos = -1, -1
        for rel, pos in _OFFSET_ENTRY.iter_unpack(data):
            offset = self.base_offset + rel
            if offset <= last_offset or pos <= last_pos or pos >= log_size:
                raise IndexCorruptError(f"{self.path}: entries out of order or past the log")
            offsets.append(offset)
            positions.append(pos)
            last_offset, last_pos = offset, pos
        self._offsets, self._positions = offsets, positions

    def append(self, last_offset: int, position: int) -> None:
        """Index a batch whose last offset is ``last_offset`` starting at ``position``."""
        if self._offsets and last_offset <= self._offsets[-1]:
            return
        self._offsets.append(last_offset)
        self._positions.append(position)
        self._file.append(_OFFSET_ENTRY.pack(last_offset - self.base_offset, position))

    def lookup(self, offset: int) -> int:
        """A file position at or before the start of the batch containing ``offset``.

        Entries record batches' last offsets: the greatest entry whose last offset is
        <= ``offset`` is either that batch or one before it, so a scan from there finds it.
        """
        i = bisect_right(self._offsets, offset)
        return self._positions[i - 1] if i else 0

    def truncate_to_position(self, position: int) -> None:
        """Drop entries for batches at or past ``position`` (log truncation)."""
        i = bisect_right(self._positions, position - 1)
        if i == len(self._positions):
            return
        del self._offsets[i:]
        del self._positions[i:]
        self._file.reset(
            b"".join(
                _OFFSET_ENTRY.pack(o - self.base_offset, p)
                for o, p in zip(self._offsets, self._positions, strict=True)
            )
        )

    def reset(self) -> None:
        self._offsets = array("q")
        self._positions = array("q")
        self._file.reset()

    def flush(self, fsync: bool) -> None:
        self._file.flush(fsync)

    def close(self) -> None:
        self._file.close()

    def rename(self, path: str) -> None:
        self._file.rename(path)


class TimeIndex:
    """Maps a timestamp to an offset from which to scan for the first record at or after it."""

    ENTRY_SIZE = _TIME_ENTRY.size

    def __init__(self, path: str, base_offset: int) -> None:
        self.base_offset = base_offset
        self._file = _IndexFile(path)
        self._timestamps = array("q")
        self._offsets = array("q")

    @property
    def path(self) -> str:
        return self._file.path

    def __len__(self) -> int:
        return len(self._timestamps)

    @property
    def max_timestamp(self) -> int:
        """The largest timestamp indexed, or -1."""
        return self._timestamps[-1] if self._timestamps else -1

    def load(self, next_offset: int) -> None:
        data = self._file.read_all()
        if len(data) % self.ENTRY_SIZE:
            raise IndexCorruptError(f"{self.path}: size {len(data)} is not a multiple of 12")
        timestamps, offsets = array("q"), array("q")
        for ts, rel in _TIME_ENTRY.iter_unpack(data):
            offset = self.base_offset + rel
            if (timestamps and (ts <= timestamps[-1] or offset < offsets[-1])) or (
                offset >= next_offset
            ):
                raise IndexCorruptError(f"{self.path}: entries out of order or past the log")
            timestamps.append(ts)
            offsets.append(offset)
        self._timestamps, self._offsets = timestamps, offsets

    def append(self, max_timestamp: int, last_offset: int) -> None:
        """Record that ``max_timestamp`` was reached by the batch ending at ``last_offset``."""
        if self._timestamps and max_timestamp <= self._timestamps[-1]:
            return
        self._timestamps.append(max_timestamp)
        self._offsets.append(last_offset)
        self._file.append(_TIME_ENTRY.pack(max_timestamp, last_offset - self.base_offset))

    def lookup(self, timestamp: int) -> int:
        """An offset at or before the first record with a timestamp >= ``timestamp``.

        Every record before an entry's offset (inclusive) has a timestamp <= the entry's;
        so scanning may start just after the last entry whose timestamp is < ``timestamp``.
        """
        i = bisect_right(self._timestamps, timestamp - 1)
        return self._offsets[i - 1] + 1 if i else self.base_offset

    def truncate_to_offset(self, offset: int) -> None:
        """Drop entries for offsets >= ``offset``."""
        i = bisect_right(self._offsets, offset - 1)
        if i == len(self._offsets):
            return
        del self._timestamps[i:]
        del self._offsets[i:]
        self._file.reset(
            b"".join(
                _TIME_ENTRY.pack(t, o - self.base_offset)
                for t, o in zip(self._timestamps, self._offsets, strict=True)
            )
        )

    def reset(self) -> None:
        self._timestamps = array("q")
        self._offsets = array("q")
        self._file.reset()

    def flush(self, fsync: bool) -> None:
        self._file.flush(fsync)

    def close(self) -> None:
        self._file.close()

    def rename(self, path: str) -> None:
        self._file.rename(path)
