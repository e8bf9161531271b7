"""Agents: ``@app.agent`` functions run as actors over a stream, with sinks and replies.

An ``Agent`` owns one ``Inbox`` for its channel, shared by ``concurrency`` actors
(``actor.ActorContext``: each runs the user's function over its own ``Stream``, and
applies the agent's ``on_error`` policy when it raises).

Values an agent ``yield``s go to its sinks (topics, channels, other agents or callables)
and, when the event carried a reply-to header (``agent.ask``), back to the asker.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from streamlog.dsl.agents.actor import ActorContext
from streamlog.dsl.agents.stream import Stream
from streamlog.dsl.agents.topics import Channel, HeadersArg, Topic
from streamlog.dsl.errors import ImproperlyConfigured
from streamlog.dsl.runtime.acks import Batch
from streamlog.dsl.runtime.events import header_value
from streamlog.dsl.runtime.inbox import Inbox
from streamlog.dsl.runtime.meters import AgentMeter
from streamlog.transport.types import RecordMetadata

if TYPE_CHECKING:
    from streamlog.dsl.agents.host import AgentHost

__all__ = ["Agent", "AgentFun", "ON_ERROR_POLICIES", "REPLY_TO", "CORRELATION_ID"]

log = logging.getLogger(__name__)

ON_ERROR_POLICIES = ("restart", "dlq", "crash")
REPLY_TO = "streamlog-reply-to"
CORRELATION_ID = "streamlog-correlation-id"
AgentFun = Callable[[Stream], Any]


class Agent:
    """An ``@app.agent`` (see the module docstring). Calls like ``send``/``ask`` are Faust's."""

    def __init__(
        self,
        fun: AgentFun,
        *,
        app: AgentHost,
        channel: Topic | Channel,
        name: str,
        concurrency: int = 1,
        sink: tuple[Any, ...] = (),
        on_error: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ImproperlyConfigured(f"agent {name}: concurrency must be >= 1")
        policy = on_error or app.conf.agent_on_error
        if policy not in ON_ERROR_POLICIES:
            raise ImproperlyConfigured(
                f"agent {name}: on_error must be one of {', '.join(ON_ERROR_POLICIES)}, "
                f"not {policy!r}"
            )
        self.fun = fun
        self.app = app
        self.channel = channel
        self.name = name
        self.short_name = getattr(fun, "__name__", name)
        self.concurrency = concurrency
        self.on_error = policy
        self._sinks: list[Any] = list(sink)
        self.inbox = Inbox(name, app.conf.stream_inbox_batches)
        self._actors: list[ActorContext] = []
        self._derived: dict[str, tuple[Topic | Channel, Inbox]] = {}
        self.processed_errors = 0
        self.dead_lettered = 0
        self.meter = AgentMeter()  # events taken per topic, batch latencies (/metrics)
        self.__doc__ = fun.__doc__
        self.__name__ = self.short_name
        self.__wrapped__ = fun

    def __repr__(self) -> str:
        return f"<Agent {self.name} on {self.channel!r} x{self.concurrency}>"

    @property
    def sinks(self) -> tuple[Any, ...]:
        """Where the agent's yields go, in the order they were added."""
        return tuple(self._sinks)

    def add_sink(self, sink: Any) -> None:
        """Also send the agent's yields to ``sink`` (a topic, channel, agent or callable)."""
        self._sinks.append(sink)

    @property
    def dlq_topic_name(self) -> str:
        """The dead-letter topic of ``on_error="dlq"``: ``<app-id>-<agent>-dlq``."""
        return f"{self.app.conf.id}-{self.short_name}-dlq"

    # ------------------------------------------------------------------ lifecycle

    def declare(self) -> None:
        """Register this agent's inbox with its channel (before the consumer subscribes)."""
        if isinstance(self.channel, Channel):
            self.channel.attach(self.inbox)
        else:
            self.app.attach(self.channel, self.inbox)
        if self.on_error == "dlq":
            self.app.topic(self.dlq_topic_name, key_serializer="raw", value_serializer="raw")

    async def start(self) -> None:
        """Start ``concurrency`` actors; returns once each has reached its first read (so topics
        that ``group_by``/``through`` declare exist before the consumer subscribes)."""
        for index in range(self.concurrency):
            actor = ActorContext(self, index)
            self._actors.append(actor)
            actor.task = asyncio.create_task(actor.run(), name=f"agent:{self.name}#{index}")
        # Let each actor reach its first ``async for`` so group_by/through topics exist
        # before the consumer subscribes.
        for _ in range(3):
            await asyncio.sleep(0)

    def close_inboxes(self) -> None:
        """Stop feeding: actors end after the event in hand (queued ones are re-read later)."""
        self.inbox.close()
        for _, inbox in self._derived.values():
            inbox.close()

    async def stop(self, timeout: float) -> bool:
        """Close the inboxes and wait for actors to finish the events in hand; True if they did."""
        self.close_inboxes()
        tasks = [t for a in self._actors for t in a.tasks()]
        if not tasks:
            return True
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
            log.warning(
                "agent %s: %d task(s) cancelled after %.1f s", self.name, len(pending), timeout
            )
        return not pending

    def drop_revoked(self) -> int:
        """Drop queued batches of revoked partitions from this agent's inboxes; how many."""
        dropped = self.inbox.drop_revoked()
        for _, inbox in self._derived.values():
            dropped += inbox.drop_revoked()
        return dropped

    # ------------------------------------------------------------------ sending

    async def send(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        headers: HeadersArg = None,
        timestamp: float | None = None,
    ) -> Awaitable[RecordMetadata]:
        """Send a value to this agent's channel (its topic: partitioned by ``key``)."""
        return await self.channel.send(
            key=key, value=value, partition=partition, headers=headers, timestamp=timestamp
        )

    async def cast(
        self,
        value: Any = None,
        *,
        key: Any = None,
        partition: int | None = None,
        headers: HeadersArg = None,
        timestamp: float | None = None,
    ) -> None:
        """Send and do not wait for a reply (Faust's ``cast``)."""
        await self.send(
            key=key, value=value, partition=partition, headers=headers, timestamp=timestamp
        )

    async def ask(
        self,
        value: Any = None,
        *,
        key: Any = None,
        partition: int | None = None,
        headers: HeadersArg = None,
        timeout: float = 30.0,
        reply_type: Any = None,
    ) -> Any:
        """Send ``value`` and wait for what the agent yields for it (request/reply).

        The request carries ``streamlog-reply-to`` and ``streamlog-correlation-id`` headers;
        the agent's yield for that event is sent to the app's reply topic and decoded here
        (as JSON, into ``reply_type`` when given).
        """
        replies = await self.app.replies()
        correlation_id = uuid.uuid4().hex
        waiter = replies.expect(correlation_id)
        pairs: list[tuple[str, str | bytes | None]] = list(
            headers.items() if isinstance(headers, Mapping) else (headers or ())
        )
        pairs += [(REPLY_TO, replies.topic_name), (CORRELATION_ID, correlation_id)]
        try:
            await self.send(key=key, value=value, partition=partition, headers=pairs)
            return await replies.wait(waiter, correlation_id, timeout, reply_type)
        finally:
            replies.forget(correlation_id)

    async def kvjoin(
        self, items: Iterable[tuple[Any, Any]] | AsyncIterable[tuple[Any, Any]]
    ) -> list[Any]:
        """Ask about every ``(key, value)`` at once; the replies in the items' order
        (Faust's ``kvjoin``: returns when every one has answered)."""
        pairs = [pair async for pair in _aiter(items)]
        return list(await asyncio.gather(*(self.ask(value, key=key) for key, value in pairs)))

    async def join(self, values: Iterable[Any] | AsyncIterable[Any], key: Any = None) -> list[Any]:
        """``kvjoin`` of ``values`` all under ``key`` (Faust's ``join``)."""
        return await self.kvjoin([(key, value) async for value in _aiter(values)])

    async def kvmap(
        self, items: Iterable[tuple[Any, Any]] | AsyncIterable[tuple[Any, Any]]
    ) -> AsyncIterator[Any]:
        """Ask about every ``(key, value)`` at once; yield the replies as they arrive
        (Faust's ``kvmap``; ``kvjoin`` keeps the order)."""
        pending = [
            asyncio.ensure_future(self.ask(value, key=key)) async for key, value in _aiter(items)
        ]
        try:
            for done in asyncio.as_completed(pending):
                yield await done
        finally:
            for task in pending:
                task.cancel()

    async def map(
        self, values: Iterable[Any] | AsyncIterable[Any], key: Any = None
    ) -> AsyncIterator[Any]:
        """``kvmap`` of ``values`` all under ``key`` (Faust's ``map``)."""
        async for reply in self.kvmap([(key, value) async for value in _aiter(values)]):
            yield reply

    def reading(self) -> Topic | Channel:
        """What the agent's function ends up iterating: its channel, or the last topic it
        re-keyed or forwarded through (``group_by``/``through``)."""
        if self._derived:
            return list(self._derived.values())[-1][0]
        return self.channel

    # ------------------------------------------------------------------ used by actors

    def derived(self, target: Topic | Channel) -> Inbox:
        """The inbox this agent reads ``target`` through (shared by its actors)."""
        key = target.name
        if key not in self._derived:
            inbox = Inbox(f"{self.name}<-{key}", self.app.conf.stream_inbox_batches)
            if isinstance(target, Channel):
                target.attach(inbox)
            else:
                self.app.attach(target, inbox)
            self._derived[key] = (target, inbox)
        return self._derived[key][1]

    async def deliver(self, value: Any, stream: Stream) -> None:
        """Hand a yielded value to the sinks, and to the asker if the event wants a reply."""
        for sink in self._sinks:
            if isinstance(sink, Agent | Topic | Channel):
                await sink.send(value=value)
            else:
                result = sink(value)
                if inspect.isawaitable(result):
                    await result
        cursor = stream._cursor
        batch = cursor.batch
        if batch is not None and cursor.index:
            headers = batch.records[cursor.index - 1].headers
            if headers:
                reply_to = header_value(headers, REPLY_TO)
                correlation = header_value(headers, CORRELATION_ID)
                if reply_to and correlation:
                    await self.app.send_reply(reply_to.decode(), correlation, value)

    async def dead_letter(self, batch: Batch, index: int, exc: BaseException) -> None:
        """Send the failing record, as stored, to the DLQ with the error in its headers."""
        record = batch.records[index]
        headers = list(record.headers or ())
        headers += [
            ("streamlog-error", _short(repr(exc)).encode()),
            ("streamlog-error-type", type(exc).__qualname__.encode()),
            (
                "streamlog-error-traceback",
                _short("".join(traceback.format_exception(exc)), 4000).encode(),
            ),
            ("streamlog-source-topic", str(record.topic).encode()),
            ("streamlog-source-partition", str(record.partition).encode()),
            ("streamlog-source-offset", str(record.offset).encode()),
            ("streamlog-agent", self.name.encode()),
        ]
        key, value = record.key, record.value
        if not isinstance(value, bytes | None) or not isinstance(key, bytes | None):
            key = None if key is None else repr(key).encode()  # channel values: a readable copy
            value = repr(value).encode()
        pending = await self.app.producer.send(
            self.dlq_topic_name, value, key=key, headers=headers, timestamp_ms=record.timestamp
        )
        await pending
        self.dead_lettered += 1


async def _aiter(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    """Plain and async iterables alike, as Faust's ``map``/``join`` take both."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def _short(text: str, limit: int = 1000) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
