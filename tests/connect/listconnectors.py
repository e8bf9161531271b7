"""Two small connectors over Python lists, to test the runners through a real app and
log: ``ListSource`` reads a list (its position: the index of the next item) and
``ListSink`` writes to a dict that plays the outside system (``durable``: what flushes
made durable, upserted by key; ``down``: the system is away)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamlog.connect import (
    BadRecordError,
    SinkRecord,
    SinkUnavailableError,
    SourceRecord,
)

__all__ = ["ListSource", "ListSink"]


class ListSource:
    """Items of ``items`` as records (``key`` from ``key_of``), ``chunk`` per poll; read
    once (``StopAsyncIteration`` at the end) or followed (``follow``: waits for more)."""

    def __init__(
        self,
        name: str,
        items: list[Any],
        *,
        chunk: int = 10,
        follow: bool = False,
        key_of: Any = None,
    ) -> None:
        self.name = name
        self.items = items
        self.chunk = chunk
        self.follow = follow
        self.key_of = key_of
        self.next = 0
        self.started_at: list[Any] = []  # the positions each start was given
        self.read = 0
        self.acknowledged_at: list[Any] = []

    async def start(self, position: Any) -> None:
        self.started_at.append(position)
        self.next = 0 if position is None else int(position)

    async def poll(self) -> Sequence[SourceRecord]:
        import asyncio

        if self.next >= len(self.items):
            if not self.follow:
                raise StopAsyncIteration
            await asyncio.sleep(0.02)
            return []
        out = []
        for index in range(self.next, min(self.next + self.chunk, len(self.items))):
            item = self.items[index]
            key = None if self.key_of is None else self.key_of(item)
            out.append(SourceRecord(value=item, key=key, position=index + 1))
        self.next += len(out)
        self.read += len(out)
        return out

    async def close(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "source",
            "type": "list",
            "records": self.read,
            "errors": 0,
            "last_error": None,
            "position": self.next,
        }


class ListSink:
    """Upserts by ``value["id"]`` into ``durable`` on flush; a value with ``"bad": True``
    is refused (``BadRecordError`` naming it); ``down`` makes writes and flushes fail as
    an unreachable system's do."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pending: list[SinkRecord] = []
        self.durable: dict[Any, Any] = {}
        self.writes = 0  # every record ever written (re-deliveries counted)
        self.flushes = 0
        self.discards = 0
        self.down = False
        self.started = False
        self.closed = False

    async def start(self) -> None:
        self.started = True

    async def write(self, records: Sequence[SinkRecord]) -> None:
        if self.down:
            raise SinkUnavailableError("the list is away")
        for record in records:
            value = record.value
            if isinstance(value, dict) and value.get("bad"):
                raise BadRecordError(f"bad value {value!r}", record=record)
            self.pending.append(record)
            self.writes += 1

    async def flush(self) -> None:
        if self.down:
            raise SinkUnavailableError("the list is away")
        for record in self.pending:
            self.durable[record.value["id"]] = record.value
        self.pending = []
        self.flushes += 1

    async def discard(self) -> None:
        self.pending = []
        self.discards += 1

    async def close(self) -> None:
        self.closed = True

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "sink",
            "type": "list",
            "records": self.writes,
            "errors": 0,
            "last_error": None,
            "flushed": len(self.durable),
            "pending": len(self.pending),
        }
