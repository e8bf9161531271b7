"""The store interface: a table is a ``Store``, each of its partitions a ``StorePartition``.

One store partition holds one table partition: bytes keys to bytes values, kept in key
order (windowed tables key on ``key + window start`` and scan by range), and the offset
of the last changelog record the contents reflect. The two are written together, in one
atomic ``write``, so a store is never ahead of, or silently behind, the offset it
records: recovery resumes from that offset + 1 and nothing is applied twice or skipped.

Two implementations keep the same contract (``tests/state/test_store_contract.py``):
``memory_store`` (a dict and a sorted key list; gone with the process) and
``rocksdb_store`` (a RocksDB database per partition, through rocksdict, raw bytes).

Keys and values are ``bytes`` (``bytearray``, ``str`` and the rest raise ``TypeError``):
serialisation belongs to the table above.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

__all__ = ["StorePartition", "Store", "key_bounds", "prefix_upper_bound"]


class StorePartition(Protocol):
    """One table partition's key-value state and the changelog offset it reflects.

    Invariants every implementation keeps:

    * ``write`` applies all of its updates and its changelog offset, or none of them;
    * ``items`` yields keys in ascending byte order, each once;
    * ``changelog_offset`` is kept apart from user keys: no key, however chosen, can
      read or overwrite it;
    * after ``wipe`` the partition is empty and has no changelog offset, and is still
      open; after ``close`` or ``destroy`` every call raises ``StoreClosedError``.

    Not thread-safe: one event loop (or one thread) uses a partition.
    """

    @property
    def closed(self) -> bool: ...

    @property
    def wipe_reason(self) -> str | None:
        """Why the partition was found unusable and wiped when opened, else None.

        A wiped partition has no changelog offset: it needs a full recovery."""
        ...

    def get(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or None."""
        ...

    def items(
        self,
        start: bytes | None = None,
        end: bytes | None = None,
        prefix: bytes | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` in key order, for ``start <= key < end`` and keys that begin
        with ``prefix`` (each bound optional; together they intersect).

        Writes made while iterating may or may not be seen; no key is yielded twice."""
        ...

    def write(self, updates: Mapping[bytes, bytes | None], changelog_offset: int | None) -> None:
        """Apply ``updates`` (None deletes the key) and record ``changelog_offset`` (None:
        leave the recorded offset as it is), atomically."""
        ...

    def changelog_offset(self) -> int | None:
        """The offset of the last changelog record the contents reflect, or None."""
        ...

    def is_empty(self) -> bool: ...

    def wipe(self) -> None:
        """Delete every key and the changelog offset; the partition stays open."""
        ...

    def close(self) -> None:
        """Release the partition; what was written stays (for a persistent store)."""
        ...

    def destroy(self) -> None:
        """Close the partition and delete what it stored."""
        ...


class Store(Protocol):
    """A table's partitions, opened as they are assigned and closed as they are revoked."""

    @property
    def name(self) -> str: ...

    def partition(self, number: int) -> StorePartition:
        """Partition ``number``, opened (or created) on first use."""
        ...

    def open_partitions(self) -> Mapping[int, StorePartition]: ...

    def close_partition(self, number: int) -> None:
        """Close partition ``number`` if it is open (a revoked partition)."""
        ...

    def close(self) -> None:
        """Close every open partition."""
        ...


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key that begins with ``prefix``, or None when
    there is none (``prefix`` empty or all 0xff): the exclusive end of a prefix scan."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes((trimmed[-1] + 1,))


def key_bounds(
    start: bytes | None, end: bytes | None, prefix: bytes | None
) -> tuple[bytes | None, bytes | None]:
    """``items``' three optional bounds as one half-open range ``[low, high)``.

    Keys beginning with ``prefix`` are exactly ``[prefix, prefix_upper_bound(prefix))``,
    so a prefix narrows the range like any other bound.
    """
    low, high = start, end
    if prefix is not None:
        if low is None or prefix > low:
            low = prefix
        upper = prefix_upper_bound(prefix)
        if upper is not None and (high is None or upper < high):
            high = upper
    return low, high
