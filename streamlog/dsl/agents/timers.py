"""Timers, crontabs and one-off tasks: the app's background functions.

Each runs as one asyncio task that sleeps on the app's clock (a fake clock in tests), so
``@app.timer(1.0)`` fires exactly ten times when a test advances the clock by ten
seconds. An exception in a timer is logged with its traceback and the timer keeps its
schedule: one bad tick must not stop the worker or the timer. ``on_leader=True`` runs the
function only on the worker that currently leads the group (see ``App.is_leader``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamlog.dsl.runtime.clock import running_clock

if TYPE_CHECKING:
    from streamlog.dsl.agents.crontab import Crontab
    from streamlog.dsl.agents.host import TimerHost

__all__ = ["Timer", "CronJob", "AppTask", "call_with_app"]

log = logging.getLogger(__name__)


async def call_with_app(fun: Callable[..., Any], app: TimerHost) -> Any:
    """Call ``fun()`` or ``fun(app)`` (Faust allows both) and await what it returns."""
    try:
        wants_app = len(inspect.signature(fun).parameters) >= 1
    except (TypeError, ValueError):
        wants_app = False
    result = fun(app) if wants_app else fun()
    if inspect.isawaitable(result):
        result = await result
    return result


@dataclass
class Timer:
    """``@app.timer(interval)``: call ``fun`` every ``interval`` seconds."""

    fun: Callable[..., Any]
    interval: float
    on_leader: bool = False
    name: str = ""
    runs: int = field(default=0, init=False)
    errors: int = field(default=0, init=False)

    async def run(self, app: TimerHost) -> None:
        """Call the function every ``interval`` seconds of the app clock, on time even when a call
        ran long (missed ticks are skipped, not stacked)."""
        clock = running_clock(app.clock)
        next_at = clock.monotonic() + self.interval
        while True:
            await clock.sleep(next_at - clock.monotonic())
            next_at += self.interval
            now = clock.monotonic()
            if next_at <= now:  # fell behind (a slow tick): skip missed ticks, keep the phase
                missed = int((now - next_at) // self.interval) + 1
                next_at += missed * self.interval
            await _tick(self, app)


@dataclass
class CronJob:
    """``@app.crontab("*/5 * * * *")``: call ``fun`` at each time the expression matches."""

    fun: Callable[..., Any]
    crontab: Crontab
    on_leader: bool = False
    name: str = ""
    runs: int = field(default=0, init=False)
    errors: int = field(default=0, init=False)

    async def run(self, app: TimerHost) -> None:
        """Call the function at each time the crontab matches, in its time zone."""
        clock = running_clock(app.clock)
        while True:
            await clock.sleep(self.crontab.seconds_until_next(clock.time()))
            await _tick(self, app)


@dataclass
class AppTask:
    """``@app.task``: call ``fun`` once when the app has started."""

    fun: Callable[..., Any]
    on_leader: bool = False
    name: str = ""
    runs: int = field(default=0, init=False)
    errors: int = field(default=0, init=False)

    async def run(self, app: TimerHost) -> None:
        """Call the function once (on the leader only if ``on_leader``)."""
        if self.on_leader:
            await app.wait_for_leadership()
        await _tick(self, app, check_leader=False)


async def _tick(job: Timer | CronJob | AppTask, app: TimerHost, check_leader: bool = True) -> None:
    if check_leader and job.on_leader and not app.is_leader():
        return
    try:
        await call_with_app(job.fun, app)
        job.runs += 1
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        job.errors += 1
        log.error("%s failed: %s: %s", job.name, type(exc).__name__, exc, exc_info=exc)
