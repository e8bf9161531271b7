"""``app.source`` and ``app.sink``: connectors run inside an app (``streamlog.connect``).

* A **source** runs on one worker, the app's leader: a supervisor task per source waits
  for leadership, runs the source (``connect.source_runner.SourceRunner``) until the
  leader's partition is revoked or the app stops, then waits again. A run that fails is
  retried after a backoff (1 s doubling to 30 s) from the last checkpoint, whose matching
  keeps the records it already produced from being produced twice.
* A **sink** runs as an agent over its topic (every partition, split among workers like
  any agent's): it takes the records in lists of up to ``max_batch`` and hands them to the
  ``connect.sink_runner.SinkRunner``; the app's commit sequence flushes every sink before
  it commits offsets (``App.checkpoint``), a rewind discards (``discard_uncommitted``).
  Records that do not decode, and records the sink refuses (``BadRecordError``), go to
  ``<app-id>-<sink name>-dlq`` with the error in headers; any other failure of the sink
  stops the worker with the records' offsets uncommitted.
"""

from __future__ import annotations

import asyncio
import logging
import re
import traceback
from typing import TYPE_CHECKING, Any

from streamlog.connect.base import Sink, SinkRecord, Source
from streamlog.connect.errors import BadRecordError, SinkError
from streamlog.connect.offsets import OFFSETS_TOPIC_CONFIGS, OffsetStore, offsets_topic_name
from streamlog.connect.sink_runner import SinkRunner
from streamlog.connect.source_runner import SourceRunner, SourceTarget
from streamlog.dsl.agents.agent import Agent
from streamlog.dsl.agents.stream import Stream
from streamlog.dsl.agents.topics import Topic
from streamlog.dsl.errors import ImproperlyConfigured
from streamlog.transport.types import ConsumerRecord, TopicPartition

if TYPE_CHECKING:
    from streamlog.dsl.app.app import App

__all__ = ["Connectors", "SinkBinding", "SourceBinding"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
FIRST_RETRY_S = 1.0
MAX_RETRY_S = 30.0
STOP_WAIT_S = 30.0  # at most, for a source to finish its poll, checkpoint and close


class SourceBinding:
    """A source declared with ``app.source``: its topic and, once the app runs, its runner
    and supervisor task."""

    def __init__(self, source: Source, topic: Topic, checkpoint_interval: float | None) -> None:
        self.source = source
        self.topic = topic
        self.checkpoint_interval = checkpoint_interval
        self.runner: SourceRunner | None = None
        self.task: asyncio.Task[None] | None = None
        self.run: asyncio.Future[None] | None = None  # the run in progress


class SinkBinding:
    """A sink declared with ``app.sink``: its topic, runner and agent."""

    def __init__(self, sink: Sink, topic: Topic, runner: SinkRunner, agent: Agent) -> None:
        self.sink = sink
        self.topic = topic
        self.runner = runner
        self.agent = agent
        # the records of the write in hand as fetched, for the dead-letter topic
        self.fetched: list[ConsumerRecord] = []


class Connectors:
    """The app's sources and sinks (module docstring)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.sources: dict[str, SourceBinding] = {}
        self.sinks: dict[str, SinkBinding] = {}
        self._leader = asyncio.Event()
        self._stopping = False
        self._hooked = False

    # ------------------------------------------------------------------ declarations

    def add_source(
        self, source: Source, topic: Topic | str, *, checkpoint_interval: float | None = None
    ) -> Source:
        if not isinstance(source, Source):
            raise ImproperlyConfigured(f"app.source: {source!r} is not a streamlog Source")
        name = _check_name(source.name, "source")
        if name in self.sources:
            raise ImproperlyConfigured(f"two sources named {name!r}")
        if checkpoint_interval is not None and checkpoint_interval <= 0:
            raise ImproperlyConfigured(
                f"source {name}: checkpoint_interval must be > 0 s, not {checkpoint_interval!r}"
            )
        app = self.app
        app.topic(
            offsets_topic_name(app.conf.id),
            partitions=1,
            key_serializer="raw",
            value_serializer="raw",
            config=OFFSETS_TOPIC_CONFIGS,
            internal=True,
        )
        self.sources[name] = SourceBinding(source, self._topic(topic), checkpoint_interval)
        self._hook()
        return source

    def add_sink(
        self,
        topic: Topic | str,
        sink: Sink,
        *,
        retry_for: float = 300.0,
        max_batch: int = 1000,
        max_pending: int = 100_000,
        within: float = 0.1,
    ) -> Sink:
        if not isinstance(sink, Sink):
            raise ImproperlyConfigured(f"app.sink: {sink!r} is not a streamlog Sink")
        name = _check_name(sink.name, "sink")
        if name in self.sinks:
            raise ImproperlyConfigured(f"two sinks named {name!r}")
        if max_batch < 1:
            raise ImproperlyConfigured(f"sink {name}: max_batch must be >= 1, not {max_batch!r}")
        channel = self._topic(topic)
        binding: SinkBinding | None = None

        async def dead_letter(record: SinkRecord, exc: BadRecordError) -> None:
            if binding is not None:
                await self._dead_letter(binding, record, exc)

        try:
            runner = SinkRunner(
                sink, dead_letter=dead_letter, retry_for=retry_for, max_pending=max_pending
            )
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from None

        async def take(stream: Stream) -> None:
            await self._feed(binding, stream, max_batch, within)

        take.__name__ = take.__qualname__ = name  # the agent's dead-letter topic: <app>-<name>-dlq
        agent = self.app.agent(channel, name=f"sink:{name}", on_error="dlq")(take)
        binding = SinkBinding(sink, channel, runner, agent)
        self.sinks[name] = binding
        return sink

    def _topic(self, topic: Topic | str) -> Topic:
        if isinstance(topic, Topic):
            return topic
        found = self.app.topics.get(topic)
        return found if found is not None else self.app.topic(topic)

    def _hook(self) -> None:
        if not self._hooked:
            self._hooked = True
            self.app.partitions_assigned_hooks.append(self._on_assigned)
            self.app.partitions_revoked_hooks.append(self._on_revoked)

    # ------------------------------------------------------------------ lifecycle

    async def start_sinks(self) -> None:
        """Start every sink (before the agents take records)."""
        for binding in self.sinks.values():
            await binding.runner.start()

    def start_sources(self) -> None:
        """Start a supervisor per source (once the group has assigned partitions)."""
        if not self.sources:
            return
        app = self.app
        if app.conf.topic_disable_leader:
            raise ImproperlyConfigured(
                "sources run on the app's leader: topic_disable_leader=True leaves none"
            )
        self._stopping = False
        self._leader = asyncio.Event()  # this run's loop (an app may be started again)
        offsets = OffsetStore(app.transport, offsets_topic_name(app.conf.id))
        interval = app.conf.broker_commit_interval
        if app.is_leader():
            self._leader.set()
        for name, binding in self.sources.items():
            schema = binding.topic.schema
            binding.runner = SourceRunner(
                binding.source,
                SourceTarget(binding.topic.name, schema.dumps_key, schema.dumps_value),
                transport=app.transport,
                offsets=offsets,
                checkpoint_interval=binding.checkpoint_interval or interval,
                linger_ms=app.conf.producer_linger_ms,
                client_id=f"{app.conf.client_id}-connect",
            )
            binding.task = asyncio.create_task(self._supervise(binding), name=f"source:{name}")

    async def stop_sources(self) -> None:
        """Ask every source to stop after the poll in hand, checkpointed; wait for them."""
        self._stopping = True
        self._leader.set()  # wake supervisors waiting for leadership: they see _stopping
        await self._stop_runs()
        tasks = [b.task for b in self.sources.values() if b.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for binding in self.sources.values():
            binding.task = None

    async def flush_sinks(self) -> None:
        """The commit's first step: every sink makes what it took durable."""
        for binding in self.sinks.values():
            await binding.runner.flush()

    async def discard_sinks(self) -> None:
        """The app rewinds to its committed offsets: sinks forget what they took since."""
        for binding in self.sinks.values():
            try:
                await binding.runner.discard()
            except Exception as exc:  # noqa: BLE001 - the records come again anyway
                log.warning("sink %s: discard failed: %r", binding.runner.name, exc)

    async def close_sinks(self) -> None:
        for binding in self.sinks.values():
            await binding.runner.close()

    def status(self) -> dict[str, Any]:
        """What ``/connect/`` shows: every connector's status, by name."""
        sources: dict[str, Any] = {}
        for name, source in self.sources.items():
            if source.runner is not None:
                sources[name] = source.runner.status()
            else:
                sources[name] = {"name": name, "kind": "source", "state": "not started"}
                sources[name]["topic"] = source.topic.name
            sources[name]["running_here"] = source.run is not None and not source.run.done()
        sinks = {name: sink.runner.status() for name, sink in self.sinks.items()}
        for name, sink in self.sinks.items():
            sinks[name]["topic"] = sink.topic.name
        return {"app": self.app.conf.id, "sources": sources, "sinks": sinks}

    # ------------------------------------------------------------------ sources

    async def _supervise(self, binding: SourceBinding) -> None:
        runner = binding.runner
        if runner is None:
            return
        delay = FIRST_RETRY_S
        while not self._stopping:
            await self._leader.wait()
            if self._stopping:
                return
            runner.allow_run()  # no await from the check above: a stop is not missed
            run = binding.run = asyncio.ensure_future(runner.run())
            try:
                await asyncio.shield(run)
            except asyncio.CancelledError:
                if not run.done():
                    runner.request_stop()
                raise
            except Exception as exc:
                runner.failed(exc)
                log.error(
                    "source %s failed: %s: %s (retrying in %.0f s from its last checkpoint)",
                    runner.name,
                    type(exc).__name__,
                    exc,
                    delay,
                    exc_info=exc,
                )
                try:
                    async with asyncio.timeout(delay):
                        while not self._stopping:
                            await asyncio.sleep(0.1)
                except TimeoutError:
                    pass
                delay = min(delay * 2, MAX_RETRY_S)
                continue
            delay = FIRST_RETRY_S
            if runner.finished:
                return

    async def _stop_runs(self) -> None:
        runs = []
        for binding in self.sources.values():
            if binding.runner is not None and binding.run is not None and not binding.run.done():
                binding.runner.request_stop()
                runs.append(binding.run)
        if runs:
            # within the worker's stop bound: agents get shutdown_timeout after this
            bound = min(STOP_WAIT_S, self.app.conf.shutdown_timeout / 2)
            done, pending = await asyncio.wait(runs, timeout=bound)
            for run in pending:
                run.cancel()
            if pending:
                log.warning(
                    "%d source(s) did not stop within %.0f s: cancelled (a restart matches "
                    "what they produced after their checkpoint)",
                    len(pending),
                    bound,
                )

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        if self.app.is_leader():
            self._leader.set()

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        if TopicPartition(self.app.leader_topic_name, 0) in revoked:
            self._leader.clear()
            await self._stop_runs()

    # ------------------------------------------------------------------ sinks

    async def _feed(
        self, binding: SinkBinding | None, stream: Stream, max_batch: int, within: float
    ) -> None:
        """The sink's agent: lists of records to the runner (module docstring)."""
        if binding is None:
            return
        runner = binding.runner
        async for taken in stream.take_records(max_batch, within):
            records = [
                SinkRecord(r.topic, r.partition, r.offset, r.timestamp, key, value, r.headers)
                for r, key, value in taken
            ]
            binding.fetched = [r for r, _, _ in taken]
            try:
                await runner.write(records)
            except Exception as exc:  # noqa: BLE001 - stops the worker, offsets uncommitted
                failure = exc if isinstance(exc, SinkError) else SinkError(f"{exc!r}")
                runner.fail(failure)
                self.app.crash(failure)
                return
            finally:
                binding.fetched = []

    async def _dead_letter(
        self, binding: SinkBinding, record: SinkRecord, exc: BadRecordError
    ) -> None:
        """``record`` to ``<app-id>-<sink>-dlq`` as stored, the error in headers."""
        fetched = next(
            (
                r
                for r in binding.fetched
                if r.offset == record.offset and r.partition == record.partition
            ),
            None,
        )
        schema = binding.topic.schema
        if fetched is not None:
            key, value = fetched.key, fetched.value
        else:  # written again after an outage: encoded anew from the decoded record
            key, value = schema.dumps_key(record.key), schema.dumps_value(record.value)
        headers = list(record.headers or ())
        headers += [
            ("streamlog-error", _short(repr(exc)).encode()),
            ("streamlog-error-type", type(exc).__qualname__.encode()),
            (
                "streamlog-error-traceback",
                _short("".join(traceback.format_exception(exc)), 4000).encode(),
            ),
            ("streamlog-source-topic", record.topic.encode()),
            ("streamlog-source-partition", str(record.partition).encode()),
            ("streamlog-source-offset", str(record.offset).encode()),
            ("streamlog-sink", binding.runner.name.encode()),
        ]
        pending = await self.app.producer.send(
            binding.agent.dlq_topic_name,
            value,
            key=key,
            headers=headers,
            timestamp_ms=record.timestamp_ms,
        )
        await pending


def _check_name(name: Any, kind: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ImproperlyConfigured(
            f"a {kind}'s name keys its state and names its topics: letters, digits, '.', '_' "
            f"and '-' only (at most 200), not {name!r}"
        )
    return name


def _short(text: str, limit: int = 1000) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
