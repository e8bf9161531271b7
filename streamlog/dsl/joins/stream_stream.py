"""Stream-stream windowed join: ``StreamStreamJoin(app, left, right, window=10, kind=...)``.

Two agents, one per input topic, share one table (``<name>-store``: both sides' buffers,
their match flags and the partition's stream time, laid out as ``joins_window_state``
describes). Each record is handled through the open transaction of the table partition
of the input partition it came from, so buffers are changelogged, committed with the
input offsets and recovered on assignment like any table. Both inputs must be
co-partitioned (same partition count, same key serialisation); the range assignor then
gives partition N of both topics to the same worker.

Results are written to ``to`` as ``(key, joiner(left, right))`` with the larger of the two
timestamps (an unmatched result: its own), and counted in ``stats``. The semantics of
windows, grace, late and null-key records are ``joins_window_state``'s.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamlog.dsl.agents.stream import Stream
from streamlog.dsl.agents.topics import Topic
from streamlog.dsl.errors import ImproperlyConfigured
from streamlog.dsl.joins.common import (
    JOIN_KINDS,
    AppJoin,
    CoPartitionCheck,
    Joiner,
    Outputs,
    call_joiner,
    check_kind,
    common_partitions,
    duration_ms,
    resolve_topic,
    safe_name,
)
from streamlog.dsl.joins.window_state import LEFT, RIGHT, JoinResult, JoinWindow, WindowedJoinState
from streamlog.dsl.runtime.events import Event
from streamlog.transport.types import TopicPartition

if TYPE_CHECKING:
    from streamlog.dsl.joins.host import JoinHost

__all__ = ["StreamStreamJoin", "Seconds", "WindowArg", "join_window"]

log = logging.getLogger(__name__)

Seconds = float | _dt.timedelta
WindowArg = Seconds | tuple[Seconds, Seconds]
"""``size`` (seconds or timedelta: ``before = after = size``, Kafka's ``JoinWindows.of``)
or ``(before, after)``."""


def join_window(window: WindowArg, grace: Seconds = 0) -> JoinWindow:
    """The window in milliseconds from Faust-style seconds or timedeltas."""
    if isinstance(window, tuple):
        if len(window) != 2:
            raise ImproperlyConfigured(f"a join window is size or (before, after), not {window!r}")
        before = duration_ms(window[0], "join window before")
        after = duration_ms(window[1], "join window after")
    else:
        before = after = duration_ms(window, "join window")
    return JoinWindow(before, after, duration_ms(grace, "join grace"))


class StreamStreamJoin(AppJoin):
    """Join two streams by key within a time window (see the module docstring).

    ``kind``: ``"inner"``, ``"left"`` or ``"outer"``. ``window``: seconds, a timedelta or
    ``(before, after)``; ``grace``: how far behind stream time a record may arrive and
    still join. ``on_late(event)`` (sync or async) sees each record dropped as late.
    ``store``: ``"rocksdb://"`` or ``"memory://"`` (default: the app's).
    """

    join_type = "stream-stream"

    def __init__(
        self,
        app: JoinHost,
        left: Topic | str,
        right: Topic | str,
        *,
        window: WindowArg,
        kind: str = "inner",
        grace: Seconds = 0,
        joiner: Joiner | None = None,
        to: Outputs = None,
        name: str | None = None,
        on_late: Callable[[Event], Any] | None = None,
        store: str | None = None,
    ) -> None:
        for source in (left, right):
            if not isinstance(source, Topic | str):
                raise ImproperlyConfigured(
                    f"stream-stream join: inputs are topics or topic names, not {source!r}"
                )
        left_topic = resolve_topic(app, left, "stream-stream join left")
        right_topic = resolve_topic(app, right, "stream-stream join right")
        check_kind(kind, JOIN_KINDS, "stream-stream join")
        join_name = safe_name(name or f"{left_topic.name}-{right_topic.name}-{kind}-join")
        super().__init__(app, join_name, kind, joiner, to)
        what = f"stream-stream join {join_name}"
        self.left_topic = left_topic
        self.right_topic = right_topic
        self.window = join_window(window, grace)
        self.on_late = on_late
        self.state = WindowedJoinState(self.window, kind)
        partitions = common_partitions(app, what, left_topic, right_topic)
        self.store = app.Table(
            f"{join_name}-store",
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
            store=store,
            help=f"buffers of {what}",
        )
        self.tables.append(self.store)
        self.copartitioning = CoPartitionCheck(app, what, (left_topic, right_topic), partitions)
        app.partitions_assigned_hooks.append(self._partitions_moved)
        app.partitions_revoked_hooks.append(self._partitions_moved)
        self.declare_agent(left_topic, "left", self._read_left)
        self.declare_agent(right_topic, "right", self._read_right)

    def _partitions_moved(self, partitions: set[TopicPartition]) -> None:
        # the store (recovered, or gone) is the truth about stream time now
        self.state.forget({tp.partition for tp in partitions})

    async def _read_left(self, stream: Stream) -> None:
        await self._read(stream, LEFT)

    async def _read_right(self, stream: Stream) -> None:
        await self._read(stream, RIGHT)

    async def _read(self, stream: Stream, side: bytes) -> None:
        stats = self.stats
        state = self.state
        store = self.store
        # keys are compared as the left topic serialises them, whatever the right one does
        dumps_key = self.left_topic.schema.dumps_key
        async for event in stream.events():
            message = event.message
            if side == LEFT:
                stats.records_left += 1
                key = message.key
            else:
                stats.records_right += 1
                key = None if event.key is None else dumps_key(event.key)
            outcome = state.process(
                store.transaction(message.partition),
                message.partition,
                side,
                key,
                message.value,
                message.timestamp_ms,
                message.offset,
            )
            if outcome.null_key:
                stats.null_keys += 1
            if outcome.dropped == "null_value":
                stats.null_values += 1
            elif outcome.dropped == "late":
                stats.late += 1
                log.debug("join %s: late record %s", self.name, event)
                if self.on_late is not None:
                    result = self.on_late(event)
                    if inspect.isawaitable(result):
                        await result
            for joined in outcome.results:
                await self._emit(joined)
            stats.completed += 1

    async def _emit(self, joined: JoinResult) -> None:
        left = None if joined.left is None else self.left_topic.schema.loads_value(joined.left)
        right = None if joined.right is None else self.right_topic.schema.loads_value(joined.right)
        key = None if joined.key is None else self.left_topic.schema.loads_key(joined.key)
        value = await call_joiner(self.joiner, left, right)
        stats = self.stats
        stats.results += 1
        if joined.left is None or joined.right is None:
            stats.unmatched += 1
        await self.output.emit(key, value, joined.timestamp)
