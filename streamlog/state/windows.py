"""Event-time window assignment: which windows a record belongs to, and when they close.

Pure arithmetic, no I/O and no clock: every function takes the times it needs. All times
are integers in epoch milliseconds. "Stream time" is the largest record timestamp the
caller has seen (per partition, as in Kafka Streams); it is what closes and expires
windows, never the wall clock.

The four kinds, with Faust's names and Kafka Streams' semantics:

- ``TumblingWindow(size)``: back-to-back windows ``[start, start + size)``, half-open.
- ``HoppingWindow(size, step)``: overlapping windows ``[start, start + size)``, half-open,
  a new one every ``step``.
- ``SlidingWindow(size)``: Kafka Streams' ``SlidingWindows``: windows ``[start, end]``
  *inclusive at both ends*, ``end - start == size``, one per distinct set of records that
  fit in such a span. (Faust's ``SlidingWindow(before, after)`` is a different thing.)
- ``SessionWindow(gap)``: records closer than ``gap`` share a session ``(start, end)``,
  inclusive of its first and last record's timestamp.

Window starts are aligned to the epoch (``start % step == 0``), as in Kafka, so every
worker and every restart puts a record in the same windows. Timestamps before the epoch
are handled by the same arithmetic (Kafka instead clips windows at zero).

Windowed tables store one value per (key, window start); ``window_key`` encodes that pair
so that RocksDB's byte order keeps each key's windows together and in time order.
"""

from __future__ import annotations

import bisect
import itertools
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NamedTuple

from streamlog.state.errors import StateError, WindowConfigError, WindowKeyError

__all__ = [
    "NEVER_MS",
    "Duration",
    "WindowConfigError",
    "WindowKeyError",
    "WindowRange",
    "TumblingWindow",
    "HoppingWindow",
    "SlidingWindow",
    "SlidingCreation",
    "SlidingAssignment",
    "Session",
    "SessionWindow",
    "window_key",
    "window_key_prefix",
    "window_key_at",
    "split_window_key",
]

Duration = int | timedelta
"""A span of time: an int of milliseconds, or a ``timedelta`` of whole milliseconds."""


NEVER_MS = 1 << 53
"""A grace or expiry that never comes: Faust's windows declared without ``expires`` take
events and stay in the store for ever (end + NEVER_MS still fits a signed 8-byte time)."""


class WindowRange(NamedTuple):
    """One window's bounds in epoch ms; whether ``end`` is inclusive depends on the kind."""

    start: int
    end: int


def _to_ms(value: Duration, name: str, *, allow_zero: bool) -> int:
    if isinstance(value, timedelta):
        micros = value // timedelta(microseconds=1)
        if micros % 1000:
            raise WindowConfigError(f"{name}={value!r} is not a whole number of milliseconds")
        ms = micros // 1000
    elif isinstance(value, int) and not isinstance(value, bool):
        ms = value
    else:
        raise WindowConfigError(f"{name} must be int milliseconds or a timedelta, not {value!r}")
    if ms < 0 or (ms == 0 and not allow_zero):
        raise WindowConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {ms}")
    return ms


class _EpochAligned:
    """Shared arithmetic of tumbling and hopping windows: ``[k*step, k*step + size)``.

    A window closes when stream time reaches ``end + grace``: a record for it arriving
    after that is late and dropped (Kafka Streams' rule). It expires, and may be deleted
    from the store, when stream time reaches ``end + expires``; ``expires >= grace``, so a
    window is never deleted while it can still take records, and ``expires - grace`` is
    how long a closed window stays queryable (Faust's ``delta()`` reads earlier windows,
    which is why the default keeps one more window length after the grace period).
    """

    __slots__ = ()
    size: int
    step: int
    grace: int
    expires: int

    def ranges(self, ts: int) -> list[WindowRange]:
        """Every window containing ``ts``, oldest first."""
        last = ts - ts % self.step
        # windows start at last, last - step, ... while start + size > ts
        older = (last - ts + self.size - 1) // self.step
        first = last - older * self.step
        return [WindowRange(s, s + self.size) for s in range(first, last + 1, self.step)]

    def current(self, ts: int) -> WindowRange:
        """The newest window containing ``ts`` (the only one, for tumbling windows)."""
        start = ts - ts % self.step
        return WindowRange(start, start + self.size)

    def earliest(self, ts: int) -> WindowRange:
        """The oldest window containing ``ts``."""
        return self.ranges(ts)[0]

    def delta(self, ts: int, d: Duration) -> WindowRange:
        """The window that was current ``d`` before ``ts`` (Faust's ``.delta()`` view)."""
        return self.current(ts - _to_ms(d, "d", allow_zero=True))

    def is_closed(self, window_end: int, stream_time: int) -> bool:
        """True once no record may be added to the window ending at ``window_end``."""
        return stream_time >= window_end + self.grace

    def earliest_open(self, stream_time: int) -> int:
        """Start of the oldest window still open at ``stream_time``.

        A record is on time for exactly the windows in ``ranges(ts)`` that start at or
        after this; if none do, the record is late.
        """
        # open means start + size + grace > stream_time
        bound = stream_time - self.size - self.grace
        return bound - bound % self.step + self.step

    def open_ranges(self, ts: int, stream_time: int) -> list[WindowRange]:
        """The windows containing ``ts`` that may still take it at ``stream_time``."""
        return [w for w in self.ranges(ts) if not self.is_closed(w.end, stream_time)]

    def expired(self, window_end: int, stream_time: int) -> bool:
        """True once the window ending at ``window_end`` may be deleted from the store."""
        return stream_time >= window_end + self.expires

    def expiry_cutoff(self, stream_time: int) -> int:
        """Windows starting before this have expired; a store deletes them by key range."""
        return stream_time - self.expires - self.size + 1


def _expires(expires: Duration | None, default: int, grace: int) -> int:
    if expires is None:
        return default
    ms = _to_ms(expires, "expires", allow_zero=True)
    if ms < grace:
        raise WindowConfigError(
            f"expires={ms} is shorter than grace={grace}: windows would be deleted while open"
        )
    return ms


@dataclass(frozen=True, slots=True, init=False)
class HoppingWindow(_EpochAligned):
    """Windows of ``size`` starting every ``step`` (``0 < step <= size``), half-open.

    A record belongs to ``ceil(size / step)`` windows or one fewer when ``step`` does not
    divide ``size``. ``expires`` defaults to ``size + grace``.
    """

    size: int
    step: int
    grace: int
    expires: int

    def __init__(
        self,
        size: Duration,
        step: Duration,
        expires: Duration | None = None,
        grace: Duration = 0,
    ) -> None:
        size_ms = _to_ms(size, "size", allow_zero=False)
        step_ms = _to_ms(step, "step", allow_zero=False)
        if step_ms > size_ms:
            raise WindowConfigError(f"step={step_ms} is larger than size={size_ms}")
        grace_ms = _to_ms(grace, "grace", allow_zero=True)
        object.__setattr__(self, "size", size_ms)
        object.__setattr__(self, "step", step_ms)
        object.__setattr__(self, "grace", grace_ms)
        object.__setattr__(self, "expires", _expires(expires, size_ms + grace_ms, grace_ms))


@dataclass(frozen=True, slots=True, init=False)
class TumblingWindow(_EpochAligned):
    """Back-to-back windows ``[k*size, (k+1)*size)``; each record is in exactly one.

    A hopping window whose step equals its size. ``expires`` defaults to ``size + grace``.
    """

    size: int
    grace: int
    expires: int
    step: int = field(repr=False, compare=False)  # always == size

    def __init__(
        self, size: Duration, expires: Duration | None = None, grace: Duration = 0
    ) -> None:
        size_ms = _to_ms(size, "size", allow_zero=False)
        grace_ms = _to_ms(grace, "grace", allow_zero=True)
        object.__setattr__(self, "size", size_ms)
        object.__setattr__(self, "step", size_ms)
        object.__setattr__(self, "grace", grace_ms)
        object.__setattr__(self, "expires", _expires(expires, size_ms + grace_ms, grace_ms))


class SlidingCreation(NamedTuple):
    """A window a record brings into being.

    Its aggregate starts as a copy of window ``base``'s aggregate, read *before* the
    record is applied anywhere (``base`` may be among the windows being updated), or as
    the empty aggregate when ``base`` is None. Then the record is added when
    ``contains_record``: the window that opens just after a record does not contain it.
    """

    start: int
    end: int
    base: int | None
    contains_record: bool


class SlidingAssignment(NamedTuple):
    """What one record does to a key's sliding windows: create some, add itself to others."""

    created: tuple[SlidingCreation, ...]
    updated: tuple[WindowRange, ...]


@dataclass(frozen=True, slots=True, init=False)
class SlidingWindow:
    """Kafka Streams' sliding windows: ``[start, start + size]``, inclusive at both ends.

    For a key whose distinct record timestamps are R, the windows are

    - ``[r - size, r]`` for every r in R (the window a record closes), and
    - ``[r + 1, r + 1 + size]`` for every r in R followed within ``size`` by another
      record (the window that opens just after r),

    which are exactly the distinct non-empty sets of records that one span of ``size``
    can hold; records within ``size`` of each other share windows. A window's aggregate
    covers the records with ``start <= ts <= end``.

    Aggregates are combined, never subtracted, so a new window copies an existing window
    holding the same records (``SlidingCreation.base``). That makes two rules:

    - Late records: a record is dropped once its own window ``[ts - size, ts]`` has closed
      (``not accepts(ts, stream_time)``). Every window containing an accepted record is
      then still open, so no stored aggregate ever misses an accepted record and copies
      stay exact. Kafka Streams also adds such a record to the later windows still open;
      streamlog does not, because a copy taken from an already-closed window would lose it.
    - Retention: ``assign`` needs the key's record timestamps within
      ``[ts - 2*size, ts + size + 1]``. A store that keeps each window's latest record
      timestamp beside its aggregate (as Kafka Streams does) has them, since each record
      is the latest of its own window ``[r - size, r]``, provided windows are kept until
      ``expired`` says otherwise (``retention`` after their end).
    """

    size: int
    grace: int

    def __init__(self, size: Duration, grace: Duration = 0) -> None:
        object.__setattr__(self, "size", _to_ms(size, "size", allow_zero=False))
        object.__setattr__(self, "grace", _to_ms(grace, "grace", allow_zero=True))

    @property
    def retention(self) -> int:
        """How long after its (inclusive) end a window must stay in the store."""
        return self.grace + 2 * self.size

    def windows(self, record_times: Iterable[int]) -> list[WindowRange]:
        """All windows over a key's record timestamps, by start (end inclusive)."""
        starts = self._starts(sorted(set(record_times)))
        return [WindowRange(s, s + self.size) for s in sorted(starts)]

    def assign(self, ts: int, record_times: Iterable[int]) -> SlidingAssignment:
        """The windows a new record at ``ts`` creates and the existing ones it joins.

        ``record_times`` are the timestamps of the key's earlier records (duplicates and
        ones outside ``[ts - 2*size, ts + size + 1]`` are ignored). ``updated`` lists
        existing windows that now contain ``ts``; ``created`` lists new windows with the
        window to copy from. A timestamp already present creates nothing.
        """
        size = self.size
        low, high = ts - 2 * size, ts + size + 1
        times = sorted({t for t in record_times if low <= t <= high})
        old = sorted(self._starts(times))
        updated = tuple(WindowRange(s, s + size) for s in old if s <= ts <= s + size)
        at = bisect.bisect_left(times, ts)
        if at < len(times) and times[at] == ts:
            return SlidingAssignment((), updated)
        new = self._starts([*times[:at], ts, *times[at:]])
        old_set = set(old)
        created = []
        for start in sorted(new - old_set):
            first = bisect.bisect_left(times, start)
            past = bisect.bisect_right(times, start + size)
            base: int | None = None
            if first < past:
                # Every span starting in [latest - size, start] that passes no earlier
                # record holds the same records; the newest existing window in that
                # interval is such a span (it is the window opened by the record just
                # before the first one, or the window closed by the latest).
                latest = times[past - 1]
                base = old[bisect.bisect_right(old, start) - 1]
                if not latest - size <= base <= start:
                    raise StateError(
                        f"sliding window at {start}: the window it copies, at {base}, is "
                        f"outside [{latest - size}, {start}] (record {ts})"
                    )
            created.append(SlidingCreation(start, start + size, base, start <= ts))
        return SlidingAssignment(tuple(created), updated)

    def accepts(self, ts: int, stream_time: int) -> bool:
        """False for a late record: its window ``[ts - size, ts]`` has closed."""
        return not self.is_closed(ts, stream_time)

    def is_closed(self, window_end: int, stream_time: int) -> bool:
        """True once stream time has passed ``window_end + grace`` (``end`` inclusive)."""
        return stream_time > window_end + self.grace

    def expired(self, window_end: int, stream_time: int) -> bool:
        """True once the window may be deleted: no accepted record can need it again."""
        return stream_time > window_end + self.retention

    def _starts(self, times: Sequence[int]) -> set[int]:
        """Window starts over sorted, distinct timestamps."""
        size = self.size
        starts = {t - size for t in times}
        starts.update(prev + 1 for prev, nxt in itertools.pairwise(times) if nxt - prev <= size)
        return starts


class Session(NamedTuple):
    """A session's first and last record timestamps, both inclusive."""

    start: int
    end: int


@dataclass(frozen=True, slots=True, init=False)
class SessionWindow:
    """Sessions: records at most ``gap`` apart belong to the same session.

    A session ``(start, end)`` closes when stream time passes ``end + gap + grace``: no
    on-time record can reach it after that. It expires when stream time passes
    ``end + expires`` (default and minimum ``gap + grace``, so a session is deleted as
    soon as it can no longer grow). Keyed in a store by (key, start): a key's sessions do
    not overlap, so start order is also end order and an expiry scan can stop at the
    first live one.
    """

    gap: int
    grace: int
    expires: int

    def __init__(self, gap: Duration, grace: Duration = 0, expires: Duration | None = None) -> None:
        gap_ms = _to_ms(gap, "gap", allow_zero=False)
        grace_ms = _to_ms(grace, "grace", allow_zero=True)
        expires_ms = _expires(expires, gap_ms + grace_ms, gap_ms + grace_ms)
        object.__setattr__(self, "gap", gap_ms)
        object.__setattr__(self, "grace", grace_ms)
        object.__setattr__(self, "expires", expires_ms)

    def search_range(self, ts: int) -> tuple[int, int]:
        """Sessions that may merge with ``ts`` have ``end >= low`` and ``start <= high``."""
        return ts - self.gap, ts + self.gap

    def merge(self, existing: Iterable[Session], ts: int) -> tuple[Session, list[Session]]:
        """The session a record at ``ts`` ends up in, and the existing sessions it absorbs.

        ``existing`` are the key's sessions (any that cannot merge are ignored). The
        aggregator combines the aggregates of ``replaced`` (oldest first) with the record,
        deletes the replaced sessions and stores the result under the new session. When
        ``ts`` falls inside a session, that session is both replaced and returned; a record
        landing between two sessions within ``gap`` of each merges all three.
        """
        low, high = self.search_range(ts)
        replaced = sorted(s for s in existing if s.end >= low and s.start <= high)
        start = min([ts, *(s.start for s in replaced)])
        end = max([ts, *(s.end for s in replaced)])
        return Session(start, end), replaced

    def is_closed(self, session_end: int, stream_time: int) -> bool:
        """True once no on-time record could extend a session ending at ``session_end``.

        An aggregator drops a record whose merged session is already closed.
        """
        return stream_time > session_end + self.gap + self.grace

    def expired(self, session_end: int, stream_time: int) -> bool:
        """True once the session may be deleted from the store."""
        return stream_time > session_end + self.expires


_LENGTH_BYTES = 4
_START_BYTES = 8
_SIGN = 1 << 63
_LENGTH = struct.Struct(">I")
_START = struct.Struct(">Q")
_pack_length = _LENGTH.pack
_pack_start = _START.pack


def window_key_prefix(key: bytes) -> bytes:
    """The bytes every ``window_key(key, ...)`` starts with, and no other key's do."""
    try:
        return _pack_length(len(key)) + key
    except struct.error:  # the length does not fit in 4 bytes
        raise WindowKeyError(f"a key of {len(key)} bytes is too long for a window key") from None


def window_key(key: bytes, start: int) -> bytes:
    """Encode (key, window start) so byte order is (len(key), key, start) order.

    Layout: 4-byte big-endian key length, the key, then the start as a big-endian
    unsigned 8-byte number offset by 2**63, so negative starts sort before positive ones.
    The length prefix keeps keys that are prefixes of each other apart, which makes a
    prefix scan return exactly one key's windows, oldest first. Keys of different lengths
    sort by length first: that order is not the keys' own, which windowed tables never
    need.
    """
    return window_key_at(window_key_prefix(key), start)


def window_key_at(prefix: bytes, start: int) -> bytes:
    """``window_key(key, start)`` from ``window_key_prefix(key)``.

    A windowed table encodes one key's prefix once per access and reuses it for every
    window the access touches.
    """
    try:
        return prefix + _pack_start(start + _SIGN)
    except struct.error:  # outside [0, 2**64) once offset: not a signed 64-bit start
        raise WindowKeyError(
            f"window start {start} does not fit in a signed 64-bit integer"
        ) from None


def split_window_key(data: bytes) -> tuple[bytes, int]:
    """Decode ``window_key``'s output back to (key, start)."""
    size = len(data)
    if size < _LENGTH_BYTES + _START_BYTES:
        raise WindowKeyError(f"{size} bytes is too short for a window key")
    length = _LENGTH.unpack_from(data)[0]
    if size != _LENGTH_BYTES + length + _START_BYTES:
        raise WindowKeyError(
            f"window key of {size} bytes does not hold a {length}-byte key and a start"
        )
    key = data[_LENGTH_BYTES : _LENGTH_BYTES + length]
    if key.__class__ is not bytes:
        key = bytes(key)
    start: int = _START.unpack_from(data, _LENGTH_BYTES + length)[0] - _SIGN
    return key, start
