"""Agents: ``@app.agent`` functions run as actors over a stream, with sinks and replies.

An ``Agent`` owns one ``Inbox`` for its channel, shared by ``concurrency`` actors; each
actor runs the user's function over its own ``Stream`` (its own cursor, so batches are
split between actors and each batch stays in order). When the function raises (or a
record cannot be decoded), the actor logs the event's topic/partition/offset and, by the
agent's ``on_error`` policy, stops the worker with the event unacknowledged, so it is
neither committed nor lost (``"crash"``, the default), restarts with the failing event
skipped (``"restart"``, Faust's behaviour), or sends the event to
``<app-id>-<agent>-dlq`` and then restarts (``"dlq"``). A restarted actor continues from
the same cursor.

Values an agent ``yield``s go to its sinks (topics, channels, other agents or callables)
and, when the event carried a reply-to header (``agent.ask``), back to the asker.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from streamlog.dsl.agents.stream import Stream
from streamlog.dsl.agents.topics import Channel, HeadersArg, Topic
from streamlog.dsl.errors import AgentError, ImproperlyConfigured
from streamlog.dsl.runtime.acks import Batch
from streamlog.dsl.runtime.events import header_value
from streamlog.dsl.runtime.inbox import Cursor, Inbox
from streamlog.transport.types import RecordMetadata

if TYPE_CHECKING:
    from streamlog.dsl.agents.host import AgentHost
    from streamlog.dsl.runtime.clock import AsyncClock

__all__ = ["Agent", "ActorContext", "ON_ERROR_POLICIES", "REPLY_TO", "CORRELATION_ID"]

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
        self.__doc__ = fun.__doc__
        self.__name__ = self.short_name
        self.__wrapped__ = fun

    def __repr__(self) -> str:
        return f"<Agent {self.name} on {self.channel!r} x{self.concurrency}>"

    @property
    def sinks(self) -> tuple[Any, ...]:
        return tuple(self._sinks)

    def add_sink(self, sink: Any) -> None:
        self._sinks.append(sink)

    @property
    def dlq_topic_name(self) -> str:
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


class ActorContext:
    """One actor of an agent: runs the user's function and owns its streams' side tasks."""

    def __init__(self, agent: Agent, index: int) -> None:
        self.agent = agent
        self.index = index
        self.clock: AsyncClock = agent.app.clock  # type: ignore[assignment]
        self.barrier = agent.app.barrier
        self.cursor = Cursor(agent.inbox)
        self.task: asyncio.Task[None] | None = None
        self._cursors: dict[str, Cursor] = {}
        self._forwarders: dict[str, asyncio.Task[None]] = {}
        self.stream: Stream | None = None

    def tasks(self) -> list[asyncio.Task[None]]:
        tasks = [t for t in self._forwarders.values() if not t.done()]
        if self.task is not None and not self.task.done():
            tasks.append(self.task)
        return tasks

    async def run(self) -> None:
        agent = self.agent
        while True:
            stream = Stream(self.cursor, self, source=agent.channel)
            self.stream = stream
            try:
                result = agent.fun(stream)
                if inspect.isasyncgen(result):
                    async for value in result:
                        await agent.deliver(value, self.stream or stream)
                elif inspect.isawaitable(result):
                    await result
                else:
                    raise ImproperlyConfigured(
                        f"agent {agent.name} must be an async function or async generator"
                    )
                log.info("agent %s#%d: function returned", agent.name, self.index)
                stream.release()
                return
            except asyncio.CancelledError:
                raise
            except ImproperlyConfigured as exc:
                agent.app.crash(exc)
                return
            except Exception as exc:
                agent.processed_errors += 1
                stream.release()
                if self.stream is not None:
                    self.stream.release()
                if not await self._handle_error(exc):
                    return

    async def _handle_error(self, exc: Exception) -> bool:
        """Log, dead-letter if asked; True to restart the actor."""
        agent = self.agent
        where = self._failing_position()
        if where is not None:
            batch, index = where
            record = batch.records[index]
            coords = f"{record.topic}[{record.partition}]@{record.offset}"
        else:
            batch, index, coords = None, -1, "(no event)"
        log.error(
            "agent %s#%d failed on %s: %s: %s (policy: %s)",
            agent.name,
            self.index,
            coords,
            type(exc).__name__,
            exc,
            agent.on_error,
            exc_info=exc,
        )
        if agent.on_error == "crash":
            agent.app.crash(
                AgentError(
                    f"agent {agent.name} failed on {coords}: {exc!r}; the event is left "
                    "uncommitted (on_error='crash'; 'restart' skips failing events, 'dlq' "
                    "dead-letters them)"
                )
            )
            return False
        if agent.on_error == "dlq" and batch is not None:
            try:
                await agent.dead_letter(batch, index, exc)
            except Exception as dlq_exc:  # noqa: BLE001 - the worker must not die silently
                log.error("agent %s: could not dead-letter %s: %r", agent.name, coords, dlq_exc)
                agent.app.crash(AgentError(f"dead-letter write failed for {coords}: {dlq_exc!r}"))
                return False
        return not agent.app.stopping

    def _failing_position(self) -> tuple[Batch, int] | None:
        stream = self.stream
        cursor = stream._cursor if stream is not None else self.cursor
        if cursor.batch is not None and cursor.index > 0:
            return cursor.batch, cursor.index - 1
        return None

    # ------------------------------------------------------------------ StreamOwner

    async def on_decode_error(self, batch: Batch, index: int, exc: Exception) -> None:
        """A record that does not decode: dead-letter or skip it (acknowledged), or, under
        ``"crash"``, raise out of the stream (the actor stops the worker; the record stays
        unacknowledged, as reading past it would acknowledge it)."""
        agent = self.agent
        if agent.on_error == "crash":
            raise exc
        record = batch.records[index]
        log.error(
            "agent %s: cannot decode %s[%d]@%d: %s (policy: %s)",
            agent.name,
            record.topic,
            record.partition,
            record.offset,
            exc,
            agent.on_error,
        )
        agent.processed_errors += 1
        if agent.on_error == "dlq":
            await agent.dead_letter(batch, index, exc)
        batch.ack_one(index)

    def repartition_target(self, source: Stream, name: str, partitions: int | None) -> Topic:
        app = self.agent.app
        topic_name = f"{app.conf.id}-{self.agent.short_name}-{name}-repartition"
        base = source.source
        if isinstance(base, Topic):
            return base.derive(
                topic_name,
                key_type=None,
                key_serializer="json",
                partitions=partitions,
                internal=True,
            )
        return app.topic(topic_name, key_serializer="json", partitions=partitions, internal=True)

    def forward(
        self,
        source: Stream,
        target: Any,
        *,
        label: str,
        key: Callable[[Any], Any] | None,
    ) -> Stream:
        app = self.agent.app
        if isinstance(target, str):
            target = app.topic(target)
        if not isinstance(target, Topic | Channel):
            raise ImproperlyConfigured(
                f"{label}: expected a topic, channel or name, got {target!r}"
            )
        inbox = self.agent.derived(target)
        if label not in self._forwarders or self._forwarders[label].done():
            self._forwarders[label] = asyncio.create_task(
                self._forward(source, target, key, label),
                name=f"agent:{self.agent.name}#{self.index}:{label}",
            )
        if label not in self._cursors:
            self._cursors[label] = Cursor(inbox)
        stream = Stream(self._cursors[label], self, source=target)
        self.stream = stream
        return stream

    async def _forward(
        self, source: Stream, target: Topic | Channel, key: Callable[[Any], Any] | None, label: str
    ) -> None:
        agent = self.agent
        while True:
            try:
                position = await source._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a record that does not decode, under "crash"
                cursor = source._cursor
                batch = cursor.batch
                if batch is None or not cursor.index:
                    raise
                self._forward_failed(source, label, batch.records[cursor.index - 1], exc)
                return
            if position is None:
                return
            batch, index, value = position
            record = batch.records[index]
            try:
                new_key = key(value) if key is not None else batch.loads_key(record.key)
                await target.send(
                    key=new_key,
                    value=value,
                    headers=list(record.headers or ()),
                    timestamp=record.timestamp / 1000.0,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if agent.on_error == "crash":
                    self._forward_failed(source, label, record, exc)
                    return
                agent.processed_errors += 1
                log.error(
                    "agent %s %s: failed on %s[%d]@%d: %r (policy: %s)",
                    agent.name,
                    label,
                    record.topic,
                    record.partition,
                    record.offset,
                    exc,
                    agent.on_error,
                )
                if agent.on_error == "dlq":
                    await agent.dead_letter(batch, index, exc)

    def _forward_failed(self, source: Stream, label: str, record: Any, exc: Exception) -> None:
        """Under "crash": stop the worker with the record unacknowledged (the next step
        would acknowledge it), so it is not committed."""
        agent = self.agent
        agent.processed_errors += 1
        source.release()
        coords = f"{record.topic}[{record.partition}]@{record.offset}"
        log.error("agent %s %s: failed on %s: %r (policy: crash)", agent.name, label, coords, exc)
        agent.app.crash(AgentError(f"agent {agent.name} {label} failed on {coords}: {exc!r}"))

    async def send_to(self, channel: Any, key: Any, value: Any) -> None:
        if isinstance(channel, str):
            channel = self.agent.app.topic(channel)
        await channel.send(key=key, value=value)


def _short(text: str, limit: int = 1000) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
