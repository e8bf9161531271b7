"""The aborted-transactions index of one segment (Kafka's ``.txnindex``).

A ``read_committed`` fetch must tell the consumer which records to drop: for every
transaction aborted in the range it read, the producer id and the first offset of the
transaction. The index lists, in the segment holding each abort marker, one entry per
aborted transaction, in marker order. On disk (big-endian, Kafka's layout), 34 bytes::

    version int16 (0) | producerId int64 | firstOffset int64 | lastOffset int64 |
    lastStableOffset int64

``lastOffset`` is the abort marker's offset; ``firstOffset`` may lie in an earlier
segment. ``lastStableOffset`` is the partition's last stable offset right after the
abort: a reader collecting the aborted transactions below some offset ``upper`` may stop
at the first entry whose ``lastStableOffset >= upper`` (any transaction aborted later and
starting below ``upper`` would have held the last stable offset below it).

The index is derived: the loader rebuilds it from the log when the file does not fit its
segment (size not a multiple of 34, an entry that does not validate, entries out of
order), when its entries do not match the digest the clean shutdown's snapshot recorded
(a file changed, removed or added while the log was closed), and whenever the log is
recovered after a crash. The file exists only while the
segment has entries, so a partition without transactions has no ``.txnindex`` files.
Entries are held in memory (one per aborted transaction; aborts are rare next to records).
Not thread-safe: the owning segment's log serialises access.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from crc32c import crc32c

from streamlog.log.errors import IndexCorruptError

__all__ = ["AbortedTxn", "TransactionIndex", "ENTRY_SIZE"]

_ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = _ENTRY.size  # 34
_VERSION = 0
_MIN_BATCH = 61  # an abort marker is a whole batch: no segment holds more entries than this


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    """One aborted transaction: what a Fetch response's ``aborted_transactions`` carries
    (``producer_id``, ``first_offset``) and where it ended (``last_offset``, its marker)."""

    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int

    def encode(self) -> bytes:
        return _ENTRY.pack(
            _VERSION, self.producer_id, self.first_offset, self.last_offset, self.last_stable_offset
        )


class TransactionIndex:
    """The entries of one segment's ``.txnindex`` and the file; see the module docstring."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.entries: list[AbortedTxn] = []
        self._unsynced = False
        self._damaged = False

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, base_offset: int, next_offset: int, log_size: int) -> None:
        """Read and validate the file for a segment covering [base, next) in ``log_size``
        bytes; ``IndexCorruptError`` if it does not fit (the caller rebuilds it).

        Every size comes from the file, so each is bounded before use: the file may not
        hold more entries than the segment could hold abort markers.
        """
        try:
            size = os.path.getsize(self.path)
        except FileNotFoundError:
            self.entries = []
            return
        if size % ENTRY_SIZE or size > ENTRY_SIZE * (log_size // _MIN_BATCH):
            raise IndexCorruptError(
                f"{self.path}: {size} bytes do not fit a segment of {log_size} bytes"
            )
        with open(self.path, "rb") as f:
            data = f.read(size)
        if len(data) != size:
            raise IndexCorruptError(f"{self.path} changed while it was read")
        entries: list[AbortedTxn] = []
        previous = base_offset - 1
        for version, pid, first, last, lso in _ENTRY.iter_unpack(data):
            if (
                version != _VERSION
                or pid < 0
                or not 0 <= first <= last
                or not previous < last < next_offset
                or not 0 <= lso <= last + 1
            ):
                raise IndexCorruptError(
                    f"{self.path}: entry {len(entries)} ({version}, {pid}, {first}, {last}, "
                    f"{lso}) does not fit the segment [{base_offset}, {next_offset})"
                )
            entries.append(AbortedTxn(pid, first, last, lso))
            previous = last
        self.entries = entries

    def digest(self) -> int:
        """CRC-32C of the entries as stored: the shutdown snapshot keeps it so that an
        index changed while the log was closed is not trusted."""
        return crc32c(b"".join(e.encode() for e in self.entries))

    def append(self, txn: AbortedTxn) -> None:
        """Add an entry (its marker was just appended) and write it through."""
        if self.entries and txn.last_offset <= self.entries[-1].last_offset:
            raise IndexCorruptError(
                f"{self.path}: aborted transaction ending at {txn.last_offset} is not after "
                f"{self.entries[-1].last_offset}"
            )
        self.entries.append(txn)
        self._unsynced = True
        try:
            with open(self.path, "ab") as f:
                f.write(txn.encode())
        except OSError:
            # The marker is in the log: the entry stays in memory and the file is
            # rewritten whole at the next flush (a close that cannot do it leaves no
            # clean-shutdown marker, so the next open rebuilds the index from the log).
            self._damaged = True
            raise

    def reset(self, entries: Sequence[AbortedTxn]) -> None:
        """Replace the entries (a rebuild, a truncation); the file is rewritten whole by
        rename, or removed when there are none."""
        if (
            not self._damaged
            and list(entries) == self.entries
            and bool(entries) == os.path.exists(self.path)
        ):
            return
        self.entries = list(entries)
        if not self.entries:
            self.delete_file()
            self._damaged = False
            return
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(b"".join(e.encode() for e in self.entries))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._unsynced = self._damaged = False

    def truncate_to(self, offset: int) -> None:
        """Forget the transactions whose marker is at or after ``offset``."""
        kept = [e for e in self.entries if e.last_offset < offset]
        if len(kept) != len(self.entries):
            self.reset(kept)

    def overlapping(self, start: int, upper: int, out: list[AbortedTxn]) -> bool:
        """Add to ``out`` the entries of transactions that have records in [start, upper);
        True when no later segment can hold one (see the module docstring)."""
        for txn in self.entries:
            if txn.last_offset >= start and txn.first_offset < upper:
                out.append(txn)
            if txn.last_stable_offset >= upper:
                return True
        return False

    def flush(self, fsync: bool) -> None:
        if self._damaged:
            self.reset(self.entries)
            return
        if fsync and self._unsynced and self.entries:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._unsynced = False

    def rename(self, path: str) -> None:
        if os.path.exists(self.path):
            os.replace(self.path, path)
        self.path = path

    def delete_file(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
