"""The event an actor is processing, for the few APIs that are relative to it.

Faust's windowed tables (``table[k].current()``, ``+=`` on a windowed key) resolve the
window from the timestamp of the event being processed, and ``current_event()`` returns
it. Each actor is its own asyncio task, so a ``ContextVar`` holds, per actor, the cursor of
the stream its function reads (set once when the stream is made, not per event): the
event in processing is the one that cursor handed out last. Nothing is shared between
tasks, and storage never reads this: tables are handed the timestamp by the windowed
layer.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from streamlog.dsl.runtime.events import Event, event_at

__all__ = [
    "current_event",
    "current_timestamp_ms",
    "current_partition",
    "read_from",
    "clear_current",
    "sending_for",
    "current_sender",
    "SENDER",
]

_CURSOR: ContextVar[Any] = ContextVar("streamlog_current_cursor", default=None)
# The agent whose actor task (or the tasks it started) is running: records sent from it
# are counted as that agent's output (``/metrics``); "" outside any agent.
# (Read directly with ``SENDER.get()`` on the send path: a call less per record.)
SENDER: ContextVar[str] = ContextVar("streamlog_current_sender", default="")


def sending_for(agent_name: str) -> None:
    """Records the calling task (and tasks it starts from now on) sends are
    ``agent_name``'s output."""
    SENDER.set(agent_name)


def current_sender() -> str:
    """The agent the calling task sends for ("" when none)."""
    return SENDER.get()


def read_from(cursor: Any) -> None:
    """The calling actor's function now reads through ``cursor`` (an ``Inbox`` cursor:
    its ``batch`` and the ``index`` after the record handed out last)."""
    _CURSOR.set(cursor)


def clear_current() -> None:
    """The calling task processes no event."""
    _CURSOR.set(None)


def _position() -> tuple[Any, int] | None:
    cursor = _CURSOR.get()
    if cursor is None:
        return None
    batch = cursor.batch
    if batch is None or not cursor.index:
        return None
    return batch, cursor.index - 1


def current_timestamp_ms() -> int | None:
    """The log timestamp (ms) of the event the calling actor is processing, or None."""
    position = _position()
    if position is None:
        return None
    batch, index = position
    return int(batch.records[index].timestamp)


def current_partition() -> int | None:
    """The source partition of the event the calling actor is processing, or None (no
    event, or a channel's): Faust-style tables keep a key in the partition of the event
    that wrote it (``streamlog.dsl.tables.table``)."""
    position = _position()
    if position is None:
        return None
    batch, index = position
    partition: int = getattr(batch.records[index], "partition", -1)
    return partition if partition >= 0 else None


def current_event() -> Event | None:
    """The ``Event`` the calling actor is processing (decoded on demand), or None
    (Faust's ``faust.current_event()``)."""
    position = _position()
    if position is None:
        return None
    batch, index = position
    return event_at(batch, index)
