"""Kafka Streams' sliding windows, stored under their start, the value prefixed by the
latest record timestamp the window holds."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any

from streamlog.dsl.windows.kinds.base import Op, PartitionWindows, WindowValues, stream_time_of
from streamlog.state.window_store import HEADER_SIZE, pack_time, unpack_time
from streamlog.state.windows import SlidingWindow, WindowRange, window_key_at

if TYPE_CHECKING:
    from streamlog.state.transaction import PartitionTransaction

__all__ = ["Sliding"]


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
        st = stream_time_of(part)
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
                bases[created.base] = (
                    None if data is None else (unpack_time(data), data[HEADER_SIZE:])
                )
        for start, _end in assignment.updated:
            key = window_key_at(prefix, start)
            data = txn.get(key)
            if data is None:  # cannot happen for an accepted record; keep the table whole
                latest, old = ts, values.initial(op)
            else:
                latest = max(unpack_time(data), ts)
                old = None if op is None else values.loads(data[HEADER_SIZE:])
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
            elif base is not None:
                latest, payload = base
            else:  # excluded above: no base and no record
                continue
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

    def windows_at(self, part: PartitionWindows, raw: bytes, t: int) -> list[int]:
        """Starts in ``[t - size, t]``: the window a record r in ``[t, t + size]`` closes
        (start ``r - size``), and the one opened just after a record r in
        ``[t - size - 1, t - 1]`` that another follows within ``size`` (start ``r + 1``)."""
        times = part.times.get(raw)
        if not times:
            return []
        size = self.window.size
        lo = bisect.bisect_left(times, t - size - 1)
        hi = bisect.bisect_right(times, t + size)
        starts: set[int] = set()
        for i in range(lo, hi):
            r = times[i]
            if r >= t:
                starts.add(r - size)
            elif r >= t - size - 1 and i + 1 < len(times) and times[i + 1] - r <= size:
                starts.add(r + 1)
        return sorted(starts)

    def rebuild(self, part: PartitionWindows, raw: bytes, start: int, data: bytes) -> WindowRange:
        part.times.setdefault(raw, []).append(unpack_time(data))
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
