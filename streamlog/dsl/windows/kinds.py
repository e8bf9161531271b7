"""The per-kind write and read rules of windowed tables, and their per-partition state.

``streamlog.dsl.windows.table`` owns the table (partitions, stream time, closing and expiry);
each kind here knows which stored windows an event at ``ts`` updates and how a window is
found again for a read:

* ``Aligned``: tumbling and hopping windows ``[start, start + size)``, epoch-aligned,
  stored under ``window_key(raw_key, start)``; ``Tumbling`` is its one-window fast path;
* ``Sliding``: Kafka Streams' sliding windows, stored under the start, the value
  prefixed by the latest record timestamp the window holds;
* ``Sessions``: stored under the session's end, the value prefixed by its start.

A kind is handed the key twice: ``raw`` (the serialised table key, for the in-memory
indexes) and ``prefix`` (``window_key_prefix(raw)``, computed once per access), from
which every window key of the access is made with ``window_key_at``.

``DueQueue`` schedules closing and expiry: window keys by the stream time they fall due.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from heapq import heappop, heappush
from typing import TYPE_CHECKING, Any, Final, Protocol

from streamlog.dsl.errors import StreamlogError
from streamlog.state.windows import (
    HoppingWindow,
    Session,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    WindowRange,
    window_key_at,
)

if TYPE_CHECKING:
    from streamlog.state.transaction import PartitionTransaction

__all__ = [
    "WindowedTableError",
    "SessionMergeError",
    "STREAM_TIME_KEY",
    "CLOSE_PREFIX",
    "MARK",
    "NEVER",
    "Op",
    "DueQueue",
    "PartitionWindows",
    "WindowValues",
    "Aligned",
    "Tumbling",
    "Sliding",
    "Sessions",
    "Kind",
    "kind_for",
    "pack_time",
    "unpack_time",
]

STREAM_TIME_KEY = b"\xff\xff\xff\xffstream-time"
CLOSE_PREFIX = b"\xff\xff\xff\xfe"
MARK = b"\x01"
NEVER: Final = 1 << 127  # a due time later than any stream time
_I64 = struct.Struct(">q")
pack_time = _I64.pack
_unpack_from = _I64.unpack_from

Op = Callable[[Any, Any], Any] | None  # None: assignment


def unpack_time(data: bytes) -> int:
    """The signed 8-byte time at the start of ``data`` (stream time, a window's header)."""
    value: int = _unpack_from(data)[0]
    return value


class WindowedTableError(StreamlogError):
    """A windowed table used in a way that cannot work (named in the message)."""


class SessionMergeError(WindowedTableError):
    """Two sessions merged whose values have no default merge (pass ``merge=``)."""


class DueQueue:
    """Window keys by the stream time at which they fall due, earliest first.

    Windows of an aligned kind that start together fall due together, so a due time
    holds a bucket of keys (a list, appended to in O(1)) and a heap holds only the
    distinct due times: scheduling a window costs an append, not a heap insertion among
    every live window. ``head`` is the earliest due time, ``NEVER`` when empty (checked
    per event, so it is a plain attribute). Entries may be stale (a window merged away or
    deleted already): consumers check them as their kind requires.

    Invariants: no bucket is empty; ``head == _dues[0]`` (or ``NEVER``); ``_last`` is
    the bucket of ``_last_due`` (the due time pushed to last, the common next one) and is
    never the bucket ``pop`` keeps sorted (``_sorted_due``).
    """

    __slots__ = ("head", "_dues", "_buckets", "_last_due", "_last", "_sorted_due")

    def __init__(self) -> None:
        self.head: int = NEVER
        self._dues: list[int] = []
        self._buckets: dict[int, list[bytes]] = {}
        self._last_due: int | None = None
        self._last: list[bytes] = []
        self._sorted_due: int | None = None

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets.values())

    def __repr__(self) -> str:
        return f"<DueQueue {len(self)} keys in {len(self._dues)} due times, head {self.head}>"

    def push(self, due: int, key: bytes) -> None:
        if due == self._last_due:
            self._last.append(key)
            return
        bucket = self._buckets.get(due)
        if bucket is None:
            bucket = self._buckets[due] = []
            heappush(self._dues, due)
            self.head = self._dues[0]
        elif due == self._sorted_due:
            self._sorted_due = None  # appended to: sorted again by the next pop
            bucket.append(key)
            return
        bucket.append(key)
        self._last_due = due
        self._last = bucket

    def pop(self) -> bytes:
        """Remove and return the earliest entry (by due time, then key); not when empty."""
        due = self.head
        bucket = self._buckets[due]
        if self._sorted_due != due:
            bucket.sort(reverse=True)
            self._sorted_due = due
            if self._last_due == due:
                self._last_due = None
        key = bucket.pop()
        if not bucket:
            self._drop_head(due)
        return key

    def pop_bucket(self) -> list[bytes]:
        """Remove and return every key of the earliest due time; not when empty."""
        due = self.head
        bucket = self._buckets[due]
        self._drop_head(due)
        return bucket

    def _drop_head(self, due: int) -> None:
        del self._buckets[due]
        dues = self._dues
        heappop(dues)
        self.head = dues[0] if dues else NEVER
        if self._last_due == due:
            self._last_due = None
        if self._sorted_due == due:
            self._sorted_due = None


@dataclass(slots=True)
class PartitionWindows:
    """What the windowed layer keeps in memory for one table partition.

    ``expiry`` and ``closing`` schedule the partition's window keys by due stream time.
    """

    number: int
    stream_time: int | None = None
    advanced_at: int = 0  # app clock (ms) when stream time last moved
    expiry: DueQueue = field(default_factory=DueQueue)
    closing: DueQueue = field(default_factory=DueQueue)
    sessions: dict[bytes, list[Session]] = field(default_factory=dict)
    times: dict[bytes, list[int]] = field(default_factory=dict)  # sliding: record times


class WindowValues(Protocol):
    """What a kind needs from its table: values and the scheduling of new windows."""

    closing: bool

    def loads(self, data: bytes) -> Any: ...

    def dumps(self, value: Any) -> bytes: ...

    def initial(self, op: Op) -> Any: ...

    def created(
        self, part: PartitionWindows, txn: PartitionTransaction, key: bytes, end: int
    ) -> None: ...


class Aligned:
    """Tumbling and hopping windows: ``[start, start + size)``, epoch-aligned.

    ``unique_expiry``: a window is scheduled once, when it is created; it is closed
    (``expires >= grace``) before it expires, so no event recreates it after expiry, and
    its schedule entry is never stale. Expiry deletes such keys without reading them.
    """

    header = False
    unique_expiry = True

    def __init__(self, window: TumblingWindow | HoppingWindow) -> None:
        self.window = window
        self.size = window.size
        self.step = window.step
        self.grace = window.grace
        self.close_delay = window.grace  # closed once stream time >= end + grace
        self.expire_delay = window.expires
        self.lifetime = window.size + window.expires

    def apply(
        self,
        values: WindowValues,
        part: PartitionWindows,
        txn: PartitionTransaction,
        raw: bytes,
        prefix: bytes,
        ts: int,
        op: Op,
        operand: Any,
    ) -> bool:
        st = part.stream_time
        assert st is not None
        size, step, grace = self.size, self.step, self.grace
        last = ts - ts % step
        first = last - (last - ts + size - 1) // step * step  # windows with start + size > ts
        applied = False
        for start in range(first, last + 1, step):
            end = start + size
            if st >= end + grace:
                continue  # closed
            key = window_key_at(prefix, start)
            data = txn.get(key)
            if data is None:
                old = values.initial(op)
                values.created(part, txn, key, end)
            else:
                old = None if op is None else values.loads(data)
            txn.set(key, values.dumps(operand if op is None else op(old, operand)))
            applied = True
        return applied

    def range_of(self, start: int, data: bytes) -> WindowRange:
        return WindowRange(start, start + self.size)

    def window_end(self, start: int, data: bytes) -> int:
        return start + self.size

    def window_at(self, part: PartitionWindows, raw: bytes, t: int) -> int | None:
        return t - t % self.step  # the newest window containing t

    def rebuild(self, part: PartitionWindows, raw: bytes, start: int, data: bytes) -> WindowRange:
        return WindowRange(start, start + self.size)

    def finish_rebuild(self, part: PartitionWindows) -> None:
        pass

    def forget(self, part: PartitionWindows, raw: bytes, window: WindowRange) -> None:
        pass


class Tumbling(Aligned):
    """Aligned windows with ``step == size``: each event is in exactly one window."""

    def apply(
        self,
        values: WindowValues,
        part: PartitionWindows,
        txn: PartitionTransaction,
        raw: bytes,
        prefix: bytes,
        ts: int,
        op: Op,
        operand: Any,
    ) -> bool:
        st = part.stream_time
        assert st is not None
        start = ts - ts % self.size
        end = start + self.size
        if st >= end + self.grace:
            return False  # closed
        key = window_key_at(prefix, start)
        data = txn.get(key)
        if data is None:
            old = values.initial(op)
            values.created(part, txn, key, end)
        else:
            old = None if op is None else values.loads(data)
        txn.set(key, values.dumps(operand if op is None else op(old, operand)))
        return True


class Sliding:
    """Kafka Streams' sliding windows ``[start, start + size]`` (``SlidingWindow``).

    The key's distinct record timestamps are kept in memory (``PartitionWindows.times``),
    as ``SlidingWindow.assign`` needs them; each stored value carries its window's latest
    record timestamp, from which a restart rebuilds them.
    """

    header = True
    unique_expiry = False

    def __init__(self, window: SlidingWindow) -> None:
        self.window = window
        self.close_delay = window.grace + 1  # closed once stream time > end + grace
        self.expire_delay = window.retention + 1
        self.lifetime = window.size + window.retention

    def apply(
        self,
        values: WindowValues,
        part: PartitionWindows,
        txn: PartitionTransaction,
        raw: bytes,
        prefix: bytes,
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
                data = txn.get(window_key_at(prefix, created.base))
                bases[created.base] = None if data is None else (_unpack_from(data)[0], data[8:])
        for start, _end in assignment.updated:
            key = window_key_at(prefix, start)
            data = txn.get(key)
            if data is None:  # cannot happen for an accepted record; keep the table whole
                latest, old = ts, values.initial(op)
            else:
                latest = max(_unpack_from(data)[0], ts)
                old = None if op is None else values.loads(data[8:])
            value = operand if op is None else op(old, operand)
            txn.set(key, pack_time(latest) + values.dumps(value))
        for created in assignment.created:
            base = bases.get(created.base) if created.base is not None else None
            if base is None and not created.contains_record:
                continue  # an empty window: nothing to keep
            if created.contains_record:
                if op is None:
                    payload = values.dumps(operand)
                else:
                    old = values.initial(op) if base is None else values.loads(base[1])
                    payload = values.dumps(op(old, operand))
                latest = ts if base is None else max(base[0], ts)
            else:
                assert base is not None
                latest, payload = base
            key = window_key_at(prefix, created.start)
            txn.set(key, pack_time(latest) + payload)
            values.created(part, txn, key, created.end)
        at = bisect.bisect_left(times, ts)
        if at == len(times) or times[at] != ts:
            times.insert(at, ts)
        return True

    def range_of(self, start: int, data: bytes) -> WindowRange:
        return WindowRange(start, start + self.window.size)

    def window_end(self, start: int, data: bytes) -> int:
        return start + self.window.size

    def window_at(self, part: PartitionWindows, raw: bytes, t: int) -> int | None:
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

    def rebuild(self, part: PartitionWindows, raw: bytes, start: int, data: bytes) -> WindowRange:
        part.times.setdefault(raw, []).append(_unpack_from(data)[0])
        return WindowRange(start, start + self.window.size)

    def finish_rebuild(self, part: PartitionWindows) -> None:
        for raw, times in part.times.items():
            part.times[raw] = sorted(set(times))

    def forget(self, part: PartitionWindows, raw: bytes, window: WindowRange) -> None:
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


class Sessions:
    """Session windows, stored under (key, session end) as Kafka Streams does.

    A closed session is final: a record never merges into one, even while it still sits
    in the store. A record joins the open sessions within ``gap`` of it, and is late
    when the session they form is closed. A session's end is unique among the key's
    sessions (open ones do not overlap, and every open session ends after every closed
    one), so keying by end never overwrites a session whose final result is owed. The
    key's sessions are kept in memory, rebuilt from the store on assignment.
    """

    header = True
    unique_expiry = False  # a session that grew leaves its old end's entry behind

    def __init__(self, window: SessionWindow, merge: Callable[[Any, Any], Any]) -> None:
        self.window = window
        self.merge = merge
        self.close_delay = window.gap + window.grace + 1  # closed: st > end + gap + grace
        self.expire_delay = window.expires + 1
        self.lifetime = window.expires

    def apply(
        self,
        values: WindowValues,
        part: PartitionWindows,
        txn: PartitionTransaction,
        raw: bytes,
        prefix: bytes,
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
            olds = [values.loads(_payload(txn.get(window_key_at(prefix, s.end)))) for s in replaced]
            base = reduce(self.merge, olds) if olds else values.initial(op)
            value = op(base, operand)
        key = window_key_at(prefix, new.end)
        for old in replaced:
            if old.end != new.end:
                old_key = window_key_at(prefix, old.end)
                txn.delete(old_key)
                if values.closing:
                    txn.delete(CLOSE_PREFIX + old_key)
        txn.set(key, pack_time(new.start) + values.dumps(value))
        if replaced != [new]:
            kept = [s for s in sessions if s not in replaced]
            kept.append(new)
            kept.sort()
            part.sessions[raw] = kept
            if not replaced or replaced[-1].end != new.end:
                values.created(part, txn, key, new.end)
        return True

    def range_of(self, end: int, data: bytes) -> WindowRange:
        start: int = _unpack_from(data)[0]
        return WindowRange(start, end)

    def window_end(self, end: int, data: bytes) -> int:
        return end

    def window_at(self, part: PartitionWindows, raw: bytes, t: int) -> int | None:
        """The end (store key) of the latest-ending session containing ``t``."""
        found = [s.end for s in part.sessions.get(raw, ()) if s.start <= t <= s.end]
        return max(found) if found else None

    def rebuild(self, part: PartitionWindows, raw: bytes, end: int, data: bytes) -> WindowRange:
        window = self.range_of(end, data)
        part.sessions.setdefault(raw, []).append(Session(*window))
        return window

    def finish_rebuild(self, part: PartitionWindows) -> None:
        for sessions in part.sessions.values():
            sessions.sort()

    def forget(self, part: PartitionWindows, raw: bytes, window: WindowRange) -> None:
        sessions = part.sessions.get(raw)
        if sessions:
            kept = [s for s in sessions if s.end != window.end]
            if kept:
                part.sessions[raw] = kept
            else:
                del part.sessions[raw]


Kind = Aligned | Sliding | Sessions


def kind_for(
    window: TumblingWindow | HoppingWindow | SlidingWindow | SessionWindow,
    merge: Callable[[Any, Any], Any],
) -> Kind:
    """The kind that stores ``window``'s windows (``merge`` is for sessions)."""
    if isinstance(window, SessionWindow):
        return Sessions(window, merge)
    if isinstance(window, SlidingWindow):
        return Sliding(window)
    return Tumbling(window) if window.step == window.size else Aligned(window)


def _payload(data: bytes | None) -> bytes:
    if data is None:
        raise WindowedTableError("a session in the index is missing from the store")
    return data[8:]
