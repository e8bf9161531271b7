"""Closing and expiry of a windowed table's windows, in the background.

One task per table (``run``), woken when stream time passes the earliest due window (the
engine's ``wake``: the per-partition ``DueQueue``s say when, so nothing scans the store
per event). Closing hands a window's final value to ``on_window_close`` and the
``emit_final`` targets, then drops its close marker; expiry deletes old windows (their
deletes reach the changelog as tombstones). Both hold the app's processing barrier, so no
commit runs while they write.

A wall-clock timer (``tick``, every ``table_cleanup_interval``) moves the stream time of
partitions that saw no newer event for a whole interval by the wall time that passed, so
windows of sparse keys still close.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from streamlog.dsl.agents.topics import Topic
from streamlog.dsl.durations import to_ms
from streamlog.state.window_store import STREAM_TIME_KEY, close_marker, pack_time, split_window_key
from streamlog.state.windows import WindowRange

if TYPE_CHECKING:
    from streamlog.dsl.windows.engine import WindowEngine
    from streamlog.dsl.windows.kinds import PartitionWindows

__all__ = ["WindowCloser"]

log = logging.getLogger(__name__)


class WindowCloser:
    """See the module docstring."""

    def __init__(self, engine: WindowEngine) -> None:
        self.engine = engine
        self._lock: asyncio.Lock | None = None

    @asynccontextmanager
    async def processing(self) -> AsyncIterator[None]:
        """Hold the app's processing barrier (no commit meanwhile) and this table's lock."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            barrier = self.engine.app.barrier
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

    async def run(self) -> None:
        """The background task: close and expire whatever stream time made due."""
        engine = self.engine
        engine.wake = wake = asyncio.Event()
        while True:
            wake.clear()
            try:
                await self.process_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged; the next wake-up retries
                log.error("table %s: closing windows failed: %r", engine.table.name, exc)
            await wake.wait()

    async def tick(self) -> None:
        """The wall-clock timer: advance idle partitions' stream time, then close/expire."""
        engine = self.engine
        if engine.idle_advance and engine.parts:
            interval = to_ms(engine.app.conf.table_cleanup_interval, "table_cleanup_interval")
            async with self.processing():
                now = engine.wall_ms()
                for number, part in list(engine.parts.items()):
                    idle = now - part.advanced_at
                    if part.stream_time is None or idle < interval:
                        continue
                    part.stream_time += idle
                    part.advanced_at = now
                    txn = engine.table.transaction(number)
                    txn.set(STREAM_TIME_KEY, pack_time(part.stream_time))
        await self.process_due()

    async def process_due(self) -> None:
        """Close and expire what stream time has made due in every owned partition."""
        engine = self.engine
        async with self.processing():
            for number, part in list(engine.parts.items()):
                if engine.closing:
                    await self._close_due(number, part)
                self._expire_due(number, part)

    async def _close_due(self, number: int, part: PartitionWindows) -> None:
        engine = self.engine
        kind = engine.kind
        queue = part.closing
        while engine.parts.get(number) is part:
            st = part.stream_time
            if st is None or queue.head > st:
                return
            key = queue.pop()
            txn = engine.table.transaction(number)
            marker = close_marker(key)
            if txn.get(marker) is None:
                continue  # emitted already, or the window merged away
            data = txn.get(key)
            if data is None:
                txn.delete(marker)
                continue
            raw, at = split_window_key(key)
            await self._emit(raw, kind.range_of(at, data), engine.payload(data))
            if engine.parts.get(number) is part:
                engine.table.transaction(number).delete(marker)
            engine.closed_windows += 1

    def _expire_due(self, number: int, part: PartitionWindows) -> None:
        engine = self.engine
        st = part.stream_time
        if st is None or part.expiry.head > st:
            return
        engine.expire_due(part, engine.table.transaction(number))

    async def _emit(self, raw: bytes, window: WindowRange, payload: bytes) -> None:
        engine = self.engine
        try:
            key = engine.table.schema.loads_key(raw)
            value = engine.loads(payload)
            if engine.on_window_close is not None:
                result = engine.on_window_close(key, window, value)
                if inspect.isawaitable(result):
                    await result
            last_ms = window.end if engine.kind.header else window.end - 1
            for target in engine.emit_targets:
                record = {"start": window.start, "end": window.end, "value": value}
                if isinstance(target, Topic):
                    schema = target.schema
                    await engine.app.producer.send(
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
            engine.close_errors += 1
            log.error(
                "table %s: final result of window %s failed: %r",
                engine.table.name,
                tuple(window),
                exc,
                exc_info=exc,
            )
