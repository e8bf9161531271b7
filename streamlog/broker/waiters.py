"""Long-poll support for Fetch: wake waiting fetches when a partition gets new data.

A fetch that found fewer than ``min_bytes`` waits on the partitions it asked for until
one of them is appended to, or ``max_wait_ms`` passes. Everything runs on the broker's
event loop, so plain futures suffice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

__all__ = ["PartitionWaiters", "Waiters"]


class Waiters(Protocol):
    """What produce, fetch and the admin handlers need: ``PartitionWaiters``, or, when the
    broker serves a log a worker owns, wake-ups shared with the worker's own consumers and
    producers (``streamlog.cli.shared_wakeups``), so an append on either side wakes
    fetches waiting on the other."""

    def notify(self, topic: str, partition: int) -> None: ...

    def notify_all(self) -> None: ...

    async def wait_any(self, keys: Iterable[tuple[str, int]], timeout_s: float) -> bool: ...


class PartitionWaiters:
    def __init__(self) -> None:
        self._waiting: dict[tuple[str, int], set[asyncio.Future[None]]] = {}

    def notify(self, topic: str, partition: int) -> None:
        futures = self._waiting.pop((topic, partition), None)
        if futures:
            for future in futures:
                if not future.done():
                    future.set_result(None)

    def notify_all(self) -> None:
        for key in list(self._waiting):
            self.notify(*key)

    async def wait_any(self, keys: Iterable[tuple[str, int]], timeout_s: float) -> bool:
        """Wait until one of ``keys`` is notified (True) or the timeout passes (False)."""
        if timeout_s <= 0:
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        registered = []
        for key in keys:
            self._waiting.setdefault(key, set()).add(future)
            registered.append(key)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            for key in registered:
                futures = self._waiting.get(key)
                if futures is not None:
                    futures.discard(future)
                    if not futures:
                        del self._waiting[key]
