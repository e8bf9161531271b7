"""``App``: where a streamlog application declares its topics, agents, timers and tables.

Declaring does nothing but record: importing ``app.py`` opens no connection and starts no
task. ``await app.start()`` (or ``streamlog worker app.py``) opens the transport named by
``broker``, creates missing topics, starts the agents, joins the consumer group and starts
timers; ``await app.stop()`` undoes it in the order that loses nothing:

1. stop timers and stop fetching (no new events reach agents);
2. close the agents' inboxes and wait (``shutdown_timeout``) for the events in hand;
3. commit what was processed (the commit sequence: flush and acknowledge every output,
   then commit the source offsets);
4. leave the group, flush and close the producer, close the transport.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

from streamlog.connect import Sink, Source
from streamlog.dsl.agents.agent import Agent, AgentFun
from streamlog.dsl.agents.naming import callable_name
from streamlog.dsl.agents.replies import CORRELATION_HEADER, ReplyReader
from streamlog.dsl.agents.timers import AppTask, CronJob, Timer
from streamlog.dsl.agents.topics import Channel, HeadersArg, Topic
from streamlog.dsl.app.connectors import Connectors
from streamlog.dsl.app.transactional_id import TransactionalIdClaim, claim_transactional_id
from streamlog.dsl.app.web import Router, View, Web
from streamlog.dsl.app.web import routing as web_routing
from streamlog.dsl.errors import AppNotRunningError, ImproperlyConfigured
from streamlog.dsl.runtime.barrier import ProcessingBarrier
from streamlog.dsl.runtime.clock import AsyncClock, SystemAsyncClock
from streamlog.dsl.runtime.conductor import Conductor
from streamlog.dsl.runtime.inbox import Inbox
from streamlog.dsl.runtime.signals import Signal, SignalSlot, SyncSignal
from streamlog.dsl.settings import Settings
from streamlog.dsl.tables.kinds import GlobalTable, SetTable
from streamlog.dsl.tables.standby import StandbyReplicas
from streamlog.dsl.tables.table import Table
from streamlog.dsl.topology.copartitioning import align_table_partitions, check_copartitioning
from streamlog.dsl.topology.nodes import (
    IntoArg,
    JoinInput,
    KeyArg,
    OutputArg,
    SourceArg,
    WindowArg,
    aggregate_node,
    filter_node,
    join_node,
    map_node,
)
from streamlog.dsl.windows.table import WindowedTable, make_windowed
from streamlog.serde import Codec, CodecRegistry, Schema, default_codecs
from streamlog.state.checkpoint import Checkpoint
from streamlog.state.errors import (
    CheckpointError,
    ExactlyOnceError,
    OffsetsNotCommittedError,
    TransactionAbortedError,
)
from streamlog.state.exactly_once import TransactionalSends
from streamlog.state.stores import StorePartition
from streamlog.state.transaction import PartitionTransaction
from streamlog.state.windows import HoppingWindow, SessionWindow, SlidingWindow, TumblingWindow
from streamlog.transport import open_transport
from streamlog.transport.base import Admin, Producer, TransactionalProducer, Transport
from streamlog.transport.errors import TopicExistsError
from streamlog.transport.types import ConsumerGroupMetadata, TopicPartition

if TYPE_CHECKING:
    from streamlog.dsl.topology.graph import Topology

__all__ = ["App", "topic_name_for"]

log = logging.getLogger(__name__)

T = TypeVar("T", bound=Table)
AnyTable = Table  # ``Table`` in the class body is the ``App.Table`` method


def topic_name_for(text: str) -> str:
    """``text`` as a legal topic name: Kafka allows ASCII letters, digits, '.', '_', '-'.

    Agent names are ``module.qualname`` and may hold ``<locals>``: those become ``_``.
    """
    name = re.sub(r"[^A-Za-z0-9._-]", "_", text)
    return name if len(name) <= 249 else name[:200] + "-" + _digest(name)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


class App:
    """A stream-processing application (Faust's ``faust.App``). See the module docstring.

    Faust's signals are class attributes: connect to ``app.on_partitions_assigned`` for
    one app or to ``App.on_partitions_assigned`` for every app (``runtime/signals.py``).
    """

    on_before_configured = SignalSlot(SyncSignal)  # start(), before anything reads conf
    on_configured = SignalSlot(SyncSignal)  # (app, conf): change conf before the start
    on_after_configured = SignalSlot(SyncSignal)
    on_worker_init = SignalSlot(SyncSignal)  # the worker, before the app starts
    on_partitions_assigned = SignalSlot(Signal)  # (app, assigned): partitions are ready
    on_partitions_revoked = SignalSlot(Signal)  # (app, revoked): after their commit
    on_rebalance_complete = SignalSlot(Signal)  # (app,): every partition ready again
    on_produce_message = SignalSlot(SyncSignal)  # (app, key=, value=, partition=, ...)

    def __init__(
        self,
        id: str,
        *,
        clock: AsyncClock | None = None,
        codecs: CodecRegistry | None = None,
        **settings: Any,
    ) -> None:
        self.conf = Settings.from_kwargs(id, settings)
        self.codecs = codecs if codecs is not None else default_codecs()
        self._clock_given = clock
        self.clock: AsyncClock | None = None
        self.conductor = Conductor(self)
        self.standbys = StandbyReplicas(self)
        self.connectors = Connectors(self)  # app.source / app.sink (connectors.py)
        self.agents: dict[str, Agent] = {}
        self.topics: dict[str, Topic] = {}
        # topic -> sending agent (or "") -> records sent through ``Topic.send`` (/metrics)
        self.records_sent: dict[str, dict[str, int]] = {}
        self.timers: list[Timer | CronJob | AppTask] = []
        self.tables: dict[str, Table] = {}
        self.commands: dict[str, Any] = {}  # @app.command classes, by function name
        self.barrier: ProcessingBarrier | None = None
        self._checkpoint: Checkpoint | None = None
        self._transport: Transport | None = None
        self._producer: Producer | None = None
        # exactly-once: the producer as a transaction, and the id slot it holds
        self._transactional: TransactionalSends | None = None
        self._transactional_id: TransactionalIdClaim | None = None
        self._admin: Admin | None = None
        self._known_topics: set[str] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._replies: ReplyReader | None = None
        self._replies_lock: asyncio.Lock | None = None
        self._stop_requested: asyncio.Event | None = None
        self._leadership: asyncio.Event | None = None
        self.started = False
        self.stopping = False
        self.rebalancing = False  # Faust's: partitions are moving
        self._soon: set[asyncio.Task[Any]] = set()  # send_soon tasks not done yet
        # Faust's: awaited once the app has started (``app.on_startup_finished = f``)
        self.on_startup_finished: Callable[[], Awaitable[Any]] | None = None
        self.crash_reason: BaseException | None = None
        # Run right after the transport starts, before any topic is created or consumed:
        # the worker serves a file:// log over the Kafka protocol from here.
        self.transport_ready_hooks: list[Callable[[App], Awaitable[Any]]] = []
        self.partitions_assigned_hooks: list[Callable[[set[TopicPartition]], Any]] = []
        self.partitions_revoked_hooks: list[Callable[[set[TopicPartition]], Any]] = []

    def __repr__(self) -> str:
        return f"<App {self.conf.id} broker={self.conf.broker}>"

    # ------------------------------------------------------------------ declarations

    def topic(
        self,
        name: str,
        *,
        key_type: Any = None,
        value_type: Any = None,
        key_serializer: str | Codec | None = None,
        value_serializer: str | Codec | None = None,
        partitions: int | None = None,
        retention: Any = None,
        compacting: bool | None = None,
        deleting: bool | None = None,
        config: Mapping[str, Any] | None = None,
        internal: bool = False,
    ) -> Topic:
        """Declare a topic (created at start if missing). Faust's ``app.topic``."""
        topic = Topic(
            self,
            name,
            key_type=key_type,
            value_type=value_type,
            key_serializer=key_serializer,
            value_serializer=value_serializer,
            partitions=partitions,
            retention=retention,
            compacting=compacting,
            deleting=deleting,
            config=config,
            internal=internal,
        )
        existing = self.topics.get(name)
        if existing is None or (topic.partitions or 0) > (existing.partitions or 0):
            self.topics[name] = topic
        return topic

    def channel(
        self,
        *,
        key_type: Any = None,
        value_type: Any = None,
        maxsize: int | None = None,
        name: str | None = None,
    ) -> Channel:
        """An in-memory channel (no log, no commits). Faust's ``app.channel``."""
        return Channel(self, name=name, key_type=key_type, value_type=value_type, maxsize=maxsize)

    def agent(
        self,
        channel: Topic | Channel | str | None = None,
        *,
        name: str | None = None,
        concurrency: int = 1,
        sink: Any = None,
        on_error: str | None = None,
        supervisor_strategy: Any = None,
        isolated_partitions: bool = False,
        use_reply_headers: bool = True,
        **channel_options: Any,
    ) -> Callable[[AgentFun], Agent]:
        """Decorate ``async def f(stream)`` to run it over ``channel``.

        With no channel the agent gets its own topic, ``<app-id>-<module>.<function>``
        (Faust's naming), so ``agent.send(key=...)`` partitions by key across workers;
        ``channel_options`` (``key_type=``, ``value_type=``, serializers, ``partitions=``)
        declare that topic, or the topic a name in ``channel`` names, as Faust's do.
        ``supervisor_strategy``, ``isolated_partitions`` and ``use_reply_headers`` are
        Faust's and accepted: actors restart by ``on_error``, one actor keeps every
        partition in order, and replies always use headers (docs/from-faust.md).
        """
        if channel_options and not (channel is None or isinstance(channel, str)):
            raise ImproperlyConfigured(
                f"agent: {', '.join(sorted(channel_options))} declare the agent's own topic; "
                f"{channel!r} is declared already"
            )

        def decorate(fun: AgentFun) -> Agent:
            full_name = name or callable_name(fun)
            if full_name in self.agents:
                raise ImproperlyConfigured(f"two agents named {full_name!r}")
            source: Topic | Channel
            if channel is None:
                source = self.topic(
                    topic_name_for(f"{self.conf.id}-{full_name}"), **channel_options
                )
            elif isinstance(channel, str):
                source = self.topic(channel, **channel_options)
            else:
                source = channel
            sinks = tuple(sink) if isinstance(sink, list | tuple) else (sink,) if sink else ()
            agent = Agent(
                fun,
                app=self,
                channel=source,
                name=full_name,
                concurrency=concurrency,
                sink=sinks,
                on_error=on_error,
            )
            self.agents[full_name] = agent
            return agent

        return decorate

    def Table(  # noqa: N802 - Faust's spelling
        self,
        name: str,
        *,
        default: Callable[[], Any] | None = None,
        key_type: Any = None,
        value_type: Any = None,
        partitions: int | None = None,
        store: str | None = None,
        help: str | None = None,
        **options: Any,
    ) -> Table:
        """A dict-like table with a changelog (see ``streamlog.dsl.tables.table``)."""
        return self._add_table(
            Table,
            name,
            default=default,
            key_type=key_type,
            value_type=value_type,
            partitions=partitions,
            store=store,
            help=help,
            **options,
        )

    def GlobalTable(self, name: str, **options: Any) -> GlobalTable:  # noqa: N802 - Faust's
        """A table every worker holds whole (see ``streamlog.dsl.tables.kinds``)."""
        return self._add_table(GlobalTable, name, **options)

    def SetTable(self, name: str, **options: Any) -> SetTable:  # noqa: N802 - Faust's
        """A table whose values are sets (``table[k].add(x)``)."""
        return self._add_table(SetTable, name, **options)

    def window_table(
        self,
        table: AnyTable,
        window: TumblingWindow | HoppingWindow | SlidingWindow | SessionWindow,
        **options: Any,
    ) -> WindowedTable:
        """Make ``table`` windowed (what ``Table.tumbling`` and the other kinds call):
        ``streamlog.dsl.windows.make_windowed`` with the table's options."""
        return make_windowed(self, table, window, **options)

    def _add_table(self, kind: type[T], name: str, **options: Any) -> T:
        if name in self.tables:
            raise ImproperlyConfigured(f"two tables named {name!r}")
        table = kind(self, name, **options)
        self.tables[name] = table
        return table

    def source(
        self, source: Source, *, topic: Topic | str, checkpoint_interval: float | None = None
    ) -> Source:
        """Run ``source`` (a ``streamlog.connect.Source``) on the app's leader, producing
        its records to ``topic``; its position is checkpointed in ``<app-id>-connect-offsets``
        (``streamlog.dsl.app.connectors``, docs/connect.md)."""
        return self.connectors.add_source(source, topic, checkpoint_interval=checkpoint_interval)

    def sink(
        self,
        topic: Topic | str,
        sink: Sink,
        *,
        retry_for: float = 300.0,
        max_batch: int = 1000,
        max_pending: int = 100_000,
    ) -> Sink:
        """Write ``topic``'s records to ``sink`` (a ``streamlog.connect.Sink``), flushed by
        each commit before the offsets (``streamlog.dsl.app.connectors``, docs/connect.md)."""
        return self.connectors.add_sink(
            topic, sink, retry_for=retry_for, max_batch=max_batch, max_pending=max_pending
        )

    # ------------------------------------------------------------------ topology DSL

    def map(
        self,
        source: SourceArg,
        *,
        to: OutputArg = None,
        name: str | None = None,
        concurrency: int = 1,
        on_error: str | None = None,
        key: Callable[[Any], Any] | None = None,
    ) -> Callable[[Callable[[Any], Any]], Agent]:
        """``@app.map(source, to=, key=)``: see ``streamlog.dsl.topology.nodes``."""
        return map_node(
            self, source, to=to, name=name, concurrency=concurrency, on_error=on_error, key=key
        )

    def filter(
        self,
        source: SourceArg,
        *,
        to: OutputArg = None,
        name: str | None = None,
        concurrency: int = 1,
        on_error: str | None = None,
    ) -> Callable[[Callable[[Any], Any]], Agent]:
        """``@app.filter(source, to=)``: see ``streamlog.dsl.topology.nodes``."""
        return filter_node(
            self, source, to=to, name=name, concurrency=concurrency, on_error=on_error
        )

    def aggregate(
        self,
        source: SourceArg,
        *,
        by: KeyArg = None,
        into: IntoArg = None,
        to: OutputArg = None,
        window: WindowArg = None,
        default: Callable[[], Any] | None = None,
        name: str | None = None,
        on_error: str | None = None,
    ) -> Callable[[Callable[[Any, Any], Any]], Agent]:
        """``@app.aggregate(source, by=, into=, to=, window=)``: see
        ``streamlog.dsl.topology.nodes``."""
        return aggregate_node(
            self,
            source,
            by=by,
            into=into,
            to=to,
            window=window,
            default=default,
            name=name,
            on_error=on_error,
        )

    def join(
        self,
        left: JoinInput,
        right: JoinInput,
        *,
        to: OutputArg = None,
        name: str | None = None,
        **options: Any,
    ) -> Callable[[Callable[[Any, Any], Any]], Any]:
        """``@app.join(left, right, kind=, window=, key=, to=)``: the function is the joiner."""
        return join_node(self, left, right, to=to, name=name, **options)

    def topology(self) -> Topology:
        """The graph of sources, nodes, tables, changelogs, repartition and sink topics."""
        from streamlog.dsl.topology.graph import build_topology

        return build_topology(self)

    def timer(
        self, interval: float, *, on_leader: bool = False, name: str | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Run the function every ``interval`` seconds (Faust's ``@app.timer``)."""
        if interval <= 0:
            raise ImproperlyConfigured(f"timer interval must be > 0 seconds, not {interval!r}")

        def decorate(fun: Callable[..., Any]) -> Callable[..., Any]:
            label = name or f"timer {callable_name(fun)}"
            self.timers.append(Timer(fun, float(interval), on_leader, label))
            return fun

        return decorate

    def crontab(
        self, cron_format: str, *, timezone: Any = None, on_leader: bool = False
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Run the function at the times a cron expression names (Faust's ``@app.crontab``)."""
        from streamlog.dsl.agents.crontab import Crontab  # parsed only by apps that use crontabs

        crontab = Crontab(cron_format, tz=timezone if timezone is not None else self.conf.timezone)

        def decorate(fun: Callable[..., Any]) -> Callable[..., Any]:
            label = f"crontab {cron_format!r} {callable_name(fun)}"
            self.timers.append(CronJob(fun, crontab, on_leader, label))
            return fun

        return decorate

    def task(self, fun: Callable[..., Any] | None = None, *, on_leader: bool = False) -> Any:
        """Run the function once the app has started (``@app.task`` or ``@app.task(...)``)."""

        def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
            self.timers.append(AppTask(f, on_leader, f"task {callable_name(f)}"))
            return f

        return decorate(fun) if fun is not None else decorate

    # ------------------------------------------------------------------ running parts

    @property
    def transport(self) -> Transport:
        """The open transport (``AppNotRunningError`` before ``start``)."""
        if self._transport is None:
            raise AppNotRunningError(f"app {self.conf.id!r} is not started")
        return self._transport

    @property
    def producer(self) -> Producer:
        """The app's producer (``AppNotRunningError`` before ``start``)."""
        if self._producer is None:
            raise AppNotRunningError(
                f"app {self.conf.id!r} is not started: sending needs a running app "
                "(streamlog worker, or await app.start())"
            )
        return self._producer

    @property
    def transaction_counts(self) -> dict[str, int] | None:
        """Exactly-once: transactions committed and aborted since the start (None under
        at-least-once, or before the start)."""
        sends = self._transactional
        if sends is None:
            return None
        return {
            "committed": sends.transactions_committed,
            "aborted": sends.transactions_aborted,
        }

    def attach(self, topic: Topic, inbox: Inbox) -> None:
        """Deliver ``topic``'s records to ``inbox`` (agents register their inboxes here)."""
        self.conductor.attach(topic, inbox)

    @property
    def leader_topic_name(self) -> str:
        """The one-partition topic whose owner is the app's leader: ``<app-id>-__assignor-
        __leader``."""
        return f"{self.conf.id}-__assignor-__leader"

    def is_leader(self) -> bool:
        """True on the one worker that holds the leader topic's only partition."""
        return TopicPartition(self.leader_topic_name, 0) in self.conductor.assignment()

    async def wait_for_leadership(self) -> None:
        """Until this worker is the leader (``on_leader`` timers wait here)."""
        while not self.is_leader():
            if self._leadership is None:
                self._leadership = asyncio.Event()
            self._leadership.clear()
            await self._leadership.wait()

    async def send(
        self,
        channel: Topic | Channel | str,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        headers: HeadersArg = None,
        timestamp: float | None = None,
    ) -> Any:
        """Faust's ``app.send``: send to a topic (object or name) or channel."""
        target = self.topic(channel) if isinstance(channel, str) else channel
        return await target.send(
            key=key, value=value, partition=partition, headers=headers, timestamp=timestamp
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the transport, create missing topics, start agents, join the group and start timers;
        returns once the first assignment's tables are recovered. Raises what stopped it
        (nothing is left running)."""
        if self.started:
            return
        self.on_before_configured.send()
        self.on_configured.send(self.conf)
        self.on_after_configured.send()
        self.clock = self._clock_given or SystemAsyncClock()
        self._stop_requested = asyncio.Event()
        self._replies_lock = asyncio.Lock()
        conf = self.conf
        log.info("app %s starting on %s", conf.id, conf.broker)
        transport = open_transport(conf.broker, conf.broker_security)
        await transport.start()
        self._transport = transport
        try:
            for hook in self.transport_ready_hooks:
                await hook(self)
            if conf.exactly_once:
                await self._start_transactional_producer(transport)
            else:
                self._producer = self._new_producer(transport)
            # exactly-once needs the barrier without tables too: an event in processing
            # when the offsets are read has outputs in the transaction but not its offset
            needs_barrier = bool(self.tables) or conf.exactly_once
            self.barrier = ProcessingBarrier() if needs_barrier else None
            self._checkpoint = self._new_checkpoint()
            for agent in self.agents.values():
                agent.declare()
            if not conf.topic_disable_leader:  # Faust's: no leader, on_leader never runs
                self.topic(self.leader_topic_name, partitions=1, internal=True)
                self.conductor.watch(self.leader_topic_name)
            changelogs = {t.changelog_topic.name for t in self.tables.values()}
            await self._create_topics(but=changelogs)
            for agent in self.agents.values():
                await agent.start()
                log.info(
                    "agent %s started (x%d) on %r", agent.name, agent.concurrency, agent.channel
                )
            await self._create_topics(but=changelogs)  # repartition/through topics of agents
            # a new changelog takes its source topic's partition count (copartitioning.py)
            await align_table_partitions(self, self.admin())
            await self._create_topics()
            await check_copartitioning(self, self.admin())
            await self.connectors.start_sinks()
            await self.conductor.start()
            if self.crash_reason is not None:  # the first assignment could not be prepared
                raise self.crash_reason
            for job in self.timers:
                self._tasks.append(asyncio.create_task(job.run(self), name=job.name))
            self.connectors.start_sources()
            self.started = True
            log.info(
                "app %s started: %d agent(s), %d timer(s)/task(s)",
                conf.id,
                len(self.agents),
                len(self.timers),
            )
            if self.on_startup_finished is not None:
                await self.on_startup_finished()
        except BaseException:
            await self._abort_start()
            raise

    async def _abort_start(self) -> None:
        """Undo a start that failed half way: whatever runs is stopped, nothing committed."""
        await self.connectors.stop_sources()
        await self.conductor.stop_fetching()
        for agent in self.agents.values():
            await agent.stop(1.0)
        await self.conductor.close()
        await self.standbys.close()
        for table in self.tables.values():
            table.close()
        await self.connectors.close_sinks()
        await self._close_transport()
        log.info("app %s stopped (its start failed)", self.conf.id)

    async def _create_topics(self, but: set[str] | frozenset[str] = frozenset()) -> None:
        for topic in list(self.topics.values()):
            if topic.name in but:
                continue
            await self.ensure_topic(
                topic.name, topic.partitions or self.conf.topic_partitions, topic.topic_configs()
            )

    def admin(self) -> Admin:
        """The app's admin client (made on first use, closed with the transport)."""
        if self._admin is None:
            self._admin = self.transport.admin()
        return self._admin

    async def ensure_topic(self, name: str, partitions: int, configs: Mapping[str, str]) -> bool:
        """Create ``name`` unless it exists; True if this call created it. Nothing is
        created with ``topic_allow_declare=False`` (the topics must exist)."""
        if not self.conf.topic_allow_declare:
            return False
        admin = self.admin()
        if self._known_topics is None:
            self._known_topics = set(await admin.list_topics(include_internal=True))
        if name in self._known_topics:
            return False
        try:
            factor = self.conf.topic_replication_factor
            await admin.create_topic(name, partitions, dict(configs), replication_factor=factor)
            log.info(
                "created topic %s (%d partitions%s)",
                name,
                partitions,
                "" if factor is None else f", replication factor {factor}",
            )
            created = True
        except TopicExistsError:
            created = False
        self._known_topics.add(name)
        return created

    async def stop(self) -> None:
        """Stop in the order that loses nothing (see the module docstring)."""
        if not self.started or self.stopping:
            return
        self.stopping = True
        conf = self.conf
        log.info("app %s stopping", conf.id)
        await self.connectors.stop_sources()  # checkpointed after the poll in hand
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.conductor.stop_fetching()
        for agent in self.agents.values():
            finished = await agent.stop(conf.shutdown_timeout)
            log.info("agent %s stopped%s", agent.name, "" if finished else " (cancelled)")
        try:
            offsets = await self.conductor.commit()
            log.info("final commit: %d partition(s)", len(offsets))
        except Exception as exc:  # noqa: BLE001 - uncommitted events are re-read, not lost
            log.error("final commit failed: %r (events after the last commit will be re-read)", exc)
        await self.connectors.close_sinks()
        if self._replies is not None:
            await self._replies.stop()
        await self.conductor.close()
        await self.standbys.close()
        for table in self.tables.values():
            table.close()
        await self._close_transport()
        self.started = False
        log.info("app %s stopped", conf.id)

    async def _close_transport(self) -> None:
        producer, self._producer = self._producer, None
        self._transactional = None
        admin, self._admin = self._admin, None
        transport, self._transport = self._transport, None
        for closable in (producer, admin):
            if closable is not None:
                try:
                    await closable.close()
                except Exception as exc:  # noqa: BLE001 - closing: log and go on
                    log.warning("closing %r: %r", closable, exc)
        if transport is not None:
            await transport.close()
        claim, self._transactional_id = self._transactional_id, None
        if claim is not None:
            claim.release()

    def crash(self, reason: BaseException) -> None:
        """Stop the worker because of ``reason`` (it exits non-zero and says why)."""
        if self.crash_reason is None:
            self.crash_reason = reason
            log.critical("app %s crashed: %s", self.conf.id, reason)
        if self._stop_requested is not None:
            self._stop_requested.set()

    def request_stop(self) -> None:
        """Ask the worker to stop (what a signal does); ``stop`` does the stopping."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def wait_until_stop_requested(self) -> None:
        """Until ``request_stop`` or ``crash`` (the worker's main wait)."""
        if self._stop_requested is None:
            raise AppNotRunningError(f"app {self.conf.id!r} is not started")
        await self._stop_requested.wait()

    # ------------------------------------------------------------------ command line

    def main(self, argv: Sequence[str] | None = None) -> NoReturn:
        """Run the app's command line and exit (Faust's ``app.main()``).

        ``python app.py worker -l info`` runs this app (the one already built, agents
        registered in a ``main()`` included: the file is not imported again); ``send``,
        ``agents``, ``tables``, ``topology`` and the app's ``@app.command``s are the other
        commands (``streamlog.cli.app_main``). ``argv`` defaults to ``sys.argv[1:]``.
        """
        # The one call from the DSL up into the CLI layer, as Faust's App.main makes it;
        # pyproject's layers contract names this import as its only exception.
        from streamlog.cli.app_main import run_main

        run_main(self, argv)

    def command(
        self, *options: Any, base: type | None = None, **attrs: Any
    ) -> Callable[[Callable[..., Awaitable[Any]]], type]:
        """Make ``async def fun`` a command of the app's command line (Faust's
        ``@app.command(option(...), argument(...))``): ``python app.py fun ...``.

        Faust's calling convention: a function with parameters gets the command instance
        first (``self.app``, ``self.say``), then the options and arguments by name. See
        ``streamlog.cli.commands``. Returns the command class (a subclass of ``base``,
        default ``streamlog.cli.AppCommand``).
        """
        from streamlog.cli.app_main import command_class

        def decorate(fun: Callable[..., Awaitable[Any]]) -> type:
            cls = command_class(fun, options, base=base, attrs=attrs)
            self.commands[fun.__name__] = cls
            return cls

        return decorate

    async def start_client(self, transport: Transport | None = None) -> None:
        """Open what sending needs and nothing else (Faust's ``start_client``): the
        transport (``transport`` when given, already started: the app closes it), the
        producer, and the declared topics that are missing. No agent, timer or consumer
        group runs. ``@app.command``s run inside it; ``stop_client`` undoes it."""
        if self.started or self._transport is not None:
            if transport is not None and transport is not self._transport:
                await transport.close()
            return
        self.clock = self._clock_given or SystemAsyncClock()
        self._stop_requested = asyncio.Event()
        self._replies_lock = asyncio.Lock()
        if transport is None:
            transport = open_transport(self.conf.broker, self.conf.broker_security)
            await transport.start()
        self._transport = transport
        try:
            self._producer = self._new_producer(transport)
            await self._create_topics()
        except BaseException:
            await self._close_transport()
            raise

    async def stop_client(self) -> None:
        """Flush and close what ``start_client`` opened (nothing if the app was started as
        a worker: ``stop`` stops that)."""
        if self.started:
            return
        try:
            if self._producer is not None:
                await self._producer.flush()  # a failed send raises here, not in a log line
        finally:
            replies, self._replies = self._replies, None
            if replies is not None:
                await replies.stop()
            await self._close_transport()
            self._known_topics = None

    def _new_producer(self, transport: Transport, transactional_id: str | None = None) -> Producer:
        conf = self.conf
        if transactional_id is None:
            return transport.producer(
                acks=conf.producer_acks,
                linger_ms=conf.producer_linger_ms,
                compression=conf.producer_compression,
                batch_size=conf.producer_max_batch_size,
                client_id=conf.client_id,
            )
        return transport.producer(
            acks=-1,  # a transactional producer is idempotent: every replica acknowledges
            linger_ms=conf.producer_linger_ms,
            compression=conf.producer_compression,
            batch_size=conf.producer_max_batch_size,
            client_id=conf.client_id,
            transactional_id=transactional_id,
            transaction_timeout_ms=round(conf.producer_transaction_timeout * 1000),
        )

    async def _start_transactional_producer(self, transport: Transport) -> None:
        """Exactly-once: the worker's transactional producer, under the id its data
        directory keeps for it (``transactional_id.py``), fencing a predecessor killed
        mid-transaction (whose transaction is aborted) before anything is processed."""
        claim = self._transactional_id = claim_transactional_id(self.conf.id, self.conf.app_datadir)
        producer = self._new_producer(transport, claim.transactional_id)
        self._producer = producer  # closed by _close_transport, even if the start fails
        sends = TransactionalSends(cast(TransactionalProducer, producer), self._group_metadata)
        await sends.start()
        log.info("exactly-once: transactional id %s", claim.transactional_id)
        self._producer = self._transactional = sends

    def _group_metadata(self) -> ConsumerGroupMetadata | None:
        consumer = self.conductor.consumer
        return None if consumer is None else consumer.group_metadata()

    # ------------------------------------------------------------------ commits and rebalances

    def _new_checkpoint(self) -> Checkpoint:
        return Checkpoint(
            self.producer, self.conductor.commit_offsets, transaction=self._transactional
        )

    def state_transaction(
        self, store: StorePartition, changelog: TopicPartition
    ) -> PartitionTransaction:
        """The open transaction of a table partition (tables call this on every access)."""
        if self._checkpoint is None:
            raise AppNotRunningError("tables are readable and writable only while the app runs")
        return self._checkpoint.transaction(store, changelog)

    def track_soon(self, task: asyncio.Task[Any]) -> None:
        """A ``send_soon`` in flight: the next commit waits until it has queued its record."""
        self._soon.add(task)
        task.add_done_callback(self._soon.discard)

    def state_reader(self, store: StorePartition) -> PartitionTransaction | StorePartition:
        """What reads of a table partition see, even while a commit runs (no transaction
        is opened: ``Checkpoint.reader``)."""
        if self._checkpoint is None:
            raise AppNotRunningError("tables are readable and writable only while the app runs")
        return self._checkpoint.reader(store)

    async def checkpoint(self, offsets: dict[TopicPartition, int]) -> None:
        """The commit sequence for ``offsets``, whose events are all processed.

        ``streamlog.state.checkpoint.Checkpoint.commit`` runs it: table changes to their
        changelogs, the producer flushed and every output acknowledged, stores written with
        their changelog offsets, then the source offsets committed. With tables the caller
        (``Conductor.commit``) holds the ``ProcessingBarrier`` around reading the offsets and
        this, so no table write lands mid-commit or between the two. A
        commit that fails before the offsets stops the app: the next start recovers tables
        from their changelogs and re-reads events from the last committed offsets. Offsets
        the group refuses (``OffsetsNotCommittedError``: a rebalance, a coordinator that
        restarted) only raise: the next commit or the partitions' next owner covers them.
        """
        checkpoint = self._checkpoint
        if checkpoint is None:
            return
        try:
            for task in list(self._soon):  # send_soon records queued before the flush
                try:
                    await task
                except Exception as exc:
                    raise CheckpointError(2, f"a send_soon failed: {exc!r}") from exc
            try:  # step 0: connectors' sinks make what they took durable in their systems
                await self.connectors.flush_sinks()
            except Exception as exc:
                checkpoint.discard()
                raise CheckpointError(0, f"a sink's flush failed: {exc}") from exc
            await checkpoint.commit(offsets)
        except (OffsetsNotCommittedError, TransactionAbortedError):
            raise  # nothing lost, nothing half done: the caller retries, rewinds or rejoins
        except CheckpointError as exc:
            self.crash(exc)
            raise

    async def discard_uncommitted(self) -> None:
        """Forget every table change and awaited output since the last commit, and start
        a new checkpoint (partitions were lost: committing their work could overwrite the
        changelog writes of their new owner, who processes those events again). Under
        exactly-once the open transaction is aborted: nothing of that work is visible."""
        checkpoint = self._checkpoint
        if checkpoint is None:
            return
        if not checkpoint.closed:
            checkpoint.discard()
        await self.connectors.discard_sinks()
        if self._transactional is not None:
            try:
                await self._transactional.abort()
            except ExactlyOnceError as exc:  # fenced: this worker cannot transact any more
                self.crash(exc)
        self._checkpoint = self._new_checkpoint()

    def drop_revoked(self) -> int:
        """Drop queued batches of revoked partitions from every agent; how many."""
        return sum(agent.drop_revoked() for agent in self.agents.values())

    async def prepare_partitions(self, assigned: set[TopicPartition]) -> None:
        """Make the state of newly assigned partitions ready: their table partitions are
        recovered from the changelogs. The conductor calls this before any event of them
        reaches an agent, and again after a failure (recovery is resumable)."""
        numbers = {tp.partition for tp in assigned if tp.topic != self.leader_topic_name}
        async with self.standbys.suspended():  # a standby's store may be promoted now
            for table in self.tables.values():
                await table.assign(numbers)

    @property
    def standby_replicas(self) -> int:
        """Standby replicas per task the group's leader should place: the setting, when
        the app has tables to keep warm."""
        return self.conf.table_standby_replicas if self.standbys.tables() else 0

    def standbys_assigned(
        self, standby: frozenset[TopicPartition], held: set[TopicPartition]
    ) -> None:
        """The group's latest standby partitions for this worker (after each rebalance),
        and every partition it holds: a standby promoted to active keeps its store."""
        leader = self.leader_topic_name
        self.standbys.update(
            (tp.partition for tp in standby if tp.topic != leader),
            keep=(tp.partition for tp in held if tp.topic != leader),
        )

    async def partitions_ready(self, assigned: set[TopicPartition]) -> None:
        """Partitions are ready (prepared) and about to be processed: hooks, leadership,
        then the ``on_partitions_assigned`` signal."""
        for hook in self.partitions_assigned_hooks:
            result = hook(assigned)
            if asyncio.iscoroutine(result):
                await result
        if self._leadership is not None and self.is_leader():
            self._leadership.set()
        await self.on_partitions_assigned.send(assigned)

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Close the table partitions of ``revoked`` (after their commit), run the hooks,
        then the ``on_partitions_revoked`` signal."""
        numbers = {tp.partition for tp in revoked if tp.topic != self.leader_topic_name}
        for table in self.tables.values():
            table.revoke(numbers)
        for hook in self.partitions_revoked_hooks:
            result = hook(revoked)
            if asyncio.iscoroutine(result):
                await result
        await self.on_partitions_revoked.send(revoked)

    def rebalance_started(self) -> None:
        """Partitions are moving: ``app.rebalancing`` until they are all ready again."""
        self.rebalancing = True

    async def rebalance_complete(self) -> None:
        """Every assigned partition is ready: the ``on_rebalance_complete`` signal."""
        if self.rebalancing:
            self.rebalancing = False
            await self.on_rebalance_complete.send()

    # ------------------------------------------------------------------ request/reply

    async def replies(self) -> ReplyReader:
        """The reply reader, started on the first ``ask``."""
        if self._replies is None:
            if self._replies_lock is None:
                raise AppNotRunningError(f"app {self.conf.id!r} is not started: nothing to ask")
            async with self._replies_lock:
                if self._replies is None:
                    reader = ReplyReader(self)
                    await reader.start()
                    self._replies = reader
        return self._replies

    async def send_reply(self, reply_to: str, correlation_id: bytes, value: Any) -> None:
        """Send ``value`` (JSON) to ``reply_to``, correlated for the asker's ``ReplyReader``."""
        schema = Schema(value_serializer="json", codecs=self.codecs)
        pending = await self.producer.send(
            reply_to, schema.dumps_value(value), headers=[(CORRELATION_HEADER, correlation_id)]
        )
        await pending

    # ------------------------------------------------------------------ web views (Faust's)

    @cached_property
    def web(self) -> Web:
        """Faust's ``app.web``: makes responses (``json``, ``text``, ``html``, ``bytes``)
        and holds the app's pages until the worker's web server serves them."""
        return Web(self)

    @cached_property
    def router(self) -> Router:
        """Faust's ``app.router``: which worker holds a table key or a topic partition
        (``key_store``, ``table_metadata``, ...), and, as aiohttp's router, plain routes
        (``add_get``, ``add_post``, ...). See ``streamlog.dsl.app.web.routing``."""
        return Router(self)

    def page(
        self,
        path: str,
        *,
        base: type[View] = View,
        cors_options: Any = None,
        name: str | None = None,
    ) -> Callable[[Any], type[View]]:
        """``@app.page("/path/{param}/")`` on ``async def view(self, request, param)`` or
        on a ``View`` subclass: serve it on the worker's web server (Faust's)."""
        return web_routing.page(self, path, base=base, cors_options=cors_options, name=name)

    def table_route(
        self,
        table: Any,
        shard_param: str | None = None,
        *,
        query_param: str | None = None,
        match_info: str | None = None,
        exact_key: str | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """``@app.table_route(table=t, match_info="key")`` under ``@app.page``: answer on
        the worker holding the request's key of ``t``, forwarding it there (Faust's)."""
        return web_routing.table_route(
            self,
            table,
            shard_param,
            query_param=query_param,
            match_info=match_info,
            exact_key=exact_key,
        )

    def topic_route(
        self,
        topic: Topic | str,
        shard_param: str | None = None,
        *,
        query_param: str | None = None,
        match_info: str | None = None,
        exact_key: str | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """``@app.topic_route(topic=t, match_info="key")`` under ``@app.page``: answer on
        the worker holding the partition of ``t`` the key goes to (Faust's)."""
        return web_routing.topic_route(
            self,
            topic,
            shard_param,
            query_param=query_param,
            match_info=match_info,
            exact_key=exact_key,
        )

    # ------------------------------------------------------------------ convenience

    def stats(self) -> dict[str, Any]:
        """Counters for logs and the web endpoint."""
        return {
            "app": self.conf.id,
            "records_fetched": self.conductor.records_fetched,
            "commits": self.conductor.commits,
            "assignment": sorted(
                f"{tp.topic}[{tp.partition}]" for tp in self.conductor.assignment()
            ),
            "rebalances": self.conductor.rebalances,
            "agents": {
                name: {
                    "errors": a.processed_errors,
                    "dead_lettered": a.dead_lettered,
                    "events_in": sum(a.meter.events_in.values()),
                }
                for name, a in self.agents.items()
            },
            "timers": {job.name: {"runs": job.runs, "errors": job.errors} for job in self.timers},
            "tables": {name: _table_stats(t) for name, t in self.tables.items()},
            "connectors": self.connectors.status(),
        }

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _table_stats(table: Table) -> dict[str, Any]:
    """A table's counters for ``App.stats``: partitions held, recovery, and for windowed
    tables the late, closed and expired windows."""
    stats: dict[str, Any] = {
        "partitions": table.active_partitions,
        "recovered_records": table.recovered_records,
        # partition -> [offsets replayed, offsets to replay] of its latest recovery
        "recovery": {str(n): list(done) for n, done in sorted(table.recovery.items())},
    }
    windowed = getattr(table, "windowed", None)
    if windowed is not None:
        for name in ("late_events", "closed_windows", "expired_windows"):
            stats[name] = getattr(windowed, name, 0)
    return stats
