"""Standby replicas: warm copies of other workers' table partitions.

Faust's ``table_standby_replicas`` and Kafka Streams' ``num.standby.replicas``. The group's
leader gives each task (partition N of the app's topics) to one worker to process and, as
a *standby*, to up to N others (``streamlog.transport.sticky.standby_assign``). A standby
keeps its copy of the task's table partitions current by reading their changelogs, every
``table_standby_interval`` seconds, into the same store an active partition would use.
When the active worker dies or leaves, the leader gives the task to a worker that kept it
warm, and that worker's recovery (``state/recovery.py``) starts from the offset its store
reached: it replays only the tail written since its last read, not the whole changelog.

A standby only reads: its store is never written by processing, and nothing it does is
committed. Promotion is safe because ``suspended`` stops the reading before the app
recovers newly assigned partitions: two writers never share a store partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Protocol

from streamlog.dsl.runtime.clock import running_clock
from streamlog.state.errors import RecoveryError, StoreClosedError
from streamlog.state.recovery import recover_partition
from streamlog.transport.errors import TransportError
from streamlog.transport.types import TopicPartition

if TYPE_CHECKING:
    from streamlog.dsl.runtime.clock import AsyncClock
    from streamlog.dsl.settings import Settings
    from streamlog.dsl.tables.table import Table
    from streamlog.transport.base import Consumer, Transport

__all__ = ["StandbyReplicas", "StandbyHost"]

log = logging.getLogger(__name__)


class StandbyHost(Protocol):
    """What the standbys need from the app (``App`` fits)."""

    conf: Settings
    clock: AsyncClock | None

    tables: dict[str, Table]

    @property
    def transport(self) -> Transport: ...


class StandbyReplicas:
    """The table partitions this worker keeps warm, and the task reading them."""

    def __init__(self, app: StandbyHost) -> None:
        self.app = app
        self.numbers: frozenset[int] = frozenset()
        """Task (partition) numbers the group gave this worker as a standby."""
        self.lag: dict[tuple[str, int], int] = {}
        """(table, partition) -> changelog records the copy was behind at its last read."""
        self.records_applied = 0
        self._task: asyncio.Task[None] | None = None
        self._suspended = 0

    def tables(self) -> list[Table]:
        """The tables with standbys: every changelogged table but global ones (which
        read every partition anyway)."""
        return [t for t in self.app.tables.values() if not t._reads_everywhere]

    def update(self, numbers: Iterable[int], keep: Iterable[int] = ()) -> None:
        """The group's latest standby partitions for this worker: start reading new ones,
        close the stores of those it is neither standby for nor holds (``keep``: the
        partitions it is active for, a promoted standby's among them, whose store its
        recovery continues) any more."""
        numbers = frozenset(numbers)
        held = frozenset(keep)
        if numbers != self.numbers:
            log.info("standby partitions: %s", ", ".join(map(str, sorted(numbers))) or "(none)")
        gone, self.numbers = self.numbers - numbers, numbers
        for table in self.tables():
            for number in gone:
                self.lag.pop((table.name, number), None)
                if number not in held:
                    table.release_standby(number)
        self._start()

    @contextlib.asynccontextmanager
    async def suspended(self) -> AsyncIterator[None]:
        """No standby reading while inside: the app recovers partitions it was given,
        possibly ones this worker kept warm, into the same stores."""
        self._suspended += 1
        try:
            await self._stop()
            yield
        finally:
            self._suspended -= 1
            self._start()

    async def close(self) -> None:
        """Stop reading (the app stops); the stores are closed with their tables."""
        self.numbers = frozenset()
        await self._stop()

    # ------------------------------------------------------------------ the reading task

    def _start(self) -> None:
        if self._suspended or not self.numbers or not self.tables():
            return
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._follow(), name="tables:standby")

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise asyncio.CancelledError  # our own cancellation goes on

    async def _follow(self) -> None:
        clock = running_clock(self.app.clock)
        consumer = self.app.transport.consumer(client_id=f"{self.app.conf.client_id}-standby")
        backoff = 0.1
        try:
            while self.numbers:
                try:
                    await self._read_once(consumer)
                    backoff = 0.1
                except (TransportError, RecoveryError) as exc:  # an outage: try again
                    log.warning("standby reading failed: %s (retrying in %.1f s)", exc, backoff)
                    await clock.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                await clock.sleep(self.app.conf.table_standby_interval)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a broken store: the worker goes on, cold
            log.exception("standby replicas stopped: their stores are no longer kept warm")
        finally:
            await consumer.close()

    async def _read_once(self, consumer: Consumer) -> None:
        """One pass: every standby partition brought up to its changelog's end."""
        wanted = [
            (table, number)
            for table in self.tables()
            for number in sorted(self.numbers)
            if number < table.partitions and not table.owns(number)
        ]
        if not wanted:
            return
        tps = {
            (table.name, number): TopicPartition(table.changelog_topic.name, number)
            for table, number in wanted
        }
        ends = await consumer.end_offsets(list(tps.values()))
        for table, number in wanted:
            if number not in self.numbers or table.owns(number):
                continue  # changed while awaiting
            tp = tps[(table.name, number)]
            partition = table.standby_partition(number)
            stored = partition.changelog_offset()
            end = ends.get(tp, 0)
            if end == 0 or (stored is not None and stored + 1 >= end):
                self.lag[(table.name, number)] = 0
                continue
            try:
                result = await recover_partition(
                    consumer, partition, tp, progress_interval_ms=60_000, following=True
                )
            except StoreClosedError:
                continue  # released (or promoted) while it was read: nothing to keep warm
            self.lag[(table.name, number)] = result.end_offset - result.start_offset
            self.records_applied += result.records
