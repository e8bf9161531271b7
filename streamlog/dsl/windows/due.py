"""Scheduling for closing and expiry: window keys by the stream time they fall due."""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Final

__all__ = ["DueQueue", "NEVER"]

NEVER: Final = 1 << 127  # a due time later than any stream time


class DueQueue:
    """Window keys by the stream time at which they fall due, earliest first.

    Windows of an aligned kind that start together fall due together, so a due time
    holds a bucket of keys (a list, appended to in O(1)) and a heap holds only the
    distinct due times: scheduling a window costs an append, not a heap insertion among
    every live window. ``head`` is the earliest due time, ``NEVER`` when empty (checked
    per event, so it is a plain attribute). Entries may be stale (a window merged away or
    deleted already): consumers check them as their kind requires.

    Invariants: no bucket is empty; ``head == _dues[0]`` (or ``NEVER``); ``_last`` is
    the bucket of ``_last_due`` (the due time pushed to last, the common next one) and is
    never the bucket ``pop`` keeps sorted (``_sorted_due``).
    """

    __slots__ = ("head", "_dues", "_buckets", "_last_due", "_last", "_sorted_due")

    def __init__(self) -> None:
        self.head: int = NEVER
        self._dues: list[int] = []
        self._buckets: dict[int, list[bytes]] = {}
        self._last_due: int | None = None
        self._last: list[bytes] = []
        self._sorted_due: int | None = None

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets.values())

    def __repr__(self) -> str:
        return f"<DueQueue {len(self)} keys in {len(self._dues)} due times, head {self.head}>"

    def push(self, due: int, key: bytes) -> None:
        if due == self._last_due:
            self._last.append(key)
            return
        bucket = self._buckets.get(due)
        if bucket is None:
            bucket = self._buckets[due] = []
            heappush(self._dues, due)
            self.head = self._dues[0]
        elif due == self._sorted_due:
            self._sorted_due = None  # appended to: sorted again by the next pop
            bucket.append(key)
            return
        bucket.append(key)
        self._last_due = due
        self._last = bucket

    def pop(self) -> bytes:
        """Remove and return the earliest entry (by due time, then key); not when empty."""
        due = self.head
        bucket = self._buckets[due]
        if self._sorted_due != due:
            bucket.sort(reverse=True)
            self._sorted_due = due
            if self._last_due == due:
                self._last_due = None
        key = bucket.pop()
        if not bucket:
            self._drop_head(due)
        return key

    def pop_bucket(self) -> list[bytes]:
        """Remove and return every key of the earliest due time; not when empty."""
        due = self.head
        bucket = self._buckets[due]
        self._drop_head(due)
        return bucket

    def _drop_head(self, due: int) -> None:
        del self._buckets[due]
        dues = self._dues
        heappop(dues)
        self.head = dues[0] if dues else NEVER
        if self._last_due == due:
            self._last_due = None
        if self._sorted_due == due:
            self._sorted_due = None
