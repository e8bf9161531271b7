"""Small helpers shared by the Kafka clients."""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Coroutine
from typing import Any

__all__ = ["now_ms", "millis", "spawn", "log"]

log = logging.getLogger("streamlog.transport.kafka")

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MS = datetime.timedelta(milliseconds=1)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def millis(value: datetime.datetime | int | None) -> int:
    """Epoch milliseconds of a kio timestamp field (a datetime, or None for -1)."""
    if value is None:
        return -1
    if isinstance(value, datetime.datetime):
        return (value - _EPOCH) // _MS
    return int(value)


def spawn(coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
    """A background task whose unexpected failure is logged rather than lost."""
    task = asyncio.ensure_future(coro)
    task.set_name(name)
    task.add_done_callback(_report)
    return task


def _report(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("background task %s failed", task.get_name(), exc_info=error)
