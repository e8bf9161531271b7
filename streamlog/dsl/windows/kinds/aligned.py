"""Tumbling and hopping windows: ``[start, start + size)``, epoch-aligned, stored under
their start; ``Tumbling`` is the one-window-per-event fast path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamlog.dsl.windows.kinds.base import Op, PartitionWindows, WindowValues, stream_time_of
from streamlog.state.windows import (
    HoppingWindow,
    TumblingWindow,
    WindowRange,
    window_key,
    window_key_at,
)

if TYPE_CHECKING:
    from streamlog.state.transaction import PartitionTransaction

__all__ = ["Aligned", "Tumbling"]


class Aligned:
    """Tumbling and hopping windows: ``[start, start + size)``, epoch-aligned.

    ``unique_expiry``: a window is scheduled once, when it is created; it is closed
    (``expires >= grace``) before it expires, so no event recreates it after expiry, and
    its schedule entry is never stale. Expiry deletes such keys without reading them.
    The live windows are in ``PartitionWindows.live``: an event for a window not there
    creates it without a read (``PartitionTransaction.insert``).
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
        st = stream_time_of(part)
        size, step, grace = self.size, self.step, self.grace
        last = ts - ts % step
        first = last - (last - ts + size - 1) // step * step  # windows with start + size > ts
        applied = False
        for start in range(first, last + 1, step):
            end = start + size
            if st >= end + grace:
                continue  # closed
            _update(values, part, txn, window_key_at(prefix, start), end, op, operand)
            applied = True
        return applied

    def range_of(self, start: int, data: bytes) -> WindowRange:
        return WindowRange(start, start + self.size)

    def window_end(self, start: int, data: bytes) -> int:
        return start + self.size

    def window_at(self, part: PartitionWindows, raw: bytes, t: int) -> int | None:
        return t - t % self.step  # the newest window containing t

    def windows_at(self, part: PartitionWindows, raw: bytes, t: int) -> list[int]:
        step = self.step
        last = t - t % step
        first = last - (last - t + self.size - 1) // step * step  # start + size > t
        return list(range(first, last + 1, step))

    def rebuild(self, part: PartitionWindows, raw: bytes, start: int, data: bytes) -> WindowRange:
        part.live.add(window_key(raw, start))
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
        if st is None:
            st = stream_time_of(part)  # raises: the engine sets it first
        size = self.size
        start = ts - ts % size
        end = start + size
        if st >= end + self.grace:
            return False  # closed
        key = window_key_at(prefix, start)
        live = part.live
        if key in live:  # ``_update``, inline: this is every event's path
            data = txn.get(key)
            if data is not None:
                old = None if op is None else values.loads(data)
                txn.set(key, values.dumps(operand if op is None else op(old, operand)))
            else:
                _update(values, part, txn, key, end, op, operand)
            return True
        value = values.dumps(operand if op is None else op(values.initial(op), operand))
        values.created(part, txn, key, end)
        live.add(key)
        txn.insert(key, value)  # not live: neither in the transaction nor in the store
        return True


def _update(
    values: WindowValues,
    part: PartitionWindows,
    txn: PartitionTransaction,
    key: bytes,
    end: int,
    op: Op,
    operand: Any,
) -> None:
    """Apply ``op`` to the open window ``key`` (ending at ``end``), creating it if new."""
    live = part.live
    if key in live:
        data = txn.get(key)
        if data is not None:
            old = None if op is None else values.loads(data)
            txn.set(key, values.dumps(operand if op is None else op(old, operand)))
            return
        # live without a value: only expiry deletes windows, so not expected; made anew
    value = values.dumps(operand if op is None else op(values.initial(op), operand))
    values.created(part, txn, key, end)
    if key in live:
        txn.set(key, value)
    else:
        live.add(key)
        txn.insert(key, value)  # not live: neither in the transaction nor in the store
