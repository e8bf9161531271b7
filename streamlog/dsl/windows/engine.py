"""The state a windowed table's views share, and its per-event path.

One ``WindowEngine`` per windowed table: the window kind, the in-memory state of each
owned partition (``PartitionWindows``: stream time, the due queues, the kinds' indexes),
the callbacks and the counters. Views (``WindowedTable``, ``WindowSet``) call ``apply``
and ``value_at``; the table calls the partition hooks (``partition_ready``,
``partition_revoked``, ``closed``); closing and expiry run in ``WindowCloser``.

Stream time is per table partition: the largest event time a write has seen. A write
whose windows are all closed at that stream time is late: dropped, counted
(``late_events``) and handed to ``on_late``.

The per-event path serialises and hashes a key once per ``WindowSet`` (``place_of``; a
cache of keys across events was no faster: its lookups miss the CPU caches), keeps each
partition's open transaction
(``PartitionWindows.txn``) and asks the table again only once a commit began. Stream
time is kept in memory and written once per commit, as the transaction is prepared
(``PartitionTransaction.before_prepare``), not by every event that moves it; a table
without final results (no ``on_window_close``/``emit_final``) also expires what is due
then, so a window that expired since the last commit never reaches the store.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from streamlog.dsl.errors import WindowedTableError
from streamlog.dsl.runtime.context import current_timestamp_ms
from streamlog.dsl.tables.views import OnLate, OnWindowClose
from streamlog.dsl.windows.kinds import Op, PartitionWindows, WindowKind
from streamlog.state.window_store import (
    CLOSE_PREFIX,
    HEADER_SIZE,
    MARK,
    STREAM_TIME_KEY,
    close_marker,
    pack_time,
    payload,
    split_window_key,
    unpack_time,
    window_key_at,
    window_key_prefix,
)
from streamlog.state.windows import WindowRange

if TYPE_CHECKING:
    from streamlog.dsl.runtime.events import Event
    from streamlog.dsl.tables.table import Table
    from streamlog.dsl.windows.host import WindowsHost
    from streamlog.dsl.windows.table import WindowSet
    from streamlog.state.stores import StorePartition
    from streamlog.state.transaction import PartitionTransaction

__all__ = ["WindowEngine", "OnWindowClose", "OnLate"]

log = logging.getLogger(__name__)

Located = tuple[bytes, bytes, int]  # serialised key, window-key prefix, table partition


class WindowEngine:
    """See the module docstring. Invariant: ``parts`` holds exactly the owned partitions
    whose state was rebuilt (``partition_ready``), so a partition with windows state is
    an owned one."""

    def __init__(
        self,
        app: WindowsHost,
        table: Table,
        kind: WindowKind,
        *,
        on_window_close: OnWindowClose | None,
        on_late: OnLate | None,
        idle_advance: bool,
    ) -> None:
        self.table = table
        self.app = app
        self.kind = kind
        self.on_window_close = on_window_close
        self.on_late = on_late
        self.idle_advance = idle_advance
        self.emit_targets: list[Any] = []
        self.closing = on_window_close is not None
        self.parts: dict[int, PartitionWindows] = {}
        self.late_events = 0
        self.closed_windows = 0
        self.expired_windows = 0
        self.close_errors = 0
        schema = table.schema
        self.loads: Callable[[bytes], Any] = schema.loads_value
        self._dumps = schema.dumps_value
        self._default = table.default
        self.expire_delay = kind.expire_delay
        self.close_delay = kind.close_delay
        self.unique_expiry = kind.unique_expiry
        self.header = kind.header
        # Set by the closer while it runs: an event that makes a window due wakes it.
        self.wake: asyncio.Event | None = None
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
        return payload(data, self.kind.header)

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

    def place_of(self, ref: WindowSet) -> Located:
        """``ref.place``: its key serialised, the window-key prefix and the partition,
        computed once per ``WindowSet``."""
        found = ref.place
        if found is None:
            raw = self.table.key_bytes(ref.key)
            found = ref.place = (raw, window_key_prefix(raw), self.table.partition_of(raw))
        return found

    def created(
        self, part: PartitionWindows, txn: PartitionTransaction, key: bytes, end: int
    ) -> None:
        """A window appeared (or a session changed its end): schedule its expiry/close."""
        part.expiry.push(end + self.expire_delay, key)
        if self.closing:
            txn.set(close_marker(key), MARK)
            part.closing.push(end + self.close_delay, key)

    def apply(self, ref: WindowSet, ts: int, op: Op, operand: Any) -> bool:
        """Apply ``op`` (None: assign) with ``operand`` to ``ref``'s windows at ``ts``."""
        found = ref.place
        if found is None:
            found = self.place_of(ref)
        raw, prefix, number = found
        part = self.parts.get(number)
        if part is None:
            self.table.transaction(number, raw)  # PartitionNotOwnedError if not owned
            raise WindowedTableError(f"table {self.table.name}: partition {number} is not ready")
        txn = part.txn
        if txn is None or not txn.open:
            txn = part.txn = self.table.transaction(number, raw)
        st = part.stream_time
        if st is None or ts > st:
            part.stream_time = ts
            clock = self.app.clock
            if clock is None:
                raise WindowedTableError("windowed tables need a running app (the app clock)")
            part.advanced_at = clock.time_ms()
            if part.saved_by is not txn:  # once per transaction: saved as it commits
                part.saved_by = txn
                txn.before_prepare(partial(self._before_commit, part))
            if part.expiry.head <= ts or part.closing.head <= ts:
                self.wake_if_due(part)
        if self.kind.apply(self, part, txn, raw, prefix, ts, op, operand):
            return True
        self.late(ref.key, operand, ts)
        return False

    def _before_commit(self, part: PartitionWindows, txn: PartitionTransaction) -> None:
        """As ``txn`` is prepared: expire what is due (unless final results are owed,
        which the closer sends first) and write ``part``'s stream time."""
        st = part.stream_time
        if st is None or self.parts.get(part.number) is not part:
            return  # revoked meanwhile: its next owner has its own stream time
        if not self.closing and part.expiry.head <= st:
            self.expire_due(part, txn)
        txn.set(STREAM_TIME_KEY, pack_time(st))

    def expire_due(self, part: PartitionWindows, txn: PartitionTransaction) -> None:
        """Delete the windows of ``part`` whose expiry stream time has made due (their
        deletes reach the changelog as tombstones), with their close markers."""
        st = part.stream_time
        queue = part.expiry
        if st is None:
            return
        kind = self.kind
        while queue.head <= st:
            keys = queue.pop_bucket()
            if kind.unique_expiry:
                # every key is a live window (``Aligned``): delete the lot without reads
                if self.closing:
                    _drop_close_markers(txn, keys)
                txn.delete_many(keys)
                part.live.difference_update(keys)
                self.expired_windows += len(keys)
                continue
            for key in keys:
                data = txn.get(key)
                if data is None:
                    continue  # merged into a larger session, or deleted already
                raw, at = split_window_key(key)
                txn.delete(key)
                marker = close_marker(key)
                if self.closing and txn.get(marker) is not None:
                    txn.delete(marker)
                kind.forget(part, raw, kind.range_of(at, data))
                self.expired_windows += 1

    def wake_if_due(self, part: PartitionWindows) -> None:
        st = part.stream_time
        if st is None or self.wake is None:
            return
        if part.expiry.head <= st or part.closing.head <= st:
            self.wake.set()

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
        found = ref.place
        if found is None:
            found = self.place_of(ref)
        raw, prefix, number = found
        part = self.parts.get(number)
        data = None
        if part is None:
            self.table.require_owned(number, raw)
        else:  # a partition with windows is an owned one
            kind = self.kind
            at = kind.window_at(part, raw, t)
            if at is not None:
                key = window_key_at(prefix, at)
                # a kind that keeps its live windows says when there is nothing to read
                if not self.unique_expiry or key in part.live:
                    txn = part.txn
                    if txn is not None and txn.open:
                        data = txn.get(key)
                    else:  # between commits, or while one runs: the table's reader
                        data = self.table.reader(number, raw).get(key)
                if data is not None:
                    st = part.stream_time
                    if st is not None and kind.window_end(at, data) + self.expire_delay <= st:
                        data = None  # expired: reads no longer show it
        if data is None:
            if self._default is None:
                raise KeyError(ref.key)
            return self._default()
        if self.header:
            data = data[HEADER_SIZE:]
        return self.loads(data)

    def values_containing(self, ref: WindowSet, t: int) -> list[tuple[WindowRange, Any]]:
        """Every live window of ``ref``'s key that contains ``t``, with its value, oldest
        first: point reads of the windows the kind's index names (no range scan)."""
        found = ref.place
        if found is None:
            found = self.place_of(ref)
        raw, prefix, number = found
        part = self.parts.get(number)
        if part is None:
            self.table.require_owned(number, raw)
            return []
        kind = self.kind
        txn = part.txn
        reader = txn if txn is not None and txn.open else self.table.reader(number, raw)
        out = []
        for at in kind.windows_at(part, raw, t):
            key = window_key_at(prefix, at)
            if self.unique_expiry and key not in part.live:
                continue
            data = reader.get(key)
            if data is None:
                continue
            window = kind.range_of(at, data)
            if not self.expired(part, window):
                out.append((window, self.loads(self.payload(data))))
        return out

    def expired(self, part: PartitionWindows, window: WindowRange) -> bool:
        st = part.stream_time
        return st is not None and window.end + self.expire_delay <= st

    def windows(self, raw: bytes | None = None) -> Iterator[tuple[bytes, WindowRange, bytes]]:
        """(raw key, window, payload) of live windows: one key's (``raw``) or all owned."""
        table = self.table
        if raw is None:
            numbers = table.active_partitions
        else:
            number = table.partition_of(raw)
            table.require_owned(number, raw)
            numbers = [number]
        for number in numbers:
            part = self.parts.get(number)
            if part is None:
                continue
            reader = table.reader(number)
            if raw is None:
                found = reader.items(end=CLOSE_PREFIX)
            else:
                found = reader.items(prefix=window_key_prefix(raw))
            range_of = self.kind.range_of
            for key, data in found:
                k, at = split_window_key(key)
                window = range_of(at, data)
                if not self.expired(part, window):
                    yield k, window, self.payload(data)

    # -- partitions (the table's hooks) -----------------------------------------------

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
            expiry.push(window.end + self.expire_delay, key)
        kind.finish_rebuild(part)
        for marker, _ in store.items(prefix=CLOSE_PREFIX):
            key = marker[len(CLOSE_PREFIX) :]
            stored = store.get(key)
            _, at = split_window_key(key)
            end = at if stored is None else kind.window_end(at, stored)
            part.closing.push(end + self.close_delay, key)
        self.parts[number] = part
        self.wake_if_due(part)

    def partition_revoked(self, number: int) -> None:
        self.parts.pop(number, None)

    def closed(self) -> None:
        self.parts.clear()
        self.wake = None


def _drop_close_markers(txn: PartitionTransaction, keys: list[bytes]) -> None:
    """Delete the close markers still owed for ``keys`` (windows being expired)."""
    for key in keys:
        marker = close_marker(key)
        if txn.get(marker) is not None:
            txn.delete(marker)
