"""Table-table join: a result table kept equal to ``join(left table, right table)``.

Kafka Streams' ``KTable#join/leftJoin/outerJoin(KTable)``. Each input is a table's
changelog stream: a topic whose records are ``key -> value`` updates and ``key -> None``
deletes (tombstones), or an app ``Table``, read through its changelog topic (so its
updates arrive once that table commits). The join keeps the latest value of each side
per key in a table of its own (``<name>-sides``) and the result in ``<name>``, a Table
people and agents can read (``join.table[key]``).

Every update on either side, a delete included, recomputes that key's result from both
sides' current values:

* inner: a result while both sides have a value;
* left: a result while the left side has one (``joiner(left, None)`` without a right);
* outer: a result while either side has one (``joiner(None, right)`` without a left).

A result is written to the result table and emitted; when the key has no result any
more (a side deleted, or the joiner returned None), the key is deleted from the result
table and a tombstone (value None) is emitted, only if it had a result: a delete that
changes nothing emits nothing. A result's timestamp is the larger of the two sides'
latest timestamps. Null keys are dropped (counted): a table has no null key.

Both inputs must be co-partitioned (checked at start). Updates of the two sides are
applied one at a time, so the emitted sequence per key matches the result table's.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from streamlog.dsl.agents.stream import Stream
from streamlog.dsl.agents.topics import Topic
from streamlog.dsl.errors import JoinError
from streamlog.dsl.joins.common import (
    JOIN_KINDS,
    AppJoin,
    CoPartitionCheck,
    Joiner,
    Outputs,
    call_joiner,
    check_kind,
    common_partitions,
    resolve_topic,
    safe_name,
)
from streamlog.dsl.tables.table import Table

if TYPE_CHECKING:
    from streamlog.dsl.joins.host import JoinHost

__all__ = ["TableTableJoin"]

_LEFT = b"L"
_RIGHT = b"R"


class TableTableJoin(AppJoin):
    """A table-table join declared on the app (see the module docstring).

    ``left``/``right``: topics (or names) of table updates, or app Tables. ``kind``:
    ``"inner"``, ``"left"`` or ``"outer"``. ``value_type``/``value_serializer``: how the
    result table stores results (default JSON). ``store``: the stores' kind.
    """

    join_type = "table-table"

    def __init__(
        self,
        app: JoinHost,
        left: Topic | str | Table,
        right: Topic | str | Table,
        *,
        kind: str = "inner",
        joiner: Joiner | None = None,
        to: Outputs = None,
        name: str | None = None,
        value_type: Any = None,
        value_serializer: Any = None,
        store: str | None = None,
    ) -> None:
        left_topic = resolve_topic(app, left, "table-table join left")
        right_topic = resolve_topic(app, right, "table-table join right")
        check_kind(kind, JOIN_KINDS, "table-table join")
        join_name = safe_name(name or f"{left_topic.name}-{right_topic.name}-{kind}-join")
        super().__init__(app, join_name, kind, joiner, to)
        what = f"table-table join {join_name}"
        self.left_topic = left_topic
        self.right_topic = right_topic
        partitions = common_partitions(app, what, left_topic, right_topic)
        self.sides = app.Table(
            f"{join_name}-sides",
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
            store=store,
            help=f"latest value of each side of {what}",
        )
        options: dict[str, Any] = {}
        if value_serializer is not None:
            options["value_serializer"] = value_serializer
        self.table = app.Table(
            join_name,
            key_type=left_topic.key_type,
            key_serializer=left_topic.key_serializer,
            value_type=value_type,
            partitions=partitions,
            store=store,
            help=f"result of {what}",
            **options,
        )
        self.tables += [self.sides, self.table]
        self.copartitioning = CoPartitionCheck(app, what, (left_topic, right_topic), partitions)
        self._lock = asyncio.Lock()
        self.declare_agent(left_topic, "left", self._read_left)
        self.declare_agent(right_topic, "right", self._read_right)

    async def _read_left(self, stream: Stream) -> None:
        await self._read(stream, _LEFT)

    async def _read_right(self, stream: Stream) -> None:
        await self._read(stream, _RIGHT)

    async def _read(self, stream: Stream, side: bytes) -> None:
        stats = self.stats
        dumps_key = self.left_topic.schema.dumps_key  # both sides' keys as the left's
        async for event in stream.events():
            message = event.message
            if side == _LEFT:
                stats.records_left += 1
            else:
                stats.records_right += 1
            if event.key is None:
                key = None
            else:
                key = message.key if side == _LEFT else dumps_key(event.key)
            if key is None:
                stats.null_keys += 1
            else:
                # one update at a time: the emitted order per key is the table's order
                async with self._lock:
                    await self._update(
                        side, key, message.value, message.timestamp_ms, message.partition
                    )
            stats.completed += 1

    async def _update(
        self, side: bytes, key: bytes, value: bytes | None, ts: int, partition: int
    ) -> None:
        sides = self.sides.transaction(partition)
        other = _RIGHT if side == _LEFT else _LEFT
        if value is None:
            sides.delete(side + key)
        else:
            sides.set(side + key, ts.to_bytes(8, "big", signed=True) + value)
        stored = sides.get(other + key)
        other_value = None if stored is None else stored[8:]
        if stored is not None:
            ts = max(ts, int.from_bytes(stored[:8], "big", signed=True))
        left, right = (value, other_value) if side == _LEFT else (other_value, value)
        if self.kind == "inner":
            present = left is not None and right is not None
        elif self.kind == "left":
            present = left is not None
        else:
            present = left is not None or right is not None
        result = None
        if present:
            result = await call_joiner(
                self.joiner,
                None if left is None else self.left_topic.schema.loads_value(left),
                None if right is None else self.right_topic.schema.loads_value(right),
            )
        results = self.table.transaction(partition)
        stats = self.stats
        if result is not None:
            data = self.table.changelog_topic.schema.dumps_value(result)
            if data is None:
                raise JoinError(f"{self.name}: the joiner's result {result!r} serialises to None")
            results.set(key, data)
            stats.results += 1
            if left is None or right is None:
                stats.unmatched += 1
        elif results.get(key) is not None:
            results.delete(key)
            stats.results += 1
            stats.tombstones += 1
        else:
            return
        await self.output.emit(self.left_topic.schema.loads_key(key), result, ts)
