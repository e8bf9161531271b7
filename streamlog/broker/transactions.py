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
and expired by its owner (two over one ``__transaction_state`` would each time out and
abort the other's transactions). Without one, such a broker has no transaction
coordinator (FindCoordinator for a transactional id: COORDINATOR_NOT_AVAILABLE).

Markers move last stable offsets, so the partitions a call ended are handed to the
broker's waiters (``notify``): a read_committed fetch waiting on one answers at once
instead of at its max wait. After an expiry pass that aborted or completed anything,
every waiter is woken (which partitions it ended is the coordinator's).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from streamlog.broker.waiters import Waiters
from streamlog.log.txn_coordinator import TransactionCoordinator

__all__ = ["TransactionService"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_STOP_CALLS_TIMEOUT_S = 30.0


class TransactionService:
    """Runs a ``TransactionCoordinator``'s calls off the event loop; see the module
    docstring. ``owned``: this broker loads the coordinator and runs its expiry timer."""

    def __init__(
        self,
        coordinator: TransactionCoordinator,
        waiters: Waiters,
        *,
        owned: bool,
        abort_interval_ms: int,
    ) -> None:
        self.coordinator = coordinator
        self._waiters = waiters
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

    def open_partitions(self, transactional_id: str) -> tuple[tuple[str, int], ...]:
        """The partitions of the id's transaction, if one is open (to ``notify`` once a
        call has ended it)."""
        described = self.coordinator.describe([transactional_id]).get(transactional_id)
        return described.partitions if described is not None else ()

    def notify(self, partitions: tuple[tuple[str, int], ...]) -> None:
        for topic, partition in partitions:
            self._waiters.notify(topic, partition)

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
            if report.timed_out or report.completed:
                self._waiters.notify_all()
