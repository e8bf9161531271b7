"""The broker's side of the transaction coordinator (``streamlog/log/txn_coordinator.py``).

The coordinator is synchronous and writes (and fsyncs) ``__transaction_state``, markers
and offsets, so every call runs in the loop's thread pool, never on the event loop: a
transaction completing holds up no other client. Calls still running when the broker
stops are waited for before the log is closed under them (a thread cannot be
cancelled). A timer calls ``expire`` every ``transaction_abort_interval_ms`` (Kafka's
``transaction.abort.timed.out.transaction.cleanup.interval.ms``) to abort transactions
past their timeout and finish any left in PrepareX.

A broker serving a log another component owns (a ``streamlog worker`` on ``file://``) is
given that component's coordinator instead: one coordinator per data directory, loaded
and expired by its owner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from streamlog.log.txn_coordinator import TransactionCoordinator

__all__ = ["TransactionService"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_STOP_CALLS_TIMEOUT_S = 30.0


class TransactionService:
    """Runs a ``TransactionCoordinator``'s calls off the event loop; see the module
    docstring. ``owned``: this broker loads the coordinator and runs its expiry timer."""

    def __init__(
        self, coordinator: TransactionCoordinator, *, owned: bool, abort_interval_ms: int
    ) -> None:
        self.coordinator = coordinator
        self._owned = owned
        self._interval_s = abort_interval_ms / 1000
        self._calls: set[asyncio.Future[Any]] = set()
        self._timer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if not self._owned:
            return
        count = await self.call(self.coordinator.load)
        log.info("transaction coordinator loaded %d transactional ids", count)
        self._timer = asyncio.get_running_loop().create_task(self._expire_periodically())

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            try:
                await self._timer
            except asyncio.CancelledError:
                pass
            self._timer = None
        if self._calls:
            await asyncio.wait(list(self._calls), timeout=_STOP_CALLS_TIMEOUT_S)

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in the thread pool; a cancelled request leaves it to finish."""
        future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        self._calls.add(future)
        future.add_done_callback(self._calls.discard)
        return await asyncio.shield(future)

    async def _expire_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                report = await self.call(self.coordinator.expire)
            except Exception:
                log.exception("transaction expiry failed; will try again")
                continue
            if report.timed_out:
                log.info("aborted timed-out transactions of %s", ", ".join(report.timed_out))
