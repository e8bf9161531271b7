"""``PartitionTransaction``: the writes to one store partition between two commits.

Writes go to an in-memory cache (``set``, ``delete``) that reads see first (``get``,
``items``): processing reads its own writes, and the store is untouched until the
commit. The commit (``checkpoint.py`` owns its order) then drives the transaction
through three calls:

1. ``prepare(producer)``: every changed key is sent to the changelog partition, once,
   with its last value (a delete as a tombstone, value None), in the order the keys were
   first changed; the records are queued with one ``send_many`` and its acknowledgement
   kept;
2. ``acknowledged()``: waits for those acknowledgements and returns the highest
   changelog offset among them;
3. ``flush()``: writes the changes and that offset to the store partition in one atomic
   write.

So a store never records a change its changelog may not have: recovery, which trusts
the store's offset and replays what follows it, neither misses nor repeats a change.
A transaction without a changelog (``changelog=None``) skips the first two.

Two things keep hot callers (a windowed table applying an event) from paying for what
they know already: ``insert`` writes a key the caller knows is new without a read, and
remembers that the store lacks it, so a delete of it before the commit (a window that
expired within the commit interval) still reaches the changelog as a tombstone but is
not written to the store, where there is nothing to delete; ``before_prepare`` lets a
caller write in-memory state (stream time) once per commit instead of on every change.
"""

from __future__ import annotations

import enum
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import repeat
from typing import Final

from streamlog.state.errors import TransactionStateError
from streamlog.state.stores import StorePartition, key_bounds
from streamlog.transport.base import Producer, SentRecords
from streamlog.transport.types import TopicPartition

__all__ = ["PartitionTransaction", "TransactionState"]


class TransactionState(enum.Enum):
    OPEN = "open"  # reads and writes
    PREPARED = "prepared"  # changelog records sent, not yet acknowledged
    ACKNOWLEDGED = "acknowledged"  # changelog acknowledged, store not written
    FLUSHED = "flushed"  # store written: done
    FAILED = "failed"  # a step raised: only reads of the store are meaningful now


_OPEN: Final = TransactionState.OPEN


class PartitionTransaction:
    """Read-your-writes changes to one store partition, committed as a unit.

    Invariants: ``_updates`` maps each key changed since the transaction began to its
    latest value (None: deleted); writes are accepted only while OPEN; the store is
    written only by ``flush``, only after the changelog acknowledged every change (or
    when there is no changelog), and at most once. ``_fresh`` holds changed keys the
    store does not have (``insert``ed while not yet changed): a deleted one needs no
    store write.

    ``open`` is True exactly while the state is OPEN. A transaction leaves OPEN once (the
    commit begins, or it fails) and never returns to it, which is what lets a table keep
    its partition's transaction between events and ask the checkpoint again only once
    ``open`` turns False (the checkpoint drops no transaction that is still open).
    """

    __slots__ = (
        "_store",
        "_changelog",
        "_updates",
        "_fresh",
        "_before_prepare",
        "_sorted",
        "_acks",
        "_offset",
        "_state",
        "open",
    )

    def __init__(self, store: StorePartition, changelog: TopicPartition | None = None) -> None:
        self._store = store
        self._changelog = None if changelog is None else TopicPartition(*changelog)
        self._updates: dict[bytes, bytes | None] = {}
        self._fresh: list[bytes] = []  # a list: one append per insert, a set at flush
        self._before_prepare: list[Callable[[PartitionTransaction], None]] = []
        # The changed keys in order, built on the first ranged read and kept sorted by
        # insertion after it: a range read must not sort every change each time.
        self._sorted: list[bytes] | None = None
        self._acks: list[SentRecords] = []
        self._offset: int | None = None
        self._state = _OPEN
        self.open = True

    def __repr__(self) -> str:
        return (
            f"PartitionTransaction({self._store!r}, changelog={self._changelog}, "
            f"{len(self._updates)} changes, {self._state.value})"
        )

    @property
    def store(self) -> StorePartition:
        return self._store

    @property
    def changelog(self) -> TopicPartition | None:
        return self._changelog

    @property
    def state(self) -> TransactionState:
        return self._state

    @property
    def changes(self) -> int:
        """How many keys this transaction changed (each counted once)."""
        return len(self._updates)

    @property
    def changelog_offset(self) -> int | None:
        """The highest acknowledged changelog offset, once ``acknowledged`` returned."""
        return self._offset

    # -- reads and writes ----------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` as this transaction sees it (its own writes first)."""
        updates = self._updates
        if key in updates:
            return updates[key]
        return self._store.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        if not self.open:
            self._refuse("set")
        if value is None:
            raise TypeError("set() takes a bytes value; use delete() to remove a key")
        updates = self._updates
        if self._sorted is not None and key not in updates:
            insort(self._sorted, key)
        updates[key] = value

    def insert(self, key: bytes, value: bytes) -> None:
        """``set`` a key the caller knows has no value in this transaction's view (a
        window it has just created), so nothing was read to learn it.

        The same as ``set`` for reads and the changelog. If the key was not among this
        transaction's changes, the store lacks it as well: should the key be deleted
        again before the commit, ``flush`` leaves the store alone for it (the tombstone
        still goes to the changelog). A caller that is wrong about the premise leaves a
        stored value in place where a delete was meant: only call it when sure.
        """
        if not self.open:
            self._refuse("set")
        if value.__class__ is not bytes:
            raise TypeError("insert() takes a bytes value")
        updates = self._updates
        if key not in updates:
            self._fresh.append(key)
            if self._sorted is not None:
                insort(self._sorted, key)
        updates[key] = value

    def delete(self, key: bytes) -> None:
        if not self.open:
            self._refuse("delete")
        updates = self._updates
        if self._sorted is not None and key not in updates:
            insort(self._sorted, key)
        updates[key] = None

    def delete_many(self, keys: Iterable[bytes]) -> None:
        """``delete`` each of ``keys`` (what expiring a batch of windows does at once)."""
        if not self.open:
            self._refuse("delete")
        if self._sorted is None:
            self._updates.update(zip(keys, repeat(None)))
            return
        for key in keys:
            self.delete(key)

    def items(
        self,
        start: bytes | None = None,
        end: bytes | None = None,
        prefix: bytes | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` in key order, the store's merged with this transaction's
        changes: new keys appear in place, deleted keys do not, changed keys carry their
        new value. Bounds as ``StorePartition.items``."""
        low, high = key_bounds(start, end, prefix)
        stored = self._store.items(low, high)
        updates = self._updates
        if not updates:
            return stored
        ordered = self._sorted
        if ordered is None:
            ordered = self._sorted = sorted(updates)
        first = 0 if low is None else bisect_left(ordered, low)
        last = len(ordered) if high is None else bisect_left(ordered, high)
        pending = ordered[first:last]
        if not pending:
            return _without_deleted_since(stored, updates)
        return _merge(stored, pending, updates)

    def before_prepare(self, callback: Callable[[PartitionTransaction], None]) -> None:
        """Call ``callback(self)`` at the start of ``prepare``, while the transaction is
        still open, so it can write state its caller keeps in memory once per commit
        rather than on every change (a windowed table's stream time). Callbacks run in
        the order they were added, once; one that raises fails the transaction (FAILED:
        the commit fails at its first step, and nothing is sent)."""
        if not self.open:
            self._refuse("add to")
        self._before_prepare.append(callback)

    def _refuse(self, action: str) -> None:
        raise TransactionStateError(
            f"cannot {action} in a transaction that is {self._state.value}: changes are "
            "accepted only until the commit begins"
        )

    # -- the commit ----------------------------------------------------------------------

    async def prepare(self, producer: Producer) -> int:
        """Send every change to the changelog (step 1 of the commit); returns how many.

        The records are queued without waiting (one ``send_many``: no Python work per
        record in the producer); ``acknowledged`` awaits them.
        """
        if not self.open:
            self._refuse("prepare")
        callbacks = self._before_prepare
        if callbacks:
            self._before_prepare = []
            try:
                for callback in callbacks:
                    callback(self)
            except BaseException:
                self.fail()
                raise
        self._state = TransactionState.PREPARED
        self.open = False
        changelog = self._changelog
        updates = self._updates
        if changelog is None or not updates:
            return 0
        topic, partition = changelog
        try:
            sent = await producer.send_many(
                topic, list(updates.values()), keys=list(updates), partition=partition
            )
        except BaseException:
            self._state = TransactionState.FAILED
            raise
        self._acks.append(sent)
        return len(updates)

    async def acknowledged(self) -> int | None:
        """Wait for every changelog acknowledgement (step 2); the highest offset, or None
        when nothing was sent. Raises what a failed send raised."""
        if self._state is TransactionState.ACKNOWLEDGED:
            return self._offset
        if self._state is not TransactionState.PREPARED:
            raise TransactionStateError(
                f"acknowledged() needs a prepared transaction, this one is {self._state.value}"
            )
        highest = -1
        try:
            for ack in self._acks:
                for offset in (await ack.highest_offsets()).values():
                    highest = max(highest, offset)
        except BaseException:
            self._state = TransactionState.FAILED
            raise
        self._acks = []
        self._offset = highest if highest >= 0 else None
        self._state = TransactionState.ACKNOWLEDGED
        return self._offset

    def flush(self) -> None:
        """Write the changes and the changelog offset to the store in one atomic write
        (step 3). Only after ``acknowledged``: the store must not get ahead of its
        changelog."""
        if self._state is not TransactionState.ACKNOWLEDGED:
            raise TransactionStateError(
                f"flush() needs an acknowledged transaction, this one is {self._state.value}"
            )
        updates = self._updates
        if self._fresh:  # deletes of keys the store never had: nothing to write for them
            fresh = set(self._fresh)
            updates = {k: v for k, v in updates.items() if v is not None or k not in fresh}
        if updates or self._offset is not None:
            try:
                self._store.write(updates, self._offset)
            except BaseException:
                self._state = TransactionState.FAILED
                raise
        self._updates = {}
        self._fresh = []
        self._sorted = None
        self._state = TransactionState.FLUSHED

    def fail(self) -> None:
        """Abandon the transaction: its changes are dropped, the store is not written."""
        self._updates = {}
        self._fresh = []
        self._before_prepare = []
        self._sorted = None
        self._acks = []
        self._state = TransactionState.FAILED
        self.open = False


def _without_deleted_since(
    stored: Iterator[tuple[bytes, bytes]], updates: Mapping[bytes, bytes | None]
) -> Iterator[tuple[bytes, bytes]]:
    """The store's pairs, with keys changed during the scan shown as they are now."""
    for key, value in stored:
        if key in updates:
            current = updates[key]
            if current is not None:
                yield key, current
        else:
            yield key, value


def _merge(
    stored: Iterator[tuple[bytes, bytes]],
    pending: list[bytes],
    updates: Mapping[bytes, bytes | None],
) -> Iterator[tuple[bytes, bytes]]:
    """Merge the store's pairs with the sorted changed keys ``pending``; a change wins.

    Values are read from ``updates`` as they are yielded, so a change made while the
    caller iterates shows for keys not yet reached.
    """
    i, count = 0, len(pending)
    for key, value in stored:
        while i < count and pending[i] < key:
            changed = pending[i]
            i += 1
            current = updates.get(changed)
            if current is not None:
                yield changed, current
        if i < count and pending[i] == key:
            i += 1
        if key in updates:
            current = updates[key]
            if current is not None:
                yield key, current
        else:
            yield key, value
    while i < count:
        changed = pending[i]
        i += 1
        current = updates.get(changed)
        if current is not None:
            yield changed, current
