"""Session windows, stored under the session's end, the value prefixed by its start."""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from typing import TYPE_CHECKING, Any

from streamlog.dsl.errors import WindowedTableError
from streamlog.dsl.windows.kinds.base import Op, PartitionWindows, WindowValues, stream_time_of
from streamlog.state.window_store import HEADER_SIZE, close_marker, pack_time, unpack_time
from streamlog.state.windows import Session, SessionWindow, WindowRange, window_key_at

if TYPE_CHECKING:
    from streamlog.state.transaction import PartitionTransaction

__all__ = ["Sessions"]


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
        st = stream_time_of(part)
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
                    txn.delete(close_marker(old_key))
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
        start: int = unpack_time(data)
        return WindowRange(start, end)

    def window_end(self, end: int, data: bytes) -> int:
        return end

    def window_at(self, part: PartitionWindows, raw: bytes, t: int) -> int | None:
        """The end (store key) of the latest-ending session containing ``t``."""
        found = [s.end for s in part.sessions.get(raw, ()) if s.start <= t <= s.end]
        return max(found) if found else None

    def windows_at(self, part: PartitionWindows, raw: bytes, t: int) -> list[int]:
        """The end of the session containing ``t``, if any (a key's sessions never
        overlap: an event inside a closed session is late, so it starts none)."""
        return [s.end for s in part.sessions.get(raw, ()) if s.start <= t <= s.end]

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


def _payload(data: bytes | None) -> bytes:
    if data is None:
        raise WindowedTableError("a session in the index is missing from the store")
    return data[HEADER_SIZE:]
