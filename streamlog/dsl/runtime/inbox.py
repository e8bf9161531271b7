"""Where batches wait for an agent: a bounded queue that can be closed, and a read cursor.

Bounded so that a slow agent slows the fetch loop down (back-pressure) instead of letting
fetched records pile up in memory. Closing wakes every waiter: readers get ``None`` (the
stream ends) and writers give up, which is how a stopping worker stops feeding agents
without losing anything (queued batches were never acknowledged, so they are re-read
after a restart).
"""

from __future__ import annotations

import asyncio
from collections import deque

from streamlog.dsl.runtime.acks import Batch

__all__ = ["Inbox", "Cursor"]


class Inbox:
    """Batches for one agent (shared by its actors when ``concurrency > 1``)."""

    __slots__ = ("name", "maxsize", "closed", "_items", "_getters", "_putters")

    def __init__(self, name: str, maxsize: int = 64) -> None:
        self.name = name
        self.maxsize = max(1, maxsize)
        self.closed = False
        self._items: deque[Batch] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, batch: Batch) -> bool:
        """Queue without waiting (channels, replies); False if the inbox is closed."""
        if self.closed:
            return False
        self._items.append(batch)
        _wake_one(self._getters)
        return True

    async def put(self, batch: Batch) -> bool:
        """Queue, waiting while the inbox is full; False if it closed meanwhile."""
        while len(self._items) >= self.maxsize and not self.closed:
            future = asyncio.get_running_loop().create_future()
            self._putters.append(future)
            try:
                await future
            finally:
                _discard(self._putters, future)
        return self.put_nowait(batch)

    async def get(self) -> Batch | None:
        """The next batch, or None once the inbox is closed."""
        while not self._items:
            if self.closed:
                return None
            future = asyncio.get_running_loop().create_future()
            self._getters.append(future)
            try:
                await future
            finally:
                _discard(self._getters, future)
        batch = self._items.popleft()
        _wake_one(self._putters)
        return batch

    def close(self) -> int:
        """Stop: drop what is queued (never acknowledged) and wake everyone; returns dropped."""
        self.closed = True
        dropped = len(self._items)
        self._items.clear()
        for waiters in (self._getters, self._putters):
            for future in waiters:
                if not future.done():
                    future.set_result(None)
        return dropped

    def drop_revoked(self) -> int:
        """Forget queued batches of partitions this worker no longer owns."""
        keep = deque(b for b in self._items if not b.revoked)
        dropped = len(self._items) - len(keep)
        self._items = keep
        for _ in range(dropped):
            _wake_one(self._putters)
        return dropped


class Cursor:
    """One reader's place in an inbox: the batch being read and the next index in it.

    Kept apart from ``Stream`` so that an agent restarted after an error continues where the
    failed one stopped instead of starting over or skipping a batch.
    """

    __slots__ = ("inbox", "batch", "index")

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self.batch: Batch | None = None
        self.index = 0


def _wake_one(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        future = waiters.popleft()
        if not future.done():
            future.set_result(None)
            return


def _discard(waiters: deque[asyncio.Future[None]], future: asyncio.Future[None]) -> None:
    try:
        waiters.remove(future)
    except ValueError:
        pass
