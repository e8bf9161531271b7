"""Wake-ups between producers and long-polling consumers of one embedded transport.

A consumer with nothing to read registers one future under every key it cares about
(its partitions, its group) and sleeps on it; a producer's append, or a group change,
resolves the futures registered under that key. Nothing is registered while nobody
waits, so an append with no waiting consumer costs one dict lookup.

Not thread-safe: producers, consumers and the notifier share one event loop. A check
for data followed by ``wait`` with no ``await`` between them cannot miss a wake-up,
since nothing else runs on the loop in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable

__all__ = ["Notifier"]


class Notifier:
    """Futures keyed by what they wait for; see the module docstring."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: dict[Hashable, set[asyncio.Future[None]]] = {}

    def notify(self, key: Hashable) -> None:
        """Wake everyone waiting on ``key``."""
        waiters = self._waiters.pop(key, None)
        if waiters:
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    def notify_all(self) -> None:
        """Wake every waiter (the transport is closing)."""
        for key in list(self._waiters):
            self.notify(key)

    async def wait(self, keys: Iterable[Hashable], timeout: float) -> bool:
        """Sleep until one of ``keys`` is notified or ``timeout`` seconds pass.

        Returns True if woken by a notification, False on timeout.
        """
        if timeout <= 0:
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        registered = list(keys)
        for key in registered:
            self._waiters.setdefault(key, set()).add(future)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            for key in registered:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(future)
                    if not waiters:
                        del self._waiters[key]
