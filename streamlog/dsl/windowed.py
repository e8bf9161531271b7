"""Windowed tables: ``app.Table(...).tumbling()/.hopping()/.sliding()/.session()``.

Faust's API over Kafka Streams' event-time rules. A windowed table keeps one value per
(key, window); ``table[key] += 1`` adds to every window containing the event time, which
is the timestamp of the event the calling agent processes (``relative_to_stream``), the
app clock (``relative_to_now``) or a field of the event's value (``relative_to_field``).

Store layout (one store partition per table partition, see ``streamlog.state.windows``):

* tumbling, hopping and sliding windows: ``window_key(raw_key, start)`` -> the serialised
  value, for sliding windows prefixed by the latest record timestamp the window holds;
* sessions: ``window_key(raw_key, end)`` -> the session's start + the serialised value
  (keyed by end as in Kafka Streams: see ``_Sessions``); prefixes are 8 bytes, signed
  big-endian, and are what a restart rebuilds the in-memory indexes from;
* ``CLOSE_PREFIX + window_key`` -> a marker while a window's final result is owed (only
  when ``on_window_close`` or ``emit_final`` is declared): it goes through the same
  transaction as the window, so a final result is emitted at least once across crashes;
* ``STREAM_TIME_KEY`` -> the partition's stream time, so lateness survives a restart.

Reserved keys start with ``0xfffffffe``/``0xffffffff``: as a window key's 4-byte length
that is a 4 GiB key, so no window key can collide with them.

Stream time is per table partition: the largest event time a write has seen. A write
whose windows are all closed at that stream time is late: dropped, counted
(``late_events``) and handed to ``on_late``. Closing (final results) and expiry (deleting
old windows, tombstoned in the changelog) run in one background task per table, woken
when stream time passes the earliest due window (a heap per partition, so nothing scans
the store per event); it holds the app's processing barrier, so no commit runs while it
writes. A wall-clock timer (``table_cleanup_interval``) moves the stream time of
partitions that saw no newer event for a whole interval by the wall time that passed,
so windows of sparse keys still close.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import inspect
import logging
import operator
import struct
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import TYPE_CHECKING, Any

from streamlog.dsl.context import current_event, current_timestamp_ms
from streamlog.dsl.errors import ImproperlyConfigured, StreamlogError
from streamlog.dsl.topics import Topic
from streamlog.serde import field_name
from streamlog.state.changelog import changelog_configs
from streamlog.state.windows import (
    HoppingWindow,
    Session,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    WindowRange,
    split_window_key,
    window_key,
    window_key_prefix,
)

if TYPE_CHECKING:
    from streamlog.dsl.events import Event
    from streamlog.dsl.tables import Table
    from streamlog.state.stores import StorePartition
    from streamlog.state.transaction import PartitionTransaction

__all__ = [
    "WindowedTable",
    "WindowSet",
    "WindowedTableError",
    "SessionMergeError",
    "Seconds",
    "to_window_ms",
    "make_windowed",
    "OnLate",
    "OnWindowClose",
    "STREAM_TIME_KEY",
    "CLOSE_PREFIX",
]

log = logging.getLogger(__name__)

Seconds = float | int | timedelta
"""Faust's durations: seconds (int or float) or a ``timedelta``."""

STREAM_TIME_KEY = b"\xff\xff\xff\xffstream-time"
CLOSE_PREFIX = b"\xff\xff\xff\xfe"
_MARK = b"\x01"
_I64 = struct.Struct(">q")
_pack = _I64.pack
_unpack_from = _I64.unpack_from
# Kafka Streams' windowstore.changelog.additional.retention.ms: changelog records outlive
# their windows by a day, so clock skew between producers never deletes a live window.
_EXTRA_RETENTION_MS = 24 * 3600 * 1000

Op = Callable[[Any, Any], Any] | None  # None: assignment
OnWindowClose = Callable[[Any, WindowRange, Any], Any]
OnLate = Callable[[Any, Any, int], Any]


class WindowedTableError(StreamlogError):
    """A windowed table used in a way that cannot work (named in the message)."""


class SessionMergeError(WindowedTableError):
    """Two sessions merged whose values have no default merge (pass ``merge=``)."""


def to_window_ms(value: Seconds, name: str) -> int | timedelta:
    """Faust's seconds (or a timedelta) as what ``streamlog.state.windows`` takes."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ImproperlyConfigured(f"{name} must be seconds (int/float) or a timedelta: {value!r}")
    return round(value * 1000)


def _ms(value: Seconds) -> int:
    if isinstance(value, timedelta):
        return value // timedelta(milliseconds=1)
    return round(value * 1000)


def _default_merge(left: Any, right: Any) -> Any:
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right)):
        return left + right
    raise SessionMergeError(
        f"cannot merge session values {left!r} and {right!r}: sessions that merge need a "
        "merge function for non-numbers, e.g. .session(gap, merge=lambda a, b: a | b)"
    )


# ---------------------------------------------------------------------- window kinds


@dataclass(slots=True)
class _Partition:
    """What the windowed layer keeps in memory for one table partition.

    ``expiry`` and ``closing`` are heaps of (due stream time, window key); entries may be
    stale (a session that grew, a window already deleted): they are checked when popped.
    """

    number: int
    stream_time: int | None = None
    advanced_at: int = 0  # app clock (ms) when stream time last moved
    expiry: list[tuple[int, bytes]] = field(default_factory=list)
    closing: list[tuple[int, bytes]] = field(default_factory=list)
    sessions: dict[bytes, list[Session]] = field(default_factory=dict)
    times: dict[bytes, list[int]] = field(default_factory=dict)  # sliding: record times


class _Aligned:
    """Tumbling and hopping windows: ``[start, start + size)``, epoch-aligned."""

    header = False

    def __init__(self, window: TumblingWindow | HoppingWindow) -> None:
        self.window = window
        self.close_delay = window.grace  # closed once stream time >= end + grace
        self.expire_delay = window.expires
        self.lifetime = window.size + window.expires

    def apply(
        self,
        core: _Core,
        part: _Partition,
        txn: PartitionTransaction,
        raw: bytes,
        ts: int,
        op: Op,
        operand: Any,
    ) -> bool:
        st = part.stream_time
        assert st is not None
        window = self.window
        applied = False
        for start, end in window.ranges(ts):
            if window.is_closed(end, st):
                continue
            key = window_key(raw, start)
            data = txn.get(key)
            if data is None:
                old = core.initial(op)
                core.created(part, txn, key, end)
            else:
                old = None if op is None else core.loads(data)
            txn.set(key, core.dumps(operand if op is None else op(old, operand)))
            applied = True
        return applied

    def range_of(self, start: int, data: bytes) -> WindowRange:
        return WindowRange(start, start + self.window.size)

    def window_at(self, part: _Partition, raw: bytes, t: int) -> int | None:
        return self.window.current(t).start

    def rebuild(self, part: _Partition, raw: bytes, start: int, data: bytes) -> WindowRange:
        return WindowRange(start, start + self.window.size)

    def forget(self, part: _Partition, raw: bytes, window: WindowRange) -> None:
        pass


class _Sliding:
    """Kafka Streams' sliding windows ``[start, start + size]`` (``SlidingWindow``).

    The key's distinct record timestamps are kept in memory (``_Partition.times``), as
    ``SlidingWindow.assign`` needs them; each stored value carries its window's latest
    record timestamp, from which a restart rebuilds them.
    """

    header = True

    def __init__(self, window: SlidingWindow) -> None:
        self.window = window
        self.close_delay = window.grace + 1  # closed once stream time > end + grace
        self.expire_delay = window.retention + 1
        self.lifetime = window.size + window.retention

    def apply(
        self,
        core: _Core,
        part: _Partition,
        txn: PartitionTransaction,
        raw: bytes,
        ts: int,
        op: Op,
        operand: Any,
    ) -> bool:
        window = self.window
        st = part.stream_time
        assert st is not None
        if not window.accepts(ts, st):
            return False
        size = window.size
        times = part.times.get(raw)
        if times is None:
            times = part.times[raw] = []
        low = bisect.bisect_left(times, ts - 2 * size)
        near = times[low : bisect.bisect_right(times, ts + size + 1, low)]
        assignment = window.assign(ts, near)
        bases: dict[int, tuple[int, bytes] | None] = {}
        for created in assignment.created:  # read every base before anything changes
            if created.base is not None and created.base not in bases:
                data = txn.get(window_key(raw, created.base))
                bases[created.base] = None if data is None else (_unpack_from(data)[0], data[8:])
        for start, _end in assignment.updated:
            key = window_key(raw, start)
            data = txn.get(key)
            if data is None:  # cannot happen for an accepted record; keep the table whole
                latest, old = ts, core.initial(op)
            else:
                latest = max(_unpack_from(data)[0], ts)
                old = None if op is None else core.loads(data[8:])
            value = operand if op is None else op(old, operand)
            txn.set(key, _pack(latest) + core.dumps(value))
        for created in assignment.created:
            base = bases.get(created.base) if created.base is not None else None
            if base is None and not created.contains_record:
                continue  # an empty window: nothing to keep
            if created.contains_record:
                if op is None:
                    payload = core.dumps(operand)
                else:
                    old = core.initial(op) if base is None else core.loads(base[1])
                    payload = core.dumps(op(old, operand))
                latest = ts if base is None else max(base[0], ts)
            else:
                assert base is not None
                latest, payload = base
            key = window_key(raw, created.start)
            txn.set(key, _pack(latest) + payload)
            core.created(part, txn, key, created.end)
        at = bisect.bisect_left(times, ts)
        if at == len(times) or times[at] != ts:
            times.insert(at, ts)
        return True

    def range_of(self, start: int, data: bytes) -> WindowRange:
        return WindowRange(start, start + self.window.size)

    def window_at(self, part: _Partition, raw: bytes, t: int) -> int | None:
        """The window holding exactly the records in ``[t - size, t]``, if any.

        With f and l the first and last such records and p the record before f: the
        window opened just after p when p is within ``size`` of f, else the window l
        closes. Neither holds a record outside ``[f, l]``.
        """
        times = part.times.get(raw)
        if not times:
            return None
        size = self.window.size
        lo = bisect.bisect_left(times, t - size)
        hi = bisect.bisect_right(times, t)
        if lo == hi:
            return None
        if lo > 0 and times[lo] - times[lo - 1] <= size:
            return times[lo - 1] + 1
        return times[hi - 1] - size

    def rebuild(self, part: _Partition, raw: bytes, start: int, data: bytes) -> WindowRange:
        part.times.setdefault(raw, []).append(_unpack_from(data)[0])
        return WindowRange(start, start + self.window.size)

    def finish_rebuild(self, part: _Partition) -> None:
        for raw, times in part.times.items():
            part.times[raw] = sorted(set(times))

    def forget(self, part: _Partition, raw: bytes, window: WindowRange) -> None:
        end = window.end
        # a window ending at a record time is that record's own window [r - size, r]:
        # once it expired, no accepted record can need r again
        times = part.times.get(raw)
        if times:
            at = bisect.bisect_left(times, end)
            if at < len(times) and times[at] == end:
                del times[at]
                if not times:
                    del part.times[raw]


class _Sessions:
    """Session windows, stored under (key, session end) as Kafka Streams does.

    A closed session is final: a record never merges into one, even while it still sits
    in the store. A record joins the open sessions within ``gap`` of it, and is late
    when the session they form is closed. A session's end is unique among the key's
    sessions (open ones do not overlap, and every open session ends after every closed
    one), so keying by end never overwrites a session whose final result is owed. The
    key's sessions are kept in memory, rebuilt from the store on assignment.
    """

    header = True

    def __init__(self, window: SessionWindow, merge: Callable[[Any, Any], Any] | None) -> None:
        self.window = window
        self.merge = merge or _default_merge
        self.close_delay = window.gap + window.grace + 1  # closed: st > end + gap + grace
        self.expire_delay = window.expires + 1
        self.lifetime = window.expires

    def apply(
        self,
        core: _Core,
        part: _Partition,
        txn: PartitionTransaction,
        raw: bytes,
        ts: int,
        op: Op,
        operand: Any,
    ) -> bool:
        window = self.window
        st = part.stream_time
        assert st is not None
        sessions = part.sessions.get(raw, ())
        low, high = window.search_range(ts)
        candidates = [
            s
            for s in sessions
            if s.end >= low and s.start <= high and not window.is_closed(s.end, st)
        ]
        new, replaced = window.merge(candidates, ts)
        if window.is_closed(new.end, st):
            return False
        if op is None:
            value = operand
        else:
            olds = [core.loads(_payload(txn.get(window_key(raw, s.end)))) for s in replaced]
            base = reduce(self.merge, olds) if olds else core.initial(op)
            value = op(base, operand)
        key = window_key(raw, new.end)
        for old in replaced:
            if old.end != new.end:
                old_key = window_key(raw, old.end)
                txn.delete(old_key)
                if core.closing:
                    txn.delete(CLOSE_PREFIX + old_key)
        txn.set(key, _pack(new.start) + core.dumps(value))
        if replaced != [new]:
            kept = [s for s in sessions if s not in replaced]
            kept.append(new)
            kept.sort()
            part.sessions[raw] = kept
            if not replaced or replaced[-1].end != new.end:
                core.created(part, txn, key, new.end)
        return True

    def range_of(self, end: int, data: bytes) -> WindowRange:
        start: int = _unpack_from(data)[0]
        return WindowRange(start, end)

    def window_at(self, part: _Partition, raw: bytes, t: int) -> int | None:
        """The end (store key) of the latest-ending session containing ``t``."""
        found = [s.end for s in part.sessions.get(raw, ()) if s.start <= t <= s.end]
        return max(found) if found else None

    def rebuild(self, part: _Partition, raw: bytes, end: int, data: bytes) -> WindowRange:
        window = self.range_of(end, data)
        part.sessions.setdefault(raw, []).append(Session(*window))
        return window

    def finish_rebuild(self, part: _Partition) -> None:
        for sessions in part.sessions.values():
            sessions.sort()

    def forget(self, part: _Partition, raw: bytes, window: WindowRange) -> None:
        sessions = part.sessions.get(raw)
        if sessions:
            kept = [s for s in sessions if s.end != window.end]
            if kept:
                part.sessions[raw] = kept
            else:
                del part.sessions[raw]


_Kind = _Aligned | _Sliding | _Sessions


def _payload(data: bytes | None) -> bytes:
    if data is None:
        raise WindowedTableError("a session in the index is missing from the store")
    return data[8:]


# ---------------------------------------------------------------------- shared state


def _three_arguments(callback: Callable[..., Any] | None) -> OnWindowClose | None:
    """``on_window_close`` as (key, window, value); Faust's (``(key, window), value``) too."""
    if callback is None:
        return None
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return callback
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) == 2 and not any(p.kind is p.VAR_POSITIONAL for p in parameters):
        faust_style = callback
        return lambda key, window, value: faust_style((key, window), value)
    return callback


class _Core:
    """The state a windowed table's views share: kind, partitions, callbacks, counters."""

    def __init__(
        self,
        table: Table,
        kind: _Kind,
        *,
        on_window_close: OnWindowClose | None,
        on_late: OnLate | None,
        idle_advance: bool,
    ) -> None:
        self.table = table
        self.app = table.app
        self.kind = kind
        self.on_window_close = _three_arguments(on_window_close)
        self.on_late = on_late
        self.idle_advance = idle_advance
        self.emit_targets: list[Any] = []
        self.closing = on_window_close is not None
        self.parts: dict[int, _Partition] = {}
        self.late_events = 0
        self.closed_windows = 0
        self.expired_windows = 0
        self.close_errors = 0
        self._loads = table._loads_value
        self._dumps = table._dumps_value
        self._default = table.default
        self._lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self._late_tasks: set[asyncio.Task[Any]] = set()

    # -- values -----------------------------------------------------------------------

    def loads(self, data: bytes) -> Any:
        return self._loads(data)

    def dumps(self, value: Any) -> bytes:
        data = self._dumps(value)
        if data is None:
            raise ValueError(f"table {self.table.name}: None is not a window value")
        return data

    def initial(self, op: Op) -> Any:
        if op is None:
            return None
        if self._default is None:
            raise KeyError(f"table {self.table.name} has no default= to start a window from")
        return self._default()

    def payload(self, data: bytes) -> bytes:
        return data[8:] if self.kind.header else data

    def wall_ms(self) -> int:
        clock = self.app.clock
        if clock is None:
            raise WindowedTableError("windowed tables need a running app (the app clock)")
        return clock.time_ms()

    # -- the write path ---------------------------------------------------------------

    def created(self, part: _Partition, txn: PartitionTransaction, key: bytes, end: int) -> None:
        """A window appeared (or a session changed its end): schedule its expiry/close."""
        kind = self.kind
        heapq.heappush(part.expiry, (end + kind.expire_delay, key))
        if self.closing:
            txn.set(CLOSE_PREFIX + key, _MARK)
            heapq.heappush(part.closing, (end + kind.close_delay, key))

    def apply(self, key: Any, ts: int, op: Op, operand: Any) -> bool:
        """Apply ``op`` (None: assign) with ``operand`` to ``key``'s windows at ``ts``."""
        table = self.table
        raw = table._window_raw_key(key)
        number = table._partition_number(raw)
        part = self.parts.get(number)
        if part is None:
            raise WindowedTableError(f"table {table.name}: partition {number} is not ready")
        txn = table._partition_transaction(number)
        st = part.stream_time
        if st is None or ts > st:
            part.stream_time = ts
            part.advanced_at = self.wall_ms()
            txn.set(STREAM_TIME_KEY, _pack(ts))
            self._wake_if_due(part)
        if self.kind.apply(self, part, txn, raw, ts, op, operand):
            return True
        self.late(key, operand, ts)
        return False

    def _wake_if_due(self, part: _Partition) -> None:
        st = part.stream_time
        if st is None or self._wake is None:
            return
        if (part.expiry and part.expiry[0][0] <= st) or (part.closing and part.closing[0][0] <= st):
            self._wake.set()

    def late(self, key: Any, value: Any, ts: int) -> None:
        self.late_events += 1
        log.debug("table %s: late event for %r at %d dropped", self.table.name, key, ts)
        hook = self.on_late
        if hook is None:
            return
        result = hook(key, value, ts)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._late_tasks.add(task)
            task.add_done_callback(self._late_done)

    def _late_done(self, task: asyncio.Task[Any]) -> None:
        self._late_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("table %s: on_late failed: %r", self.table.name, task.exception())

    # -- reads ------------------------------------------------------------------------

    def value_at(self, key: Any, t: int) -> Any:
        table = self.table
        raw = table._window_raw_key(key)
        number = table._partition_number(raw)
        part = self.parts.get(number)
        data = None
        if part is not None:
            at = self.kind.window_at(part, raw, t)
            if at is not None:
                data = table._partition_transaction(number).get(window_key(raw, at))
                if data is not None and self._expired(part, self.kind.range_of(at, data)):
                    data = None
        if data is None:
            if self._default is None:
                raise KeyError(key)
            return self._default()
        return self._loads(self.payload(data))

    def _expired(self, part: _Partition, window: WindowRange) -> bool:
        st = part.stream_time
        return st is not None and window.end + self.kind.expire_delay <= st

    def windows(self, raw: bytes | None = None) -> Iterator[tuple[bytes, WindowRange, bytes]]:
        """(raw key, window, payload) of live windows: one key's (``raw``) or all owned."""
        table = self.table
        numbers = table.active_partitions if raw is None else [table._partition_number(raw)]
        for number in numbers:
            part = self.parts.get(number)
            if part is None:
                continue
            txn = table._partition_transaction(number)
            if raw is None:
                found = txn.items(end=CLOSE_PREFIX)
            else:
                found = txn.items(prefix=window_key_prefix(raw))
            range_of = self.kind.range_of
            for key, data in found:
                k, at = split_window_key(key)
                window = range_of(at, data)
                if not self._expired(part, window):
                    yield k, window, self.payload(data)

    # -- partitions -------------------------------------------------------------------

    def partition_ready(self, number: int, store: StorePartition) -> None:
        """Rebuild a recovered partition's in-memory state (one scan per assignment)."""
        part = _Partition(number)
        data = store.get(STREAM_TIME_KEY)
        part.stream_time = None if data is None else _unpack_from(data)[0]
        part.advanced_at = self.wall_ms() if self.app.clock is not None else 0
        kind = self.kind
        for key, value in store.items(end=CLOSE_PREFIX):
            raw, at = split_window_key(key)
            window = kind.rebuild(part, raw, at, value)
            part.expiry.append((window.end + kind.expire_delay, key))
        if not isinstance(kind, _Aligned):
            kind.finish_rebuild(part)
        for marker, _ in store.items(prefix=CLOSE_PREFIX):
            key = marker[len(CLOSE_PREFIX) :]
            stored = store.get(key)
            _, at = split_window_key(key)
            end = at if stored is None else kind.range_of(at, stored).end
            part.closing.append((end + kind.close_delay, key))
        heapq.heapify(part.expiry)
        heapq.heapify(part.closing)
        self.parts[number] = part
        self._wake_if_due(part)

    def partition_revoked(self, number: int) -> None:
        self.parts.pop(number, None)

    def closed(self) -> None:
        self.parts.clear()
        self._lock = None
        self._wake = None

    # -- closing and expiry (background) ------------------------------------------------

    @asynccontextmanager
    async def processing(self) -> AsyncIterator[None]:
        """Hold the app's processing barrier (no commit meanwhile) and this table's lock."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            barrier = self.app.barrier
            if barrier is None:
                yield
                return
            while not barrier.gate.is_set():
                await barrier.gate.wait()
            barrier.enter()
            try:
                yield
            finally:
                barrier.leave()

    async def run_closer(self) -> None:
        """The background task: close and expire whatever stream time made due."""
        self._wake = wake = asyncio.Event()
        while True:
            wake.clear()
            try:
                await self.process_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged; the next wake-up retries
                log.error("table %s: closing windows failed: %r", self.table.name, exc)
            await wake.wait()

    async def tick(self) -> None:
        """The wall-clock timer: advance idle partitions' stream time, then close/expire."""
        if self.idle_advance and self.parts:
            interval = _ms(self.app.conf.table_cleanup_interval)
            async with self.processing():
                now = self.wall_ms()
                for number, part in list(self.parts.items()):
                    idle = now - part.advanced_at
                    if part.stream_time is None or idle < interval:
                        continue
                    part.stream_time += idle
                    part.advanced_at = now
                    txn = self.table._partition_transaction(number)
                    txn.set(STREAM_TIME_KEY, _pack(part.stream_time))
        await self.process_due()

    async def process_due(self) -> None:
        async with self.processing():
            for number, part in list(self.parts.items()):
                if self.closing:
                    await self._close_due(number, part)
                self._expire_due(number, part)

    async def _close_due(self, number: int, part: _Partition) -> None:
        kind = self.kind
        heap = part.closing
        while heap and self.parts.get(number) is part:
            st = part.stream_time
            if st is None or heap[0][0] > st:
                return
            _, key = heapq.heappop(heap)
            txn = self.table._partition_transaction(number)
            marker = CLOSE_PREFIX + key
            if txn.get(marker) is None:
                continue  # emitted already, or the window merged away
            data = txn.get(key)
            if data is None:
                txn.delete(marker)
                continue
            raw, at = split_window_key(key)
            await self._emit(raw, kind.range_of(at, data), self.payload(data))
            if self.parts.get(number) is part:
                self.table._partition_transaction(number).delete(marker)
            self.closed_windows += 1

    def _expire_due(self, number: int, part: _Partition) -> None:
        st = part.stream_time
        heap = part.expiry
        if st is None or not heap or heap[0][0] > st:
            return
        kind = self.kind
        txn = self.table._partition_transaction(number)
        while heap and heap[0][0] <= st:
            _, key = heapq.heappop(heap)
            data = txn.get(key)
            if data is None:
                continue  # merged into a larger session, or deleted already
            raw, at = split_window_key(key)
            txn.delete(key)
            if self.closing and txn.get(CLOSE_PREFIX + key) is not None:
                txn.delete(CLOSE_PREFIX + key)
            kind.forget(part, raw, kind.range_of(at, data))
            self.expired_windows += 1

    async def _emit(self, raw: bytes, window: WindowRange, payload: bytes) -> None:
        try:
            key = self.table._loads_key(raw)
            value = self._loads(payload)
            if self.on_window_close is not None:
                result = self.on_window_close(key, window, value)
                if inspect.isawaitable(result):
                    await result
            last_ms = window.end if self.kind.header else window.end - 1
            for target in self.emit_targets:
                record = {"start": window.start, "end": window.end, "value": value}
                if isinstance(target, Topic):
                    schema = target.schema
                    await self.app.producer.send(
                        target.name,
                        schema.dumps_value(record),
                        key=schema.dumps_key(key),
                        timestamp_ms=last_ms,
                    )
                else:
                    await target.send(key=key, value=record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one failing window must not stop the rest
            self.close_errors += 1
            log.error(
                "table %s: final result of window %s failed: %r",
                self.table.name,
                tuple(window),
                exc,
                exc_info=exc,
            )


# ---------------------------------------------------------------------- public API


def _field_time_ms(value: Any) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return round(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WindowedTableError(
            f"relative_to_field: {value!r} is not a time (seconds since the epoch or a datetime)"
        )
    return round(value * 1000)


def _field_reader(fld: Any) -> Callable[[Any], Any]:
    if callable(fld) and not isinstance(fld, str):
        try:
            name = field_name(fld)
        except TypeError:
            return fld  # a function of the value
    else:
        name = field_name(fld)
    getter = operator.attrgetter(name)
    parts = name.split(".")

    def read(value: Any) -> Any:
        if isinstance(value, Mapping):
            for part in parts:
                value = value[part]
            return value
        return getter(value)

    return read


class WindowedTable:
    """A table with one value per (key, window); see the module docstring.

    Made by ``Table.tumbling/hopping/sliding/session``; ``relative_to_*`` return views of
    the same state that take event time from elsewhere. ``table[key]`` is a ``WindowSet``.
    """

    def __init__(self, core: _Core, time: tuple[str, Callable[[Any], Any] | None]) -> None:
        self._core = core
        self._time = time
        self.table = core.table
        self.window = core.kind.window
        self.name = core.table.name

    def __repr__(self) -> str:
        return f"<WindowedTable {self.name} {self.window!r} relative_to={self._time[0]}>"

    # -- declaration ------------------------------------------------------------------

    @classmethod
    def declare(
        cls,
        table: Table,
        kind: _Kind,
        *,
        on_window_close: OnWindowClose | None,
        on_late: OnLate | None,
        idle_advance: bool,
    ) -> WindowedTable:
        if table.windowed is not None:
            raise ImproperlyConfigured(f"table {table.name} is windowed already")
        if table.app.started:
            raise ImproperlyConfigured(f"table {table.name}: declare windows before the app starts")
        core = _Core(
            table, kind, on_window_close=on_window_close, on_late=on_late, idle_advance=idle_advance
        )
        table.changelog_topic.config = changelog_configs(
            retention_ms=kind.lifetime + _EXTRA_RETENTION_MS
        )
        view = cls(core, ("stream", None))
        table.windowed = view
        app = table.app
        app.task(core.run_closer)
        app.timer(app.conf.table_cleanup_interval, name=f"table {table.name}: idle windows")(
            core.tick
        )
        return view

    def emit_final(self, target: Any) -> WindowedTable:
        """Send each window's final value to ``target`` once it closes (returns self).

        ``target`` is a topic (object or name), a channel or an agent. Each record has the
        table key as key and ``{"start": ms, "end": ms, "value": v}`` as value; on a topic
        its timestamp is the window's last millisecond. Declare before the app starts.
        """
        core = self._core
        if core.app.started:
            raise ImproperlyConfigured(f"table {self.name}: declare emit_final before the start")
        core.emit_targets.append(core.app.topic(target) if isinstance(target, str) else target)
        core.closing = True
        return self

    def relative_to_now(self) -> WindowedTable:
        """A view whose event time is the app clock (processing time)."""
        return WindowedTable(self._core, ("now", None))

    def relative_to_stream(self) -> WindowedTable:
        """A view whose event time is the current event's timestamp (the default)."""
        return WindowedTable(self._core, ("stream", None))

    def relative_to_field(self, fld: Any) -> WindowedTable:
        """A view whose event time is a field of the current event's value.

        ``fld`` is a Record field (``Order.created``), a field name (dotted for nested
        values, also read from dicts) or a function of the value. The field holds seconds
        since the epoch (int or float, as Faust) or a ``datetime`` (naive means UTC).
        """
        return WindowedTable(self._core, ("field", _field_reader(fld)))

    # -- time -------------------------------------------------------------------------

    def _event_time(self, event: Event | None = None) -> int:
        kind, reader = self._time
        if kind == "stream":
            if event is not None:
                return event.message.timestamp_ms
            ts = current_timestamp_ms()
            return self._core.wall_ms() if ts is None else ts
        if kind == "now":
            return self._core.wall_ms()
        if event is None:
            event = current_event()
        if event is None:
            raise WindowedTableError(
                f"table {self.name}: relative_to_field needs an event being processed"
            )
        assert reader is not None
        return _field_time_ms(reader(event.value))

    # -- dict-like API ----------------------------------------------------------------

    def __getitem__(self, key: Any) -> WindowSet:
        return WindowSet(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, WindowSet):
            return  # ``table[k] += v`` already applied the change to every window
        self._core.apply(key, self._event_time(), None, value)

    def apply(self, key: Any, op: Callable[[Any, Any], Any], operand: Any) -> bool:
        """``value = op(value, operand)`` in every open window containing the event time.

        False when the event was late (dropped, counted, passed to ``on_late``).
        """
        return self._core.apply(key, self._event_time(), op, operand)

    def items(self) -> Iterator[tuple[tuple[Any, WindowRange], Any]]:
        """((key, window), value) of every live window in the partitions owned here."""
        core = self._core
        loads_key = self.table._loads_key
        for raw, window, payload in core.windows():
            yield (loads_key(raw), window), core.loads(payload)

    def keys(self) -> Iterator[tuple[Any, WindowRange]]:
        for key, _ in self.items():
            yield key

    def values(self) -> Iterator[Any]:
        for _, value in self.items():
            yield value

    def __iter__(self) -> Iterator[tuple[Any, WindowRange]]:
        return self.keys()

    def __len__(self) -> int:
        return sum(1 for _ in self._core.windows())

    def as_dict(self) -> dict[tuple[Any, WindowRange], Any]:
        return dict(self.items())

    def as_ansitable(self, *, title: str | None = None, sort: bool = True, limit: int = 0) -> str:
        from streamlog.dsl.tables import ansitable

        close = "]" if self._core.kind.header else ")"
        rows = [(repr(k), f"[{w.start}, {w.end}{close}", repr(v)) for (k, w), v in self.items()]
        if sort:
            rows.sort()
        if limit:
            rows = rows[:limit]
        return ansitable(title or self.name, ("KEY", "WINDOW", "VALUE"), rows)

    # -- state and counters -----------------------------------------------------------

    @property
    def late_events(self) -> int:
        """Events dropped because every window they belong to had closed."""
        return self._core.late_events

    @property
    def closed_windows(self) -> int:
        """Windows whose final result was handed to ``on_window_close``/``emit_final``."""
        return self._core.closed_windows

    @property
    def close_errors(self) -> int:
        """Final results whose ``on_window_close`` or ``emit_final`` send raised."""
        return self._core.close_errors

    @property
    def expired_windows(self) -> int:
        """Windows deleted from the store (and tombstoned in the changelog) by expiry."""
        return self._core.expired_windows

    def decode_stored(self, key: bytes, data: bytes) -> tuple[bytes, WindowRange, bytes] | None:
        """(raw key, window, serialised value) of a stored entry, None for reserved keys.

        For tools that read a store or the changelog without a running app.
        """
        if key >= CLOSE_PREFIX:
            return None
        raw, at = split_window_key(key)
        return raw, self._core.kind.range_of(at, data), self._core.payload(data)

    def is_expired(self, window: WindowRange, stream_time: int | None) -> bool:
        """True when ``window`` is gone at ``stream_time`` (reads no longer show it)."""
        return stream_time is not None and window.end + self._core.kind.expire_delay <= stream_time

    @staticmethod
    def decode_stream_time(data: bytes) -> int:
        """The value stored under ``STREAM_TIME_KEY``."""
        value: int = _unpack_from(data)[0]
        return value

    def stream_time(self, partition: int) -> int | None:
        """Partition ``partition``'s stream time (ms), None before its first event."""
        part = self._core.parts.get(partition)
        return None if part is None else part.stream_time

    async def process_due(self) -> None:
        """Close and expire what stream time has made due, now (outside agents).

        The background task does this by itself; tests and shutdown hooks call it to
        know it is done.
        """
        await self._core.process_due()


class WindowSet:
    """``table[key]`` of a windowed table: Faust's windowed-value view.

    In-place operators (``+=``, ``-=``, ...) change every open window containing the event
    time; ``now()``, ``current()``, ``value()`` and ``delta(s)`` read one window.
    """

    __slots__ = ("_table", "key")

    def __init__(self, table: WindowedTable, key: Any) -> None:
        self._table = table
        self.key = key

    def __repr__(self) -> str:
        return f"<WindowSet {self._table.name}[{self.key!r}]>"

    def apply(self, op: Callable[[Any, Any], Any], operand: Any) -> WindowSet:
        self._table.apply(self.key, op, operand)
        return self

    def __iadd__(self, other: Any) -> WindowSet:
        return self.apply(operator.add, other)

    def __isub__(self, other: Any) -> WindowSet:
        return self.apply(operator.sub, other)

    def __imul__(self, other: Any) -> WindowSet:
        return self.apply(operator.mul, other)

    def __itruediv__(self, other: Any) -> WindowSet:
        return self.apply(operator.truediv, other)

    def __ifloordiv__(self, other: Any) -> WindowSet:
        return self.apply(operator.floordiv, other)

    def __imod__(self, other: Any) -> WindowSet:
        return self.apply(operator.mod, other)

    def __ipow__(self, other: Any) -> WindowSet:
        return self.apply(operator.pow, other)

    def __ilshift__(self, other: Any) -> WindowSet:
        return self.apply(operator.lshift, other)

    def __irshift__(self, other: Any) -> WindowSet:
        return self.apply(operator.rshift, other)

    def __iand__(self, other: Any) -> WindowSet:
        return self.apply(operator.and_, other)

    def __ixor__(self, other: Any) -> WindowSet:
        return self.apply(operator.xor, other)

    def __ior__(self, other: Any) -> WindowSet:
        return self.apply(operator.or_, other)

    def now(self) -> Any:
        """The value of the window containing the app clock's time."""
        table = self._table
        return table._core.value_at(self.key, table._core.wall_ms())

    def current(self, event: Event | None = None) -> Any:
        """The value of the window containing the event's timestamp (the current event)."""
        table = self._table
        return table._core.value_at(self.key, table.relative_to_stream()._event_time(event))

    def value(self, event: Event | None = None) -> Any:
        """The value of the window containing the table's time (see ``relative_to_*``)."""
        table = self._table
        return table._core.value_at(self.key, table._event_time(event))

    def delta(self, d: Seconds, event: Event | None = None) -> Any:
        """The value of the window that held the table's time minus ``d`` seconds."""
        table = self._table
        return table._core.value_at(self.key, table._event_time(event) - _ms(d))

    def items(self) -> list[tuple[WindowRange, Any]]:
        """This key's live windows and values, oldest first."""
        table = self._table
        core = table._core
        raw = table.table._window_raw_key(self.key)
        return [(w, core.loads(p)) for _, w, p in core.windows(raw)]

    def as_dict(self) -> dict[WindowRange, Any]:
        return dict(self.items())


def make_windowed(
    table: Table,
    window: TumblingWindow | HoppingWindow | SlidingWindow | SessionWindow,
    *,
    merge: Callable[[Any, Any], Any] | None = None,
    on_window_close: OnWindowClose | None = None,
    on_late: OnLate | None = None,
    idle_advance: bool = True,
) -> WindowedTable:
    """Make ``table`` windowed by ``window`` (what ``Table.tumbling`` and friends call)."""
    kind: _Kind
    if isinstance(window, SessionWindow):
        kind = _Sessions(window, merge)
    elif merge is not None:
        raise ImproperlyConfigured("merge= is for session windows only")
    elif isinstance(window, SlidingWindow):
        kind = _Sliding(window)
    else:
        kind = _Aligned(window)
    return WindowedTable.declare(
        table, kind, on_window_close=on_window_close, on_late=on_late, idle_advance=idle_advance
    )
