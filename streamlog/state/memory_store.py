"""Store partitions in memory: a dict for lookups and a sorted key list for range scans.

Nothing survives the process (or ``close``): a memory table is rebuilt from its changelog
every time a partition is assigned. Meant for tests and small tables; the contract is
``stores.StorePartition``'s, checked by the same tests as the RocksDB store.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping

from streamlog.state.errors import StoreClosedError
from streamlog.state.stores import StorePartition, key_bounds

__all__ = ["MemoryStore", "MemoryStorePartition"]


class MemoryStorePartition:
    """See the module docstring.

    ``_sorted`` is rebuilt lazily, never changed in place (so a running ``items`` keeps a
    stable list): ``set(_sorted) - _removed | _added == set(_data)``, with ``_added``
    disjoint from ``_sorted`` and ``_removed`` within it. A rebuild drops ``_removed``
    and merges the sorted ``_added`` in one linear pass (two sorted runs for Timsort).
    """

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._sorted: list[bytes] = []
        self._added: set[bytes] = set()
        self._removed: set[bytes] = set()
        self._offset: int | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryStorePartition({len(self._data)} keys, offset={self._offset})"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def wipe_reason(self) -> str | None:
        return None  # nothing to find broken: it starts empty

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("the memory store partition is closed")

    def get(self, key: bytes) -> bytes | None:
        if self._closed:
            self._check_open()
        if key.__class__ is not bytes:
            raise TypeError(f"store keys are bytes, not {type(key).__name__}")
        return self._data.get(key)

    def items(
        self,
        start: bytes | None = None,
        end: bytes | None = None,
        prefix: bytes | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        self._check_open()
        low, high = key_bounds(start, end, prefix)
        if self._added or self._removed:
            self._rebuild()
        keys = self._sorted
        first = 0 if low is None else bisect_left(keys, low)
        stop = len(keys) if high is None else bisect_left(keys, high)
        return self._iterate(keys, first, stop)

    def _iterate(self, keys: list[bytes], first: int, stop: int) -> Iterator[tuple[bytes, bytes]]:
        data = self._data
        for i in range(first, stop):
            if self._closed:
                self._check_open()
            key = keys[i]
            value = data.get(key)
            if value is not None:  # deleted since the list was built
                yield key, value

    def _rebuild(self) -> None:
        keys = self._sorted
        if self._removed:
            removed = self._removed
            keys = [k for k in keys if k not in removed]
        else:
            keys = list(keys)
        if self._added:
            keys.extend(sorted(self._added))
            keys.sort()
        self._sorted = keys
        self._added = set()
        self._removed = set()

    def write(self, updates: Mapping[bytes, bytes | None], changelog_offset: int | None) -> None:
        self._check_open()
        # Checked before anything changes: the write is all or nothing.
        for key, value in updates.items():
            if key.__class__ is not bytes:
                raise TypeError(f"store keys are bytes, not {type(key).__name__}")
            if value is not None and value.__class__ is not bytes:
                raise TypeError(f"store values are bytes or None, not {type(value).__name__}")
        data, added, removed = self._data, self._added, self._removed
        for key, value in updates.items():
            if value is None:
                if data.pop(key, None) is not None:
                    if key in added:
                        added.discard(key)
                    else:
                        removed.add(key)
            else:
                if key not in data:
                    if key in removed:
                        removed.discard(key)
                    else:
                        added.add(key)
                data[key] = value
        if changelog_offset is not None:
            self._offset = changelog_offset

    def changelog_offset(self) -> int | None:
        self._check_open()
        return self._offset

    def is_empty(self) -> bool:
        self._check_open()
        return not self._data

    def __len__(self) -> int:
        return len(self._data)

    def wipe(self) -> None:
        self._check_open()
        self._data = {}
        self._sorted = []
        self._added = set()
        self._removed = set()
        self._offset = None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._data = {}
            self._sorted = []
            self._added = set()
            self._removed = set()
            self._offset = None

    def destroy(self) -> None:
        self.close()


class MemoryStore:
    """A table's memory partitions; closing one discards its contents."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._partitions: dict[int, MemoryStorePartition] = {}

    def __repr__(self) -> str:
        return f"MemoryStore({self._name!r}, partitions={sorted(self._partitions)})"

    @property
    def name(self) -> str:
        return self._name

    def partition(self, number: int) -> StorePartition:
        found = self._partitions.get(number)
        if found is None:
            if number < 0:
                raise ValueError(f"partition numbers are >= 0, not {number}")
            found = self._partitions[number] = MemoryStorePartition()
        return found

    def open_partitions(self) -> Mapping[int, StorePartition]:
        return dict(self._partitions)

    def close_partition(self, number: int) -> None:
        found = self._partitions.pop(number, None)
        if found is not None:
            found.close()

    def close(self) -> None:
        for number in list(self._partitions):
            self.close_partition(number)
