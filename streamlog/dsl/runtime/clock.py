"""Time for agents, timers and windows: read and slept on through one object.

Timers, crontabs, ``take(within=)`` and window closing all wait for time to pass. They ask an
``AsyncClock`` rather than ``asyncio.sleep`` and ``time.time`` so that a test can move time by
hand (``ManualAsyncClock.advance``) and see exactly which timers fired, without sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

from streamlog.dsl.errors import AppNotRunningError

__all__ = ["AsyncClock", "SystemAsyncClock", "ManualAsyncClock", "running_clock"]


class AsyncClock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch."""
        ...

    def time_ms(self) -> int:
        """Wall-clock milliseconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds from a clock that never goes back."""
        ...

    def monotonic_ms(self) -> int:
        """``monotonic`` in milliseconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock."""
        ...


def running_clock(clock: AsyncClock | None) -> AsyncClock:
    """The app's clock, which exists once the app is started (``AppNotRunningError``
    before: timers, commits and followers run only in a started app)."""
    if clock is None:
        raise AppNotRunningError("the app is not started: it has no clock yet")
    return clock


class SystemAsyncClock:
    """The real clock; sleeping is ``asyncio.sleep``."""

    def time(self) -> float:
        """``time.time()``."""
        return time.time()

    def time_ms(self) -> int:
        """``time.time_ns()`` in whole milliseconds."""
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def monotonic_ms(self) -> int:
        """``time.monotonic_ns()`` in whole milliseconds."""
        return time.monotonic_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep`` (negative means no wait)."""
        await asyncio.sleep(max(0.0, seconds))


class ManualAsyncClock:
    """A clock that moves only when ``advance`` is called; sleepers wake in time order.

    ``advance`` is async: after each wake-up it lets the woken tasks run (a few loop turns)
    before moving on, so a timer that fires every second fires exactly ten times in
    ``await clock.advance(10)``.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        """The clock's time: moved only by ``advance``."""
        return self._now

    def time_ms(self) -> int:
        """``time`` in whole milliseconds."""
        return int(self._now * 1000)

    def monotonic(self) -> float:
        """The same as ``time`` (a manual clock never goes back)."""
        return self._now

    def monotonic_ms(self) -> int:
        """``monotonic`` in whole milliseconds."""
        return int(self._now * 1000)

    async def sleep(self, seconds: float) -> None:
        """Return once ``advance`` has moved the clock past now + ``seconds``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), next(self._seq), future))
        await future

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting on this clock (tests use it to know a timer is armed)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float, settle_turns: int = 5) -> None:
        """Move the clock by ``seconds``, waking sleepers in time order and letting each woken task
        run (``settle_turns`` loop turns) before moving on."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        target = self._now + seconds
        await _settle(settle_turns)
        while self._sleepers and self._sleepers[0][0] <= target:
            when, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, when)
            if not future.done():
                future.set_result(None)
            await _settle(settle_turns)
        self._now = target
        await _settle(settle_turns)


async def _settle(turns: int) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)
