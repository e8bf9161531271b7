"""An agent's actors: each runs the user's function over its own ``Stream``.

Each actor has its own cursor, so batches are split between an agent's actors and each
batch stays in order. When the function raises (or a record cannot be decoded), the actor
logs the event's topic/partition/offset and, by the agent's ``on_error`` policy, stops
the worker with the event unacknowledged, so it is neither committed nor lost
(``"crash"``, the default), restarts with the failing event skipped (``"restart"``,
Faust's behaviour), or sends the event to ``<app-id>-<agent>-dlq`` and then restarts
(``"dlq"``). A restarted actor continues from the same cursor.

The actor is also its streams' ``StreamOwner``: ``group_by``/``through`` forward records
to another topic in a task of its own and read them back from there.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamlog.dsl.agents.stream import Stream
from streamlog.dsl.agents.topics import Channel, Topic
from streamlog.dsl.errors import AgentError, ImproperlyConfigured
from streamlog.dsl.runtime.acks import Batch
from streamlog.dsl.runtime.clock import running_clock
from streamlog.dsl.runtime.context import read_from, sending_for
from streamlog.dsl.runtime.inbox import Cursor

if TYPE_CHECKING:
    from streamlog.dsl.agents.agent import Agent
    from streamlog.dsl.runtime.clock import AsyncClock
    from streamlog.dsl.runtime.meters import AgentMeter

__all__ = ["ActorContext"]

log = logging.getLogger(__name__)


class ActorContext:
    """One actor of an agent: runs the user's function and owns its streams' side tasks."""

    def __init__(self, agent: Agent, index: int) -> None:
        self.agent = agent
        self.index = index
        self.clock: AsyncClock = running_clock(agent.app.clock)
        self.barrier = agent.app.barrier
        self.cursor = Cursor(agent.inbox)
        self.meter: AgentMeter | None = agent.meter
        self.task: asyncio.Task[None] | None = None
        self._cursors: dict[str, Cursor] = {}
        self._forwarders: dict[str, asyncio.Task[None]] = {}
        self.stream: Stream | None = None

    def tasks(self) -> list[asyncio.Task[None]]:
        """The actor's running tasks (its function and its forwarders): what stopping waits for."""
        tasks = [t for t in self._forwarders.values() if not t.done()]
        if self.task is not None and not self.task.done():
            tasks.append(self.task)
        return tasks

    async def run(self) -> None:
        """Run the agent's function until it returns, the inbox closes, or the error policy says
        stop."""
        agent = self.agent
        sending_for(agent.name)  # what this task sends is counted as this agent's output
        while True:
            stream: Stream[Any] = Stream(self.cursor, self, source=agent.channel)
            self.stream = stream
            read_from(self.cursor)  # current_event(): what this cursor handed out last
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
        """The repartition topic ``group_by(name)`` writes to: ``<app-
        id>-<agent>-<name>-repartition``, declared like the stream's topic with JSON
        keys."""
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
        """Forward ``source``'s records to ``target`` (re-keyed by ``key``) in a task of its own,
        and return the stream that reads them back."""
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
        stream: Stream[Any] = Stream(self._cursors[label], self, source=target)
        self.stream = stream
        read_from(self._cursors[label])  # the function reads this stream from now on
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
        """Send ``value`` under ``key`` to ``channel`` (a topic, its name, a channel or an agent):
        ``echo``'s sends."""
        if isinstance(channel, str):
            channel = self.agent.app.topic(channel)
        await channel.send(key=key, value=value)
