"""Waiting in tests on a condition or an event, never on a guess of how long it takes.

``until`` / ``until_sync`` poll a condition within a deadline and fail with what was
awaited; ``started`` runs a coroutine in a task and returns once the task has run up to
its first wait, so a test can act on something *while* it is waiting (a long poll, a
blocked join) without sleeping first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["started", "until", "until_sync"]

T = TypeVar("T")


async def until(
    condition: Callable[[], bool], what: str, timeout: float = 10.0, interval: float = 0.005
) -> None:
    """Return once ``condition()`` is true; ``AssertionError`` naming ``what`` after
    ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {what}")
        await asyncio.sleep(interval)


def until_sync(
    condition: Callable[[], bool], what: str, timeout: float = 10.0, interval: float = 0.02
) -> None:
    """``until`` for code outside an event loop (subprocesses, sockets)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {what}")
        time.sleep(interval)


async def started(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task running ``coro``, returned once the task has run up to its first wait.

    The task sets an event and goes straight on into ``coro``; the caller, woken by the
    event, runs only after the task's step has ended, that is once ``coro`` suspends
    (or has finished: then the task is done).
    """
    begun = asyncio.Event()

    async def run() -> T:
        begun.set()
        return await coro

    task = asyncio.ensure_future(run())
    await begun.wait()
    return task
