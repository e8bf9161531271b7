"""Topics and channels: where agents read from and what they send to.

A ``Topic`` is a named log topic plus how its keys and values are (de)serialised and how
it is created (partitions, retention, compaction, configs). A ``Channel`` is the in-memory
counterpart: values pass between agents of one process without encoding, and nothing is
committed (Faust's ``app.channel()``).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import itertools
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from streamlog.dsl.durations import to_ms
from streamlog.dsl.errors import AppNotRunningError, ImproperlyConfigured
from streamlog.dsl.runtime.acks import Batch
from streamlog.dsl.runtime.context import SENDER
from streamlog.dsl.runtime.events import normalize_headers
from streamlog.dsl.runtime.inbox import Inbox
from streamlog.serde import Codec, Schema
from streamlog.transport.errors import UnknownTopicError
from streamlog.transport.types import ConsumerRecord, RecordMetadata

if TYPE_CHECKING:
    from streamlog.dsl.agents.host import AgentHost

__all__ = ["Topic", "Channel", "HeadersArg"]

HeadersArg = Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]] | None


class Topic:
    """A log topic as the app sees it (Faust's ``app.topic``).

    ``partitions`` defaults to the app's ``topic_partitions`` when the topic is created;
    an existing topic keeps its count. ``retention`` (seconds or timedelta), ``compacting``
    and ``deleting`` map to ``retention.ms`` and ``cleanup.policy``; ``config`` adds any
    other topic config verbatim.
    """

    def __init__(
        self,
        app: AgentHost,
        name: str,
        *,
        key_type: Any = None,
        value_type: Any = None,
        key_serializer: str | Codec | None = None,
        value_serializer: str | Codec | None = None,
        partitions: int | None = None,
        retention: float | _dt.timedelta | None = None,
        compacting: bool | None = None,
        deleting: bool | None = None,
        config: Mapping[str, Any] | None = None,
        internal: bool = False,
    ) -> None:
        if not name or not isinstance(name, str):
            raise ImproperlyConfigured(f"a topic needs a name, got {name!r}")
        if partitions is not None and partitions < 1:
            raise ImproperlyConfigured(f"topic {name!r}: partitions must be >= 1, not {partitions}")
        self.app = app
        self._on_produce = app.on_produce_message
        self.name = name
        # records sent by each agent ("" outside agents), shared by every Topic of this name
        self._sent = app.records_sent.setdefault(name, {})
        self.key_type = key_type
        self.value_type = value_type
        self.schema = Schema(
            key_type=key_type,
            value_type=value_type,
            key_serializer=key_serializer,
            value_serializer=value_serializer,
            codecs=app.codecs,
            default_key_serializer=app.conf.key_serializer,
            default_value_serializer=app.conf.value_serializer,
        )
        self.key_serializer = self.schema.key_serializer
        self.value_serializer = self.schema.value_serializer
        self.partitions = partitions
        self.retention = retention
        self.compacting = compacting
        self.deleting = deleting
        self.config = {str(k): str(v) for k, v in (config or {}).items()}
        self.internal = internal

    def __repr__(self) -> str:
        return f"<Topic {self.name}>"

    def __str__(self) -> str:
        return self.name

    @property
    def topics(self) -> tuple[str, ...]:
        """Faust's spelling: the names this channel reads."""
        return (self.name,)

    def topic_configs(self) -> dict[str, str]:
        """The configs to create the topic with."""
        configs = dict(self.config)
        if self.retention is not None:
            configs.setdefault("retention.ms", str(to_ms(self.retention, "retention")))
        if self.compacting and self.deleting:
            configs.setdefault("cleanup.policy", "compact,delete")
        elif self.compacting:
            configs.setdefault("cleanup.policy", "compact")
        elif self.deleting:
            configs.setdefault("cleanup.policy", "delete")
        return configs

    async def send(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        headers: HeadersArg = None,
        timestamp: float | None = None,
    ) -> Awaitable[RecordMetadata]:
        """Queue a record; await the result for its ``RecordMetadata`` (Faust's ``send``).

        ``timestamp`` is in seconds since the epoch (Faust's unit); the default is now.
        """
        producer = self.app.producer
        schema = self.schema
        sent = self._sent
        sender = SENDER.get()
        sent[sender] = sent.get(sender, 0) + 1
        signal = self._on_produce
        if signal.receivers or signal.inherited:  # Faust's on_produce_message
            return await self._send_told(key, value, partition, headers, timestamp)
        raw_value, raw_key = schema.dumps_value(value), schema.dumps_key(key)
        header_list = normalize_headers(headers) if headers else ()
        timestamp_ms = None if timestamp is None else round(timestamp * 1000)
        try:
            return await producer.send(
                self.name,
                raw_value,
                key=raw_key,
                partition=partition,
                headers=header_list,
                timestamp_ms=timestamp_ms,
            )
        except UnknownTopicError:
            # declared while the app runs (Faust programs do): create it, as a Kafka
            # broker that auto-creates topics would, and send again
            await self.maybe_declare()
            return await producer.send(
                self.name,
                raw_value,
                key=raw_key,
                partition=partition,
                headers=header_list,
                timestamp_ms=timestamp_ms,
            )

    async def _send_told(
        self,
        key: Any,
        value: Any,
        partition: int | None,
        headers: HeadersArg,
        timestamp: float | None,
    ) -> Awaitable[RecordMetadata]:
        """``send`` with ``on_produce_message`` told first, as Faust's producer tells it:
        the serialised key and value, and the headers as a list it may extend."""
        schema = self.schema
        raw_key, raw_value = schema.dumps_key(key), schema.dumps_value(value)
        header_list = normalize_headers(headers) if headers else []
        self._on_produce.send(
            key=raw_key,
            value=raw_value,
            partition=partition,
            timestamp=timestamp,
            headers=header_list,
        )
        return await self.app.producer.send(
            self.name,
            raw_value,
            key=raw_key,
            partition=partition,
            headers=normalize_headers(header_list),
            timestamp_ms=None if timestamp is None else round(timestamp * 1000),
        )

    def send_soon(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        headers: HeadersArg = None,
        timestamp: float | None = None,
    ) -> asyncio.Task[Awaitable[RecordMetadata]]:
        """``send`` from code that cannot await (Faust's ``send_soon``): the record is
        queued by a task the app's next commit waits for, so it is acknowledged before
        the offsets of the events that sent it are committed."""
        task = asyncio.ensure_future(
            self.send(
                key=key, value=value, partition=partition, headers=headers, timestamp=timestamp
            )
        )
        self.app.track_soon(task)
        return task

    async def maybe_declare(self) -> None:
        """Create the topic now if it does not exist (Faust's ``maybe_declare``)."""
        await self.app.ensure_topic(
            self.name, self.partitions or self.app.conf.topic_partitions, self.topic_configs()
        )

    async def send_and_wait(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        headers: HeadersArg = None,
        timestamp: float | None = None,
    ) -> RecordMetadata:
        """``send`` and wait for the log's acknowledgement."""
        pending = await self.send(
            key=key, value=value, partition=partition, headers=headers, timestamp=timestamp
        )
        return await pending

    def derive(self, name: str, **overrides: Any) -> Topic:
        """A topic declared like this one under another name (repartition and sink topics)."""
        options: dict[str, Any] = {
            "key_type": self.key_type,
            "value_type": self.value_type,
            "key_serializer": self.key_serializer,
            "value_serializer": self.value_serializer,
            "partitions": self.partitions,
        }
        options.update(overrides)
        return self.app.topic(name, **options)


class _Done:
    """The already-resolved acknowledgement a channel send returns."""

    def __init__(self, metadata: RecordMetadata) -> None:
        self._metadata = metadata

    def __await__(self) -> Any:
        return self._metadata
        yield  # pragma: no cover - makes this a generator


class Channel:
    """An in-memory channel: values go straight to the agents reading it, in order.

    Nothing is encoded and nothing is committed; each reader gets every value. ``maxsize``
    bounds how many sends may wait unread per reader before ``send`` waits.
    """

    def __init__(
        self,
        app: AgentHost,
        *,
        name: str | None = None,
        key_type: Any = None,
        value_type: Any = None,
        maxsize: int | None = None,
    ) -> None:
        self.app = app
        self.name = name or f"channel-{id(self):x}"
        self.key_type = key_type
        self.value_type = value_type
        self.maxsize = maxsize or app.conf.stream_buffer_maxsize
        self._readers: list[Inbox] = []
        self._offsets = itertools.count()

    def __repr__(self) -> str:
        return f"<Channel {self.name}>"

    @property
    def topics(self) -> tuple[str, ...]:
        """A channel has no log topics (for code that asks every channel)."""
        return ()

    def attach(self, inbox: Inbox) -> None:
        """Deliver every later send to ``inbox`` too."""
        inbox.maxsize = self.maxsize
        self._readers.append(inbox)

    async def send(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        headers: HeadersArg = None,
        timestamp: float | None = None,
    ) -> Awaitable[RecordMetadata]:
        """Queue ``value`` for the channel's readers (no encoding); returns an already-resolved
        acknowledgement, as a topic's ``send`` returns an awaitable."""
        if self.app.clock is None:
            raise AppNotRunningError("channels carry values only while the app runs")
        offset = next(self._offsets)
        timestamp_ms = (
            round(timestamp * 1000) if timestamp is not None else self.app.clock.time_ms()
        )
        record = ConsumerRecord(
            self.name,
            -1,
            offset,
            timestamp_ms,
            key,
            value,
            normalize_headers(headers) if headers else (),
        )
        for inbox in self._readers:
            await inbox.put(Batch((record,), None, _identity, _identity, self))
        return _Done(RecordMetadata(self.name, -1, offset, timestamp_ms))

    async def send_and_wait(self, **kwargs: Any) -> RecordMetadata:
        """``send`` (a channel's acknowledgement is immediate)."""
        pending = await self.send(**kwargs)
        return await pending


def _identity(value: Any) -> Any:
    return value
