"""The event an actor is processing, for the few APIs that are relative to it.

Faust's windowed tables (``table[k].current()``, ``+=`` on a windowed key) resolve the
window from the timestamp of the event being processed. Streams record that event in a
``ContextVar`` when the app asks for it (``App.track_current_event``); every agent actor is
its own asyncio task, so each sees its own event and nothing is shared between tasks.
Storage never reads this: tables are handed the timestamp by the windowed-table layer.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from streamlog.dsl.runtime.events import Event, event_at

__all__ = [
    "current_event",
    "current_timestamp_ms",
    "current_partition",
    "set_current",
    "clear_current",
]

_CURRENT: ContextVar[tuple[Any, int] | None] = ContextVar("streamlog_current_event", default=None)


def set_current(batch: Any, index: int) -> None:
    """The calling actor now processes record ``index`` of ``batch``."""
    _CURRENT.set((batch, index))


def clear_current() -> None:
    """The calling actor processes no event."""
    _CURRENT.set(None)


def current_timestamp_ms() -> int | None:
    """The log timestamp (ms) of the event the calling actor is processing, or None."""
    position = _CURRENT.get()
    if position is None:
        return None
    batch, index = position
    return int(batch.records[index].timestamp)


def current_partition() -> int | None:
    """The source partition of the event the calling actor is processing, or None (no
    event, or a channel's): Faust-style tables keep a key in the partition of the event
    that wrote it (``streamlog.dsl.tables.table``)."""
    position = _CURRENT.get()
    if position is None:
        return None
    batch, index = position
    partition: int = getattr(batch.records[index], "partition", -1)
    return partition if partition >= 0 else None


def current_event() -> Event | None:
    """The ``Event`` the calling actor is processing (decoded on demand), or None."""
    position = _CURRENT.get()
    if position is None:
        return None
    batch, index = position
    return event_at(batch, index)
