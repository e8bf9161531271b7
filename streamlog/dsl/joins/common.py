"""What the three join kinds share: kinds, joiners, counters, outputs, state access, checks.

Kept apart from the joins themselves so each join module holds only its own semantics:

* ``JoinStats``: the counters every join keeps (records read, results, unmatched results,
  records dropped for a null key, a null value or lateness);
* ``JoinOutput``: where results go (topics, channels, agents, callables), written with the
  exact millisecond timestamp the join gives them;
* ``CoPartitionCheck``: on the first assignment, compares the partition counts of the
  topics and tables a join needs co-partitioned and stops the worker, naming them, when
  they differ (Kafka Streams refuses such a topology at start for the same reason: equal
  keys would meet on different partitions and never join).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from streamlog.dsl.agents.agent import Agent
from streamlog.dsl.agents.stream import Stream
from streamlog.dsl.agents.topics import Channel, Topic
from streamlog.dsl.durations import Seconds, to_ms
from streamlog.dsl.errors import CoPartitioningError, ImproperlyConfigured, JoinError
from streamlog.dsl.tables.table import Table
from streamlog.serde import field_getter
from streamlog.transport.types import TopicPartition

if TYPE_CHECKING:
    from streamlog.dsl.joins.host import JoinHost

__all__ = [
    "JoinKind",
    "JOIN_KINDS",
    "Joiner",
    "JoinError",
    "CoPartitioningError",
    "JoinStats",
    "JoinOutput",
    "AppJoin",
    "OutputTarget",
    "Outputs",
    "common_partitions",
    "safe_name",
    "CoPartitionCheck",
    "default_joiner",
    "call_joiner",
    "duration_ms",
    "key_getter",
    "resolve_topic",
    "check_kind",
]

log = logging.getLogger(__name__)

JoinKind = Literal["inner", "left", "outer"]
JOIN_KINDS: tuple[str, ...] = ("inner", "left", "outer")

Joiner = Callable[[Any, Any], Any]
"""``joiner(left_value, right_value) -> result``; the missing side of a left/outer result
is None. May be async. The default returns the pair ``(left, right)``."""


def default_joiner(left: Any, right: Any) -> tuple[Any, Any]:
    """The pair itself: ``async for left, right in ...`` reads naturally."""
    return left, right


async def call_joiner(joiner: Joiner, left: Any, right: Any) -> Any:
    """``joiner(left, right)``, awaited when it is a coroutine function."""
    result = joiner(left, right)
    if inspect.isawaitable(result):
        result = await result
    return result


def check_kind(kind: str, allowed: Sequence[str], what: str) -> str:
    """``kind`` if it is one of ``allowed``, else ``ImproperlyConfigured`` naming the join."""
    if kind not in allowed:
        raise ImproperlyConfigured(
            f"{what}: kind must be one of {', '.join(repr(k) for k in allowed)}, not {kind!r}"
        )
    return kind


def duration_ms(value: Seconds, what: str) -> int:
    """A join's window or grace (seconds or a timedelta) as whole milliseconds, never
    negative."""
    ms = to_ms(value, what)
    if ms < 0:
        raise ImproperlyConfigured(f"{what} must not be negative, got {value!r}")
    return ms


def key_getter(key: Any) -> Callable[[Any], Any] | None:
    """A key extractor: a function of the value, a Record field (``Order.user``) or a
    field name, as ``group_by`` takes it; None for "the record's key"."""
    if key is None:
        return None
    if callable(key):
        return key
    try:
        return field_getter(key)
    except TypeError as exc:
        raise ImproperlyConfigured(f"join key: {exc}") from None


def resolve_topic(app: JoinHost, source: Topic | str | Table, what: str) -> Topic:
    """A join input as a topic: a ``Topic``, a topic name, or a table's changelog topic."""
    if isinstance(source, Topic):
        return source
    if isinstance(source, str):
        return app.topic(source)
    if isinstance(source, Table):
        return source.changelog_topic
    raise ImproperlyConfigured(
        f"{what}: expected a topic or a topic name, got {source!r} (channels carry no "
        "partitions or offsets, which joins keep their state by)"
    )


@dataclass
class JoinStats:
    """Counters of one join. ``records_*`` count input records as read; the others say
    what became of them (a record may yield several results or none)."""

    records_left: int = 0
    records_right: int = 0
    results: int = 0  # results emitted, unmatched ones and tombstones included
    unmatched: int = 0  # results with a missing side: (left, None) or (None, right)
    tombstones: int = 0  # table-table: results deleted
    null_keys: int = 0  # records with a null key (dropped, or emitted unmatched)
    null_values: int = 0  # stream records with a null value: dropped
    late: int = 0  # stream-stream: records whose join window had closed: dropped
    completed: int = 0  # input records fully handled (results emitted, or dropped)

    @property
    def records(self) -> int:
        """Input records read, both sides."""
        return self.records_left + self.records_right

    def as_dict(self) -> dict[str, int]:
        """The counters as a dict (for stats and logs)."""
        return {**asdict(self), "records": self.records}


OutputTarget = Topic | Channel | Agent | str | Callable[[Any, Any], Any]
Outputs = OutputTarget | list[OutputTarget] | tuple[OutputTarget, ...] | None
"""A join's ``to=``: one target or several."""


class JoinOutput:
    """Where a join's results go: each target gets every ``(key, value, timestamp)``.

    A topic (or a topic name, declared on the app) is written through the app's producer
    with the key and value serialised by the topic's schema and the exact millisecond
    timestamp (``Topic.send`` takes float seconds, which cannot carry every millisecond
    exactly). A channel or agent gets ``send(key=, value=, timestamp=)``; a callable
    gets ``(key, value)`` and may be async. The producer's acknowledgements are awaited by
    the app's commit sequence before the input offsets are committed.
    """

    def __init__(self, app: JoinHost, to: Outputs) -> None:
        self.app = app
        targets: Iterable[OutputTarget]
        if to is None:
            targets = ()
        elif isinstance(to, list | tuple):
            targets = to
        else:
            targets = (to,)
        self.targets: list[Topic | Channel | Agent | Callable[[Any, Any], Any]] = []
        for target in targets:
            self.add(target)

    def add(self, target: OutputTarget) -> None:
        """Also send results to ``target`` (a topic or its name, a channel, an agent or a
        callable)."""
        if isinstance(target, str):
            target = self.app.topic(target)
        if not isinstance(target, Topic | Channel | Agent) and not callable(target):
            raise ImproperlyConfigured(
                f"join output: not a topic, channel, agent or callable: {target!r}"
            )
        self.targets.append(target)

    @property
    def topics(self) -> tuple[Topic | Channel, ...]:
        """The topics and channels written (agents count as their channel)."""
        out: list[Topic | Channel] = []
        for target in self.targets:
            if isinstance(target, Topic | Channel):
                out.append(target)
            elif isinstance(target, Agent):
                out.append(target.channel)
        return tuple(out)

    async def emit(self, key: Any, value: Any, timestamp_ms: int) -> None:
        """Send one result to every target, with the join's timestamp."""
        for target in self.targets:
            if isinstance(target, Topic):
                schema = target.schema
                await self.app.producer.send(
                    target.name,
                    schema.dumps_value(value),
                    key=schema.dumps_key(key),
                    timestamp_ms=timestamp_ms,
                )
            elif isinstance(target, Channel | Agent):
                await target.send(key=key, value=value, timestamp=timestamp_ms / 1000.0)
            else:
                result = target(key, value)
                if inspect.isawaitable(result):
                    await result


class CoPartitionCheck:
    """Checked once, after the first assignment: every topic in ``topics`` has
    ``partitions`` partitions. On a mismatch the worker stops (``app.crash``) with an
    error naming each topic and its count; until it has stopped, records of a partition
    the join's state does not have fail with ``PartitionNotOwnedError`` rather than join
    wrongly. The check runs beside the rebalance, not in it: a slow metadata answer must
    not hold up recovery and consumption (it gives up, with a warning, after
    ``timeout`` seconds)."""

    def __init__(
        self,
        app: JoinHost,
        what: str,
        topics: Sequence[Topic],
        partitions: int,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.app = app
        self.what = what
        self.topics = tuple(topics)
        self.partitions = partitions
        self.timeout = timeout
        self.task: asyncio.Task[None] | None = None
        app.partitions_assigned_hooks.append(self.on_assigned)

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """On the first assignment, start the check in the background."""
        if self.task is None:
            self.task = asyncio.create_task(self.check(), name=f"co-partitioning: {self.what}")

    async def check(self) -> None:
        """Compare the partition counts; crash the app naming them when they differ (a check that
        cannot run is logged, not fatal)."""
        try:
            counts = await asyncio.wait_for(self._counts(), self.timeout)
        except Exception as exc:  # noqa: BLE001 - a check that cannot run must not stop work
            log.warning("%s: could not check co-partitioning: %r", self.what, exc)
            return
        wrong = {name: n for name, n in counts.items() if n != self.partitions}
        if wrong:
            listing = ", ".join(f"{name} has {n}" for name, n in sorted(counts.items()))
            error = CoPartitioningError(
                f"{self.what}: its inputs must be co-partitioned ({self.partitions} "
                f"partitions each, like its state), but {listing}; declare the topics with "
                "the same partitions= (or repartition one of them)"
            )
            log.error("%s", error)
            self.app.crash(error)

    async def _counts(self) -> dict[str, int]:
        admin = self.app.transport.admin()
        try:
            return {
                t.name: len((await admin.describe_topic(t.name)).partitions) for t in self.topics
            }
        finally:
            await admin.close()


def safe_name(text: str) -> str:
    """``text`` with only the characters Kafka allows in topic names (agents name their
    dead-letter topics after their function)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def common_partitions(app: JoinHost, what: str, *sources: Topic | Table) -> int:
    """The partition count the inputs declare (they must agree), else the app default."""
    declared: dict[str, int] = {}
    for source in sources:
        count = source.partitions
        if count:
            declared[source.name] = count
    if len(set(declared.values())) > 1:
        listing = ", ".join(f"{name} has {n}" for name, n in declared.items())
        raise CoPartitioningError(
            f"{what}: inputs must have the same number of partitions, but {listing}"
        )
    return next(iter(declared.values()), app.conf.topic_partitions)


class AppJoin:
    """What the three app-level joins share: the agents they declare, counters, outputs.

    Attributes for the topology and for people: ``name``, ``kind``, ``inputs`` (label and
    topic of each input: ``left``, ``right``, ``rekey``), ``tables`` (the state the join
    owns), ``agents``, ``outputs`` and ``stats``.
    """

    join_type = "join"

    def __init__(
        self,
        app: JoinHost,
        name: str,
        kind: str,
        joiner: Joiner | None,
        to: Outputs,
    ) -> None:
        self.app = app
        self.name = name
        self.kind = kind
        self.joiner: Joiner = joiner or default_joiner
        self.output = JoinOutput(app, to)
        self.stats = JoinStats()
        self.agents: list[Agent] = []
        self.tables: list[Table] = []
        self.inputs: list[tuple[str, Topic]] = []

    def __repr__(self) -> str:
        sides = " ".join(f"{label}={topic.name}" for label, topic in self.inputs)
        return f"<{type(self).__name__} {self.name} {self.kind} {sides}>"

    @property
    def outputs(self) -> tuple[Topic | Channel, ...]:
        """The topics and channels results go to."""
        return self.output.topics

    def add_sink(self, target: OutputTarget) -> None:
        """Also send every result to ``target`` (topic, name, channel, agent or callable)."""
        self.output.add(target)

    def declare_agent(
        self, topic: Topic, label: str, body: Callable[[Stream], Awaitable[None]]
    ) -> Agent:
        """Declare the agent that runs ``body`` over ``topic`` (one per input).

        The topology DSL may override this to wrap ``body`` in its node function.
        """

        async def run(stream: Stream) -> None:
            await body(stream)

        run.__name__ = run.__qualname__ = safe_name(f"{self.name}-{label}")
        run.__doc__ = f"{self.join_type} join {self.name}: the {label} input"
        agent = self.app.agent(topic, name=f"{self.join_type}-join:{self.name}:{label}")(run)
        self.agents.append(agent)
        self.inputs.append((label, topic))
        return agent
