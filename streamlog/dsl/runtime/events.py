"""What an agent sees of one record: the decoded key and value plus where it came from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from streamlog.transport.types import ConsumerRecord, Header

__all__ = ["Message", "Event", "event_at", "normalize_headers", "header_value"]


class Message(NamedTuple):
    """The record as stored in the log (Faust's ``event.message``).

    ``timestamp`` is in seconds (a float, as Faust has it); ``timestamp_ms`` is the log's
    exact integer milliseconds. ``key`` and ``value`` are the undecoded bytes. Channel
    messages have partition and offset -1.
    """

    topic: str
    partition: int
    offset: int
    timestamp: float
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[Header]

    @classmethod
    def from_record(cls, record: ConsumerRecord) -> Message:
        """The message of a consumed record (timestamp also in seconds, as Faust has it)."""
        return cls(
            record.topic,
            record.partition,
            record.offset,
            record.timestamp / 1000.0,
            record.timestamp,
            record.key,
            record.value,
            record.headers,
        )


_SAME: Any = object()  # "as the event has it", for ``forward``


class Event:
    """A decoded record and its message: what ``stream.events()`` yields.

    Made only when someone asks for it (``events()``, ``current_event``): the plain
    ``async for value in stream`` path never builds one.
    """

    __slots__ = ("key", "value", "headers", "message", "source")

    def __init__(
        self,
        key: Any,
        value: Any,
        headers: Mapping[str, bytes | None],
        message: Message,
        source: Any = None,
    ):
        self.key = key
        self.value = value
        self.headers = headers
        self.message = message
        self.source = source  # the Topic or Channel it was read from

    async def forward(
        self,
        channel: Any,
        key: Any = _SAME,
        value: Any = _SAME,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Any = _SAME,
    ) -> Any:
        """Send this event on to ``channel`` (a topic, its name, a channel or an agent),
        with its key, value and headers unless others are given (Faust's ``forward``);
        returns the send's acknowledgement."""
        if isinstance(channel, str):
            if self.source is None or not hasattr(self.source, "app"):
                raise ValueError("forward by topic name needs an event read from a topic")
            channel = self.source.app.topic(channel)
        return await channel.send(
            key=self.key if key is _SAME else key,
            value=self.value if value is _SAME else value,
            partition=partition,
            timestamp=timestamp,
            headers=dict(self.headers) if headers is _SAME else headers,
        )

    def __repr__(self) -> str:
        m = self.message
        return f"<Event {m.topic}[{m.partition}]@{m.offset} key={self.key!r} value={self.value!r}>"


def normalize_headers(
    headers: Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]] | None,
) -> list[Header]:
    """Faust accepts headers as a dict or as pairs, values as str or bytes: Kafka wants bytes."""
    if not headers:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: list[Header] = []
    for name, value in pairs:
        if not isinstance(name, str):
            raise TypeError(f"header names are str, got {type(name).__name__} {name!r}")
        if isinstance(value, str):
            value = value.encode()
        elif value is not None and not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"header {name!r}: values are str or bytes, got {type(value).__name__}")
        out.append((name, bytes(value) if value is not None else None))
    return out


def header_value(headers: Sequence[Header], name: str) -> bytes | None:
    """The last value of header ``name`` (Kafka allows repeats; the last one wins)."""
    found = None
    for key, value in headers:
        if key == name:
            found = value
    return found


_DECODE = object()


def event_at(batch: Any, index: int, value: Any = _DECODE) -> Event:
    """The ``Event`` of record ``index`` of a fetched ``Batch`` (its value decoded unless
    given: the stream has it already)."""
    record = batch.records[index]
    if value is _DECODE:
        value = batch.loads_value(record.value)
    headers = dict(record.headers) if record.headers else {}
    return Event(
        batch.loads_key(record.key), value, headers, Message.from_record(record), batch.source
    )
