"""What a connector is: the ``Source`` and ``Sink`` protocols and the records they trade.

Kafka Connect's model, in Python and in-process: a *source* reads an outside system and
hands the runner records plus the *position* that follows each one (a file offset, a
cursor, the last id: any JSON value); the runner produces them to a topic and
checkpoints the positions in a compacted topic, so a restart resumes where the last
acknowledged record left off. A *sink* is handed the records of a topic in batches and
makes them durable in its system on ``flush``, which the app's commit sequence calls
before it commits the topic's offsets: a record's offset is committed only once the
outside system has it, so a crash re-delivers, never skips (at-least-once); sinks that
write by key (upserts, deletes on tombstones) make the re-delivery harmless.

Connectors implement these protocols only; ``app.source``/``app.sink`` and
``streamlog connect`` run them (``runner.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from streamlog.transport.types import Header

__all__ = ["SourceRecord", "SinkRecord", "Source", "Sink", "Position"]

Position = Any
"""A source's position: any JSON value (dict, list, str, int, float, bool, None)."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record a source read: ``value`` (and ``key``) as the topic's codecs take them
    (bytes, str, a dict for JSON...), and ``position``, where the source resumes *after*
    this record. ``timestamp_ms`` None: the time it is produced."""

    value: Any
    position: Position
    key: Any = None
    headers: Sequence[Header] = ()
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class SinkRecord:
    """One record of a sink's topic, decoded with the topic's codecs (``key``/``value``
    None: a null key, a tombstone)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: Any
    value: Any
    headers: Sequence[Header] = field(default=())


@runtime_checkable
class Source(Protocol):
    """Reads an outside system. The runner calls ``start`` once with the position saved
    by the last run (None on the first), then ``poll`` again and again, and ``close``."""

    name: str
    """Unique within the app: keys the source's saved position."""

    async def start(self, position: Position | None) -> None: ...

    async def poll(self) -> Sequence[SourceRecord]:
        """The next records, in order, waiting a little (about a second at most) when
        there are none, so that the runner can checkpoint and stop in time. An empty
        sequence is fine. A source read ``once`` that reached its end raises
        ``StopAsyncIteration``."""
        ...

    async def close(self) -> None: ...

    def status(self) -> dict[str, Any]:
        """What the status page and ``/connect/`` show: position, counters, errors."""
        ...

    # Optional, not part of the protocol's check (the runner looks for them):
    #   async def acknowledged(self, position) -> None: told once the records up to
    #       ``position`` are acknowledged by the log (after every non-empty poll);
    #   rereads: bool = True: False for a source that never hands a record over twice
    #       (a webhook), whose records the runner then does not match after a restart.


@runtime_checkable
class Sink(Protocol):
    """Writes a topic's records to an outside system."""

    name: str

    async def start(self) -> None: ...

    async def write(self, records: Sequence[SinkRecord]) -> None:
        """Take records (buffer them, or write them without making them durable yet).
        Raises ``BadRecordError`` for a record that can never be written."""
        ...

    async def flush(self) -> None:
        """Make everything taken so far durable in the outside system. Raises
        ``SinkUnavailableError`` when that system is away (the runner retries)."""
        ...

    async def discard(self) -> None:
        """Forget what was taken and not flushed: the app rewinds to its committed offsets
        and the records come again."""
        ...

    async def close(self) -> None: ...

    def status(self) -> dict[str, Any]: ...
