"""Replies for ``agent.ask``: a reply topic per app, read from its end by every worker.

An asker registers a correlation id, sends the request with reply-to and correlation
headers, and waits; the agent's yield for that event is produced to the reply topic with
the same correlation id. Every worker reads the whole (one-partition) reply topic from
where it was when the reader started and resolves only the ids it is waiting for.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from streamlog.dsl.errors import AskTimeoutError
from streamlog.dsl.runtime.events import header_value
from streamlog.serde import Schema
from streamlog.transport.base import Consumer
from streamlog.transport.types import TopicPartition

if TYPE_CHECKING:
    from streamlog.dsl.agents.host import AgentHost

__all__ = ["ReplyReader", "CORRELATION_HEADER"]

log = logging.getLogger(__name__)
CORRELATION_HEADER = "streamlog-correlation-id"


class ReplyReader:
    """Reads ``<app-id>-replies`` and hands each reply to its waiting ``ask``."""

    def __init__(self, app: AgentHost) -> None:
        self.app = app
        self.topic_name = app.conf.reply_topic
        self._waiting: dict[str, asyncio.Future[bytes | None]] = {}
        self._consumer: Consumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Create the reply topic if missing and start reading it from its end (replies to earlier
        asks are not ours)."""
        await self.app.ensure_topic(self.topic_name, 1, {})
        consumer = self.app.transport.consumer(
            client_id=f"{self.app.conf.client_id}-replies",
            isolation_level=self.app.conf.isolation_level,
        )
        tp = TopicPartition(self.topic_name, 0)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        await consumer.position(tp)  # fix the start now, before any request goes out
        self._consumer = consumer
        self._task = asyncio.create_task(self._read(consumer), name="replies")

    async def _read(self, consumer: Consumer) -> None:
        while True:
            try:
                fetched = await consumer.getmany(timeout_ms=200)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep reading; askers time out
                log.warning("reply reader: %r", exc)
                await asyncio.sleep(0.2)
                continue
            for records in fetched.values():
                for record in records:
                    correlation = header_value(record.headers, CORRELATION_HEADER)
                    if correlation is None:
                        continue
                    future = self._waiting.get(correlation.decode())
                    if future is not None and not future.done():
                        future.set_result(record.value)

    def expect(self, correlation_id: str) -> asyncio.Future[bytes | None]:
        """A future resolved with the reply to ``correlation_id`` (register before sending the
        request)."""
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = future
        return future

    def forget(self, correlation_id: str) -> None:
        """Stop waiting for ``correlation_id`` (the ask finished or gave up)."""
        self._waiting.pop(correlation_id, None)

    async def wait(
        self,
        future: asyncio.Future[bytes | None],
        correlation_id: str,
        timeout: float,
        reply_type: Any,
    ) -> Any:
        """The reply, decoded as JSON (into ``reply_type`` when given); ``AskTimeoutError`` after
        ``timeout`` seconds."""
        try:
            raw = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise AskTimeoutError(
                f"no reply to request {correlation_id} within {timeout} s"
            ) from None
        schema = Schema(value_type=reply_type, value_serializer="json", codecs=self.app.codecs)
        return schema.loads_value(raw)

    async def stop(self) -> None:
        """Stop reading and close the consumer."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._consumer is not None:
            await self._consumer.close()
        for future in self._waiting.values():
            if not future.done():
                future.cancel()
