"""Windowed tables: ``app.Table(...).tumbling()/.hopping()/.sliding()/.session()``.

Faust's API over Kafka Streams' event-time rules. A windowed table keeps one value per
(key, window); ``table[key] += 1`` adds to every window containing the event time, which
is the timestamp of the event the calling agent processes (``relative_to_stream``), the
app clock (``relative_to_now``) or a field of the event's value (``relative_to_field``).

The room's parts: this module is the API (``WindowedTable``, ``WindowSet``,
``make_windowed``); ``engine.py`` the shared state and per-event path; ``closer.py``
closing and expiry in the background; ``kinds/`` the per-kind rules (``WindowKind``);
``due.py`` the scheduling. The store layout is ``streamlog.state.window_store``'s.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from streamlog.dsl.durations import Seconds, to_ms
from streamlog.dsl.errors import ImproperlyConfigured, SessionMergeError, WindowedTableError
from streamlog.dsl.runtime.context import current_event, current_timestamp_ms
from streamlog.dsl.tables.text import ansitable
from streamlog.dsl.windows.closer import WindowCloser
from streamlog.dsl.windows.engine import OnLate, OnWindowClose, WindowEngine
from streamlog.dsl.windows.kinds import WindowKind, kind_for
from streamlog.serde import field_name
from streamlog.state.changelog import changelog_configs
from streamlog.state.window_store import (
    is_reserved,
    split_window_key,
    unpack_time,
    window_key_prefix,
)
from streamlog.state.windows import (
    NEVER_MS,
    HoppingWindow,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    WindowRange,
)

if TYPE_CHECKING:
    from streamlog.dsl.runtime.events import Event
    from streamlog.dsl.tables.table import Table
    from streamlog.dsl.windows.host import WindowsHost

__all__ = [
    "WindowedTable",
    "WindowSet",
    "make_windowed",
    "OnLate",
    "OnWindowClose",
]

# Kafka Streams' windowstore.changelog.additional.retention.ms: changelog records outlive
# their windows by a day, so clock skew between producers never deletes a live window.
_EXTRA_RETENTION_MS = 24 * 3600 * 1000


def _default_merge(left: Any, right: Any) -> Any:
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right)):
        return left + right
    raise SessionMergeError(
        f"cannot merge session values {left!r} and {right!r}: sessions that merge need a "
        "merge function for non-numbers, e.g. .session(gap, merge=lambda a, b: a | b)"
    )


def _three_arguments(
    callback: Callable[..., Any] | None, *, inclusive_end: bool
) -> OnWindowClose | None:
    """``on_window_close`` as (key, window, value); Faust's (``(key, window), value``) too,
    given the window as Faust's float seconds."""
    if callback is None:
        return None
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return callback
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) == 2 and not any(p.kind is p.VAR_POSITIONAL for p in parameters):
        faust_style = callback
        if inclusive_end:  # sliding, sessions: no Faust counterpart; seconds, bounds as they are
            return lambda key, w, value: faust_style((key, (w.start / 1000, w.end / 1000)), value)
        return lambda key, window, value: faust_style((key, faust_range(window)), value)
    return callback


def faust_range(window: WindowRange) -> tuple[float, float]:
    """A window as Faust hands it to its callbacks: float seconds, ``end`` 0.1 s before
    the next window's start (Faust's ``WindowRange_from_start``)."""
    return (window.start / 1000, window.end / 1000 - 0.1)


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

    def __init__(
        self,
        engine: WindowEngine,
        closer: WindowCloser,
        time: tuple[str, Callable[[Any], Any] | None],
    ) -> None:
        self._engine = engine
        self._closer = closer
        self._time = time
        self._by_stream = time[0] == "stream"  # the default, checked first per event
        self.table = engine.table
        self.window = engine.kind.window
        self.name = engine.table.name

    def __repr__(self) -> str:
        return f"<WindowedTable {self.name} {self.window!r} relative_to={self._time[0]}>"

    # -- declaration ------------------------------------------------------------------

    @classmethod
    def declare(
        cls,
        host: WindowsHost,
        table: Table,
        kind: WindowKind,
        *,
        on_window_close: OnWindowClose | None,
        on_late: OnLate | None,
        idle_advance: bool,
    ) -> WindowedTable:
        if table.windowed is not None:
            raise ImproperlyConfigured(f"table {table.name} is windowed already")
        if host.started:
            raise ImproperlyConfigured(f"table {table.name}: declare windows before the app starts")
        engine = WindowEngine(
            host,
            table,
            kind,
            on_window_close=on_window_close,
            on_late=on_late,
            idle_advance=idle_advance,
        )
        closer = WindowCloser(engine)
        table.changelog_topic.config = changelog_configs(
            # windows that never expire (Faust's, declared without expires) keep their
            # changelog records for ever too: compacted only
            retention_ms=None if kind.lifetime >= NEVER_MS else kind.lifetime + _EXTRA_RETENTION_MS
        )
        view = cls(engine, closer, ("stream", None))
        table.attach_windowed(view, engine)
        host.task(closer.run)
        host.timer(host.conf.table_cleanup_interval, name=f"table {table.name}: idle windows")(
            closer.tick
        )
        return view

    def emit_final(self, target: Any) -> WindowedTable:
        """Send each window's final value to ``target`` once it closes (returns self).

        ``target`` is a topic (object or name), a channel or an agent. Each record has the
        table key as key and ``{"start": ms, "end": ms, "value": v}`` as value; on a topic
        its timestamp is the window's last millisecond. Declare before the app starts.
        """
        engine = self._engine
        if engine.app.started:
            raise ImproperlyConfigured(f"table {self.name}: declare emit_final before the start")
        engine.emit_targets.append(engine.app.topic(target) if isinstance(target, str) else target)
        engine.closing = True
        return self

    def relative_to_now(self) -> WindowedTable:
        """A view whose event time is the app clock (processing time)."""
        return WindowedTable(self._engine, self._closer, ("now", None))

    def relative_to_stream(self) -> WindowedTable:
        """A view whose event time is the current event's timestamp (the default)."""
        return WindowedTable(self._engine, self._closer, ("stream", None))

    def relative_to_field(self, fld: Any) -> WindowedTable:
        """A view whose event time is a field of the current event's value.

        ``fld`` is a Record field (``Order.created``), a field name (dotted for nested
        values, also read from dicts) or a function of the value. The field holds seconds
        since the epoch (int or float, as Faust) or a ``datetime`` (naive means UTC).
        """
        return WindowedTable(self._engine, self._closer, ("field", _field_reader(fld)))

    # -- time -------------------------------------------------------------------------

    def _event_time(self, event: Event | None = None) -> int:
        if self._by_stream and event is None:  # the common case, first
            ts = current_timestamp_ms()
            return self._engine.wall_ms() if ts is None else ts
        kind, reader = self._time
        if kind == "stream":
            if event is not None:
                return event.message.timestamp_ms
            ts = current_timestamp_ms()
            return self._engine.wall_ms() if ts is None else ts
        if kind == "now":
            return self._engine.wall_ms()
        if event is None:
            event = current_event()
        if event is None:
            raise WindowedTableError(
                f"table {self.name}: relative_to_field needs an event being processed"
            )
        if reader is None:  # "field" views are made with their reader
            raise WindowedTableError(f"table {self.name}: relative_to_field without a field")
        return _field_time_ms(reader(event.value))

    # -- dict-like API ----------------------------------------------------------------

    def __getitem__(self, key: Any) -> WindowSet:
        return WindowSet(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, WindowSet):
            return  # ``table[k] += v`` already applied the change to every window
        self._engine.apply(WindowSet(self, key), self._event_time(), None, value)

    def windows_at(self, key: Any, t_ms: int, partition: int) -> list[tuple[WindowRange, Any]]:
        """Every live window of ``key`` containing ``t_ms``, with its value, oldest first,
        read in table ``partition`` (where the caller located the key: away from an event
        the key's own hash may not be its home). For interactive queries (``/tables/``)."""
        ref = WindowSet(self, key)
        raw = self.table.key_bytes(key)
        ref.place = (raw, window_key_prefix(raw), partition)
        return self._engine.values_containing(ref, t_ms)

    def wall_ms(self) -> int:
        """The app clock's time in epoch ms (the "current" window of a query)."""
        return self._engine.wall_ms()

    def apply(self, key: Any, op: Callable[[Any, Any], Any], operand: Any) -> bool:
        """``value = op(value, operand)`` in every open window containing the event time.

        False when the event was late (dropped, counted, passed to ``on_late``).
        """
        return self._engine.apply(WindowSet(self, key), self._event_time(), op, operand)

    def items(self) -> Iterator[tuple[tuple[Any, WindowRange], Any]]:
        """((key, window), value) of every live window in the partitions owned here."""
        engine = self._engine
        loads_key = self.table.schema.loads_key
        for raw, window, payload in engine.windows():
            yield (loads_key(raw), window), engine.loads(payload)

    def keys(self) -> Iterator[tuple[Any, WindowRange]]:
        for key, _ in self.items():
            yield key

    def values(self) -> Iterator[Any]:
        for _, value in self.items():
            yield value

    def __iter__(self) -> Iterator[tuple[Any, WindowRange]]:
        return self.keys()

    def __len__(self) -> int:
        return sum(1 for _ in self._engine.windows())

    def as_dict(self) -> dict[tuple[Any, WindowRange], Any]:
        return dict(self.items())

    def as_ansitable(self, *, title: str | None = None, sort: bool = True, limit: int = 0) -> str:
        close = "]" if self._engine.kind.header else ")"
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
        return self._engine.late_events

    @property
    def closed_windows(self) -> int:
        """Windows whose final result was handed to ``on_window_close``/``emit_final``."""
        return self._engine.closed_windows

    @property
    def close_errors(self) -> int:
        """Final results whose ``on_window_close`` or ``emit_final`` send raised."""
        return self._engine.close_errors

    @property
    def expired_windows(self) -> int:
        """Windows deleted from the store (and tombstoned in the changelog) by expiry."""
        return self._engine.expired_windows

    def decode_stored(self, key: bytes, data: bytes) -> tuple[bytes, WindowRange, bytes] | None:
        """(raw key, window, serialised value) of a stored entry, None for reserved keys.

        For tools that read a store or the changelog without a running app.
        """
        if is_reserved(key):
            return None
        raw, at = split_window_key(key)
        return raw, self._engine.kind.range_of(at, data), self._engine.payload(data)

    def is_expired(self, window: WindowRange, stream_time: int | None) -> bool:
        """True when ``window`` is gone at ``stream_time`` (reads no longer show it)."""
        delay = self._engine.kind.expire_delay
        return stream_time is not None and window.end + delay <= stream_time

    @staticmethod
    def decode_stream_time(data: bytes) -> int:
        """The value stored under ``STREAM_TIME_KEY``."""
        return unpack_time(data)

    def stream_time(self, partition: int) -> int | None:
        """Partition ``partition``'s stream time (ms), None before its first event."""
        part = self._engine.parts.get(partition)
        return None if part is None else part.stream_time

    async def process_due(self) -> None:
        """Close and expire what stream time has made due, now (outside agents).

        The background task does this by itself; tests and shutdown hooks call it to
        know it is done.
        """
        await self._closer.process_due()


class WindowSet:
    """``table[key]`` of a windowed table: Faust's windowed-value view.

    In-place operators (``+=``, ``-=``, ...) change every open window containing the event
    time; ``now()``, ``current()``, ``value()`` and ``delta(s)`` read one window.

    ``key`` is the table key (read it; the view stays bound to the key it was made for).
    ``place`` is what the engine computed from it on first use and keeps (it depends on
    the key alone): the serialised key, its window-key prefix and its table partition
    (``WindowEngine.place_of``), so ``w = table[k]; w += 1; w.current()`` serialises and
    hashes ``k`` once. Whether the partition is owned, and its open transaction, are
    looked up on every use.
    """

    __slots__ = ("_table", "key", "place")

    def __init__(self, table: WindowedTable, key: Any) -> None:
        self._table = table
        self.key = key
        self.place: tuple[bytes, bytes, int] | None = None

    def __repr__(self) -> str:
        return f"<WindowSet {self._table.name}[{self.key!r}]>"

    def apply(self, op: Callable[[Any, Any], Any], operand: Any) -> WindowSet:
        table = self._table
        table._engine.apply(self, table._event_time(), op, operand)
        return self

    def __iadd__(self, other: Any) -> WindowSet:
        # ``apply`` inline, and the table's time for the default (stream) view: ``+=`` is
        # the common update
        table = self._table
        engine = table._engine
        if table._by_stream:
            ts = current_timestamp_ms()
            if ts is None:
                ts = engine.wall_ms()
        else:
            ts = table._event_time()
        engine.apply(self, ts, operator.add, other)
        return self

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
        engine = self._table._engine
        return engine.value_at(self, engine.wall_ms())

    def current(self, event: Event | None = None) -> Any:
        """The value of the window containing the event's timestamp (the current event)."""
        engine = self._table._engine
        if event is None:  # ``stream_event_time`` inline: the common case
            t = current_timestamp_ms()
            return engine.value_at(self, engine.wall_ms() if t is None else t)
        return engine.value_at(self, engine.stream_event_time(event))

    def current_windows(self, event: Event | None = None) -> list[tuple[WindowRange, Any]]:
        """Every live window of the key containing the event's timestamp, with its
        value, oldest first (what ``current()`` reads is one of them).

        Kafka Streams forwards every window an event updates; this is that set, read
        after ``+=``. "N events within W" is a sliding window whose count reaches N,
        and an event that arrives out of order may complete a window ending after it,
        which ``current()`` (the window ``[t - size, t]``) does not show. For hopping
        windows these are the windows the event went to (closed ones included while
        stored); for sessions, the session holding it.
        """
        engine = self._table._engine
        if event is None:
            t = current_timestamp_ms()
            return engine.values_containing(self, engine.wall_ms() if t is None else t)
        return engine.values_containing(self, engine.stream_event_time(event))

    def value(self, event: Event | None = None) -> Any:
        """The value of the window containing the table's time (see ``relative_to_*``)."""
        table = self._table
        return table._engine.value_at(self, table._event_time(event))

    def delta(self, d: Seconds, event: Event | None = None) -> Any:
        """The value of the window that held the table's time minus ``d`` seconds."""
        table = self._table
        return table._engine.value_at(self, table._event_time(event) - to_ms(d, "delta"))

    def items(self) -> list[tuple[WindowRange, Any]]:
        """This key's live windows and values, oldest first."""
        table = self._table
        engine = table._engine
        raw = table.table.key_bytes(self.key)
        return [(w, engine.loads(p)) for _, w, p in engine.windows(raw)]

    def as_dict(self) -> dict[WindowRange, Any]:
        return dict(self.items())


def make_windowed(
    host: WindowsHost,
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
        host,
        table,
        kind,
        on_window_close=_three_arguments(on_window_close, inclusive_end=kind.header),
        on_late=on_late,
        idle_advance=idle_advance,
    )
