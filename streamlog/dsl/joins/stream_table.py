"""Stream-table join: enrich each stream record with a table's current value for its key.

Kafka Streams' ``KStream#join/leftJoin(KTable)``: the table is read as it is when the
record is processed (no versioned, as-of-timestamp lookups), and a table update never
produces a result by itself. Per record:

* a null value is dropped (counted in ``stats.null_values``);
* the lookup key is the record's key, or ``key(value)`` when a key extractor (a function,
  a Record field such as ``Order.user``, or a field name) is given;
* inner: no table value, no result. Left: ``joiner(value, None)``;
* a null lookup key (KIP-962, Kafka 3.7+): a left join emits ``joiner(value, None)``, an
  inner join drops the record; both count it in ``stats.null_keys``.

Results keep the stream record's key and timestamp.

Two ways to use it:

* in an agent: ``async for left, right in join_stream_table(stream, table, kind="left")``
  (the default joiner yields the pair; ``stream.current_event`` is the record joined);
* declared on the app: ``StreamTableJoin(app, orders, customers, kind="left", to=out)``
  declares the agent(s) and writes results to ``to``.

Co-partitioning: a table partition lives on the worker that owns the same partition of
its inputs, so the stream must be keyed, serialised and partitioned like the table (the
declared join checks the partition counts at start). With a key extractor and a
partitioned table, ``StreamTableJoin`` re-keys the stream through the repartition topic
``<app-id>-<name>-repartition`` (keys serialised as the table's), as Kafka Streams does
after ``selectKey``; the result key is then the lookup key. A ``GlobalTable`` holds every
partition everywhere, so it needs neither, and results keep the original key.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

from streamlog.dsl.agents.stream import Stream
from streamlog.dsl.agents.topics import Topic
from streamlog.dsl.errors import ImproperlyConfigured, JoinError
from streamlog.dsl.joins.common import (
    AppJoin,
    CoPartitionCheck,
    Joiner,
    JoinStats,
    Outputs,
    call_joiner,
    check_kind,
    default_joiner,
    key_getter,
    resolve_topic,
    safe_name,
)
from streamlog.dsl.runtime.events import Event
from streamlog.dsl.tables.kinds import GlobalTable
from streamlog.dsl.tables.table import Table

if TYPE_CHECKING:
    from streamlog.dsl.joins.host import JoinHost

__all__ = ["StreamTableJoin", "join_stream_table", "Lookup", "STREAM_TABLE_KINDS"]

log = logging.getLogger(__name__)

STREAM_TABLE_KINDS = ("inner", "left")
_DROP = object()


class Lookup(Protocol):
    """What a stream-table join reads: ``get(key)`` is the value or None (any table)."""

    def get(self, key: Any, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        ...


class _Enricher:
    """The per-record rule of the module docstring, shared by both ways of using it."""

    __slots__ = ("table", "kind", "key", "joiner", "stats")

    def __init__(
        self,
        table: Lookup,
        kind: str,
        key: Callable[[Any], Any] | None,
        joiner: Joiner,
        stats: JoinStats,
    ) -> None:
        if not callable(getattr(table, "get", None)):
            raise ImproperlyConfigured(f"stream-table join: {table!r} is not a table")
        self.table = table
        self.kind = check_kind(kind, STREAM_TABLE_KINDS, "stream-table join")
        self.key = key
        self.joiner = joiner
        self.stats = stats

    async def __call__(self, event: Event) -> Any:
        """The result for ``event``, or ``_DROP``."""
        stats = self.stats
        value = event.value
        if value is None:
            stats.null_values += 1
            return _DROP
        lookup = event.key if self.key is None else self.key(value)
        if lookup is None:
            stats.null_keys += 1
            if self.kind == "inner":
                return _DROP
            found = None
        else:
            found = self.table.get(lookup)
            if found is None and self.kind == "inner":
                return _DROP
        result = await call_joiner(self.joiner, value, found)
        stats.results += 1
        if found is None:
            stats.unmatched += 1
        return result


async def join_stream_table(
    stream: Stream,
    table: Lookup,
    *,
    kind: str = "inner",
    key: Any = None,
    joiner: Joiner | None = None,
    stats: JoinStats | None = None,
) -> AsyncIterator[Any]:
    """Inside an agent: each stream record joined with ``table`` (module docstring).

    Yields ``joiner(value, table_value)`` (default: the pair). Dropped records are
    acknowledged and counted in ``stats`` when one is given. The lookup happens on this
    worker: with ``key=``, the table must be a ``GlobalTable`` or the stream re-keyed so
    the keys are co-partitioned with the table.
    """
    enrich = _Enricher(table, kind, key_getter(key), joiner or default_joiner, stats or JoinStats())
    async for event in stream.events():
        enrich.stats.records_left += 1
        result = await enrich(event)
        enrich.stats.completed += 1
        if result is not _DROP:
            yield result


class StreamTableJoin(AppJoin):
    """A stream-table join declared on the app (see the module docstring).

    ``left``: the stream's topic (or name). ``right``: the table. ``kind``: ``"inner"``
    or ``"left"``. ``key``: a key extractor of the value (default: the record key).
    ``repartition``: re-key through a repartition topic first (default: when ``key`` is
    given and the table is partitioned).
    """

    join_type = "stream-table"

    def __init__(
        self,
        app: JoinHost,
        left: Topic | str,
        right: Table | Lookup,
        *,
        kind: str = "inner",
        key: Any = None,
        joiner: Joiner | None = None,
        to: Outputs = None,
        name: str | None = None,
        repartition: bool | None = None,
    ) -> None:
        if not isinstance(left, Topic | str):
            raise ImproperlyConfigured(
                f"stream-table join: the stream is a topic or a topic name, not {left!r}"
            )
        topic = resolve_topic(app, left, "stream-table join left")
        table_name = getattr(right, "name", type(right).__name__)
        join_name = safe_name(name or f"{topic.name}-{table_name}-{kind}-join")
        super().__init__(app, join_name, kind, joiner, to)
        what = f"stream-table join {join_name}"
        getter = key_getter(key)
        self.stream_topic = topic
        self.table = right
        partitioned = isinstance(right, Table) and not isinstance(right, GlobalTable)
        if repartition is None:
            repartition = getter is not None and partitioned
        self._enrich = _Enricher(right, kind, getter, self.joiner, self.stats)
        self.repartition_topic: Topic | None = None
        self._rekey_by: Callable[[Any], Any] | None = None
        if repartition:
            if getter is None or not isinstance(right, Table):
                raise ImproperlyConfigured(
                    f"{what}: repartitioning needs a key extractor (key=) and an app Table"
                )
            keys = right.changelog_topic
            # a Faust-style table keeps a key where the event that wrote it was read (a
            # topic keyed with the app's key serializer); a hash-placed one where its own
            # key bytes hash to: the repartition topic keys records the same way
            by_event = getattr(right, "key_placement", "hash") == "event"
            self.repartition_topic = topic.derive(
                f"{app.conf.id}-{join_name}-repartition",
                key_type=keys.key_type,
                key_serializer=None if by_event else keys.key_serializer,
                partitions=right.partitions,
                internal=True,
            )
            self._rekey_by = getter
            self._enrich.key = None  # stage two joins on the record key
            self.declare_agent(topic, "rekey", self._rekey)
            self.declare_agent(self.repartition_topic, "left", self._join)
            checked: Topic = self.repartition_topic
        else:
            self.declare_agent(topic, "left", self._join)
            checked = topic
        if isinstance(right, Table) and not isinstance(right, GlobalTable):
            self.copartitioning = CoPartitionCheck(app, what, (checked,), right.partitions)

    async def _rekey(self, stream: Stream) -> None:
        """Stage one: the record under its lookup key, on the table's partition for it."""
        stats = self.stats
        target, rekey_by = self.repartition_topic, self._rekey_by
        if target is None or rekey_by is None:  # this agent is declared only to re-key
            raise JoinError(f"{self.name}: re-keying without a repartition topic")
        dumps_key = target.schema.dumps_key
        app = self.app
        async for event in stream.events():
            stats.records_left += 1
            message = event.message
            if event.value is None:
                stats.null_values += 1
                stats.completed += 1
                continue
            new_key = rekey_by(event.value)
            if new_key is None and self.kind == "inner":
                stats.null_keys += 1
                stats.completed += 1
                continue
            await app.producer.send(
                target.name,
                message.value,
                key=dumps_key(new_key),
                headers=list(message.headers or ()),
                timestamp_ms=message.timestamp_ms,
            )

    async def _join(self, stream: Stream) -> None:
        stats = self.stats
        enrich = self._enrich
        emit = self.output.emit
        rekeyed = self.repartition_topic is not None
        async for event in stream.events():
            if not rekeyed:
                stats.records_left += 1
            result = await enrich(event)
            if result is not _DROP:
                await emit(event.key, result, event.message.timestamp_ms)
            stats.completed += 1
