"""Windowed tables: ``app.Table(...).tumbling()/.hopping()/.sliding()/.session()``.

Faust's API over Kafka Streams' event-time rules. A windowed table keeps one value per
(key, window); ``table[key] += 1`` adds to every window containing the event time, which
is the timestamp of the event the calling agent processes (``relative_to_stream``), the
app clock (``relative_to_now``) or a field of the event's value (``relative_to_field``).

Store layout (one store partition per table partition, see ``streamlog.state.windows``):

* tumbling, hopping and sliding windows: ``window_key(raw_key, start)`` -> the serialised
  value, for sliding windows prefixed by the latest record timestamp the window holds;
* sessions: ``window_key(raw_key, end)`` -> the session's start + the serialised value
  (keyed by end as in Kafka Streams: see ``window_kinds.Sessions``); prefixes are 8
  bytes, signed big-endian, and are what a restart rebuilds the in-memory indexes from;
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
when stream time passes the earliest due window (``window_kinds.DueQueue``s per
partition, so nothing scans the store per event); it holds the app's processing barrier,
so no commit runs while it writes. A wall-clock timer (``table_cleanup_interval``) moves
the stream time of partitions that saw no newer event for a whole interval by the wall
time that passed, so windows of sparse keys still close.

The per-event path (``+=``, ``current()``) serialises and hashes a key once per
``WindowSet`` and finds the partition's transaction through the table's cache; aligned
windows expire a due time's keys in one batch, without reading them back.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import operator
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from streamlog.dsl.agents.topics import Topic
from streamlog.dsl.errors import ImproperlyConfigured
from streamlog.dsl.runtime.context import current_event, current_timestamp_ms
from streamlog.dsl.windows.kinds import (
    CLOSE_PREFIX,
    MARK,
    STREAM_TIME_KEY,
    Kind,
    Op,
    PartitionWindows,
    SessionMergeError,
    WindowedTableError,
    kind_for,
    pack_time,
    unpack_time,
)
from streamlog.serde import field_name
from streamlog.state.changelog import changelog_configs
from streamlog.state.windows import (
    HoppingWindow,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    WindowRange,
    split_window_key,
    window_key_at,
    window_key_prefix,
)

if TYPE_CHECKING:
    from streamlog.dsl.runtime.events import Event
    from streamlog.dsl.tables.table import Table
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

# Kafka Streams' windowstore.changelog.additional.retention.ms: changelog records outlive
# their windows by a day, so clock skew between producers never deletes a live window.
_EXTRA_RETENTION_MS = 24 * 3600 * 1000

OnWindowClose = Callable[[Any, WindowRange, Any], Any]
OnLate = Callable[[Any, Any, int], Any]


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
    """The state a windowed table's views share: kind, partitions, callbacks, counters.

    The per-event path (``apply``, ``value_at``) takes a ``WindowSet``, which carries the
    key's serialised form, window-key prefix and partition once computed, so ``+=`` and
    ``.current()`` on one ``table[key]`` serialise and hash the key once.
    """

    def __init__(
        self,
        table: Table,
        kind: Kind,
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
        self.parts: dict[int, PartitionWindows] = {}
        self.late_events = 0
        self.closed_windows = 0
        self.expired_windows = 0
        self.close_errors = 0
        self.loads: Callable[[bytes], Any] = table._loads_value
        self._dumps = table._dumps_value
        self._default = table.default
        self._expire_delay = kind.expire_delay
        self._close_delay = kind.close_delay
        self._lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self._late_tasks: set[asyncio.Task[Any]] = set()

    # -- values -----------------------------------------------------------------------

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

    def stream_event_time(self, event: Event | None) -> int:
        """``relative_to_stream`` time: the event's (the current one's) record timestamp."""
        if event is not None:
            return event.message.timestamp_ms
        ts = current_timestamp_ms()
        return self.wall_ms() if ts is None else ts

    # -- the write path ---------------------------------------------------------------

    def locate(self, ref: WindowSet) -> bytes:
        """Serialise ``ref``'s key and find its partition, once per ``WindowSet``."""
        raw = self.table._window_raw_key(ref.key)
        ref._prefix = window_key_prefix(raw)
        ref._number = self.table._partition_of(raw)
        ref._raw = raw
        return raw

    def created(
        self, part: PartitionWindows, txn: PartitionTransaction, key: bytes, end: int
    ) -> None:
        """A window appeared (or a session changed its end): schedule its expiry/close."""
        part.expiry.push(end + self._expire_delay, key)
        if self.closing:
            txn.set(CLOSE_PREFIX + key, MARK)
            part.closing.push(end + self._close_delay, key)

    def apply(self, ref: WindowSet, ts: int, op: Op, operand: Any) -> bool:
        """Apply ``op`` (None: assign) with ``operand`` to ``ref``'s windows at ``ts``."""
        raw = ref._raw
        if raw is None:
            raw = self.locate(ref)
        number = ref._number
        txn = self.table._owned_transaction(number, raw)
        part = self.parts.get(number)
        if part is None:
            raise WindowedTableError(f"table {self.table.name}: partition {number} is not ready")
        st = part.stream_time
        if st is None or ts > st:
            part.stream_time = ts
            part.advanced_at = self.wall_ms()
            txn.set(STREAM_TIME_KEY, pack_time(ts))
            if part.expiry.head <= ts or part.closing.head <= ts:
                self._wake_if_due(part)
        if self.kind.apply(self, part, txn, raw, ref._prefix, ts, op, operand):
            return True
        self.late(ref.key, operand, ts)
        return False

    def _wake_if_due(self, part: PartitionWindows) -> None:
        st = part.stream_time
        if st is None or self._wake is None:
            return
        if part.expiry.head <= st or part.closing.head <= st:
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

    def value_at(self, ref: WindowSet, t: int) -> Any:
        """The value of ``ref``'s window at ``t`` (the default when there is none)."""
        raw = ref._raw
        if raw is None:
            raw = self.locate(ref)
        number = ref._number
        part = self.parts.get(number)
        data = None
        if part is None:
            self.table._check_owned(number, raw)
        else:  # a partition with windows is an owned one
            kind = self.kind
            at = kind.window_at(part, raw, t)
            if at is not None:
                data = self.table.reader(number, raw).get(window_key_at(ref._prefix, at))
                if data is not None:
                    st = part.stream_time
                    if st is not None and kind.window_end(at, data) + self._expire_delay <= st:
                        data = None  # expired: reads no longer show it
        if data is None:
            if self._default is None:
                raise KeyError(ref.key)
            return self._default()
        return self.loads(data[8:] if self.kind.header else data)

    def _expired(self, part: PartitionWindows, window: WindowRange) -> bool:
        st = part.stream_time
        return st is not None and window.end + self._expire_delay <= st

    def windows(self, raw: bytes | None = None) -> Iterator[tuple[bytes, WindowRange, bytes]]:
        """(raw key, window, payload) of live windows: one key's (``raw``) or all owned."""
        table = self.table
        numbers = table.active_partitions if raw is None else [table._partition_number(raw)]
        for number in numbers:
            part = self.parts.get(number)
            if part is None:
                continue
            txn = table.reader(number)
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
        part = PartitionWindows(number)
        data = store.get(STREAM_TIME_KEY)
        part.stream_time = None if data is None else unpack_time(data)
        part.advanced_at = self.wall_ms() if self.app.clock is not None else 0
        kind = self.kind
        expiry = part.expiry
        for key, value in store.items(end=CLOSE_PREFIX):
            raw, at = split_window_key(key)
            window = kind.rebuild(part, raw, at, value)
            expiry.push(window.end + self._expire_delay, key)
        kind.finish_rebuild(part)
        for marker, _ in store.items(prefix=CLOSE_PREFIX):
            key = marker[len(CLOSE_PREFIX) :]
            stored = store.get(key)
            _, at = split_window_key(key)
            end = at if stored is None else kind.window_end(at, stored)
            part.closing.push(end + self._close_delay, key)
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
                    txn = self.table._owned_transaction(number)
                    txn.set(STREAM_TIME_KEY, pack_time(part.stream_time))
        await self.process_due()

    async def process_due(self) -> None:
        async with self.processing():
            for number, part in list(self.parts.items()):
                if self.closing:
                    await self._close_due(number, part)
                self._expire_due(number, part)

    async def _close_due(self, number: int, part: PartitionWindows) -> None:
        kind = self.kind
        queue = part.closing
        while self.parts.get(number) is part:
            st = part.stream_time
            if st is None or queue.head > st:
                return
            key = queue.pop()
            txn = self.table._owned_transaction(number)
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
                self.table._owned_transaction(number).delete(marker)
            self.closed_windows += 1

    def _expire_due(self, number: int, part: PartitionWindows) -> None:
        st = part.stream_time
        queue = part.expiry
        if st is None or queue.head > st:
            return
        kind = self.kind
        txn = self.table._owned_transaction(number)
        while queue.head <= st:
            keys = queue.pop_bucket()
            if kind.unique_expiry:
                # every key is a live window (``Aligned``): delete the lot without reads
                if self.closing:
                    self._drop_close_markers(txn, keys)
                txn.delete_many(keys)
                self.expired_windows += len(keys)
                continue
            for key in keys:
                data = txn.get(key)
                if data is None:
                    continue  # merged into a larger session, or deleted already
                raw, at = split_window_key(key)
                txn.delete(key)
                if self.closing and txn.get(CLOSE_PREFIX + key) is not None:
                    txn.delete(CLOSE_PREFIX + key)
                kind.forget(part, raw, kind.range_of(at, data))
                self.expired_windows += 1

    @staticmethod
    def _drop_close_markers(txn: PartitionTransaction, keys: list[bytes]) -> None:
        """Delete the close markers still owed for ``keys`` (windows being expired)."""
        for key in keys:
            marker = CLOSE_PREFIX + key
            if txn.get(marker) is not None:
                txn.delete(marker)

    async def _emit(self, raw: bytes, window: WindowRange, payload: bytes) -> None:
        try:
            key = self.table._loads_key(raw)
            value = self.loads(payload)
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
        kind: Kind,
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
        self._core.apply(WindowSet(self, key), self._event_time(), None, value)

    def apply(self, key: Any, op: Callable[[Any, Any], Any], operand: Any) -> bool:
        """``value = op(value, operand)`` in every open window containing the event time.

        False when the event was late (dropped, counted, passed to ``on_late``).
        """
        return self._core.apply(WindowSet(self, key), self._event_time(), op, operand)

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
        from streamlog.dsl.tables.table import ansitable

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
        return unpack_time(data)

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

    The key's serialised form, window-key prefix and partition are computed on first use
    and kept (they depend on the key alone), so ``w = table[k]; w += 1; w.current()``
    serialises and hashes ``k`` once. Whether the partition is owned, and its open
    transaction, are looked up on every use.
    """

    __slots__ = ("_table", "_key", "_raw", "_prefix", "_number")

    def __init__(self, table: WindowedTable, key: Any) -> None:
        self._table = table
        self._key = key
        self._raw: bytes | None = None  # with _prefix and _number, set by _Core.locate
        self._prefix = b""
        self._number = 0

    @property
    def key(self) -> Any:
        return self._key

    def __repr__(self) -> str:
        return f"<WindowSet {self._table.name}[{self._key!r}]>"

    def apply(self, op: Callable[[Any, Any], Any], operand: Any) -> WindowSet:
        table = self._table
        table._core.apply(self, table._event_time(), op, operand)
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
        core = self._table._core
        return core.value_at(self, core.wall_ms())

    def current(self, event: Event | None = None) -> Any:
        """The value of the window containing the event's timestamp (the current event)."""
        core = self._table._core
        return core.value_at(self, core.stream_event_time(event))

    def value(self, event: Event | None = None) -> Any:
        """The value of the window containing the table's time (see ``relative_to_*``)."""
        table = self._table
        return table._core.value_at(self, table._event_time(event))

    def delta(self, d: Seconds, event: Event | None = None) -> Any:
        """The value of the window that held the table's time minus ``d`` seconds."""
        table = self._table
        return table._core.value_at(self, table._event_time(event) - _ms(d))

    def items(self) -> list[tuple[WindowRange, Any]]:
        """This key's live windows and values, oldest first."""
        table = self._table
        core = table._core
        raw = table.table._window_raw_key(self._key)
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
    if merge is not None and not isinstance(window, SessionWindow):
        raise ImproperlyConfigured("merge= is for session windows only")
    kind = kind_for(window, merge or _default_merge)
    return WindowedTable.declare(
        table, kind, on_window_close=on_window_close, on_late=on_late, idle_advance=idle_advance
    )
