"""Standby replicas: warm copies of other workers' table partitions.

Faust's ``table_standby_replicas`` and Kafka Streams' ``num.standby.replicas``. The group's
leader gives each task (partition N of the app's topics) to one worker to process and, as
a *standby*, to up to N others (``streamlog.transport.sticky.standby_assign``). A standby
keeps its copy of the task's table partitions current by following their changelogs with
one group-less consumer (a long-polling fetch, as an agent's), applying each fetched batch
to the same store an active partition would use, with its offset. A copy it starts on is
first brought to the changelog's end by the recovery's rules (``state/recovery.py``: a
store that cannot be trusted is wiped and rebuilt).
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
        """(table, partition) -> changelog records the copy is behind (about every second)."""
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
        client_id = f"{self.app.conf.client_id}-standby"
        reader = self.app.transport.consumer(
            client_id=client_id, isolation_level=self.app.conf.isolation_level
        )
        catch_up = self.app.transport.consumer(
            client_id=client_id, isolation_level=self.app.conf.isolation_level
        )
        following = _Following()
        backoff = 0.1
        try:
            while self.numbers:
                try:
                    await self._read(reader, catch_up, following, clock)
                    backoff = 0.1
                except (TransportError, RecoveryError) as exc:  # an outage: try again
                    log.warning("standby reading failed: %s (retrying in %.1f s)", exc, backoff)
                    following.clear()  # positions are set again from the stores
                    await clock.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a broken store: the worker goes on, cold
            log.exception("standby replicas stopped: their stores are no longer kept warm")
        finally:
            await reader.close()
            await catch_up.close()

    async def _read(
        self, reader: Consumer, catch_up: Consumer, following: _Following, clock: AsyncClock
    ) -> None:
        """One turn: follow what is wanted now, then apply one fetch (waiting up to
        ``table_standby_interval`` for records) and, about every second, measure lag."""
        wanted = {
            TopicPartition(table.changelog_topic.name, number): (table, number)
            for table in self.tables()
            for number in sorted(self.numbers)
            if number < table.partitions and not table.owns(number)
        }
        if wanted.keys() != following.partitions.keys():
            for tp, (table, number) in wanted.items():
                if tp not in following.partitions:
                    # a new copy: the recovery's rules bring it to the changelog's end
                    # (wiping a store that cannot be trusted), then the reader goes on
                    result = await recover_partition(
                        catch_up, table.standby_partition(number), tp, following=True
                    )
                    self.records_applied += result.records
            following.partitions = dict(wanted)
            reader.assign(wanted)
            for tp, (table, number) in wanted.items():
                stored = table.standby_partition(number).changelog_offset()
                reader.seek(tp, 0 if stored is None else stored + 1)
        if not wanted:
            await clock.sleep(self.app.conf.table_standby_interval)
            return
        interval_ms = round(self.app.conf.table_standby_interval * 1000)
        fetched = await reader.getmany(timeout_ms=interval_ms, max_records=10_000)
        for tp, records in fetched.items():
            owner = following.partitions.get(tp)
            if owner is None or not records:
                continue
            table, number = owner
            if number not in self.numbers or table.owns(number):
                continue  # promoted or released while fetching
            updates = {r.key: r.value for r in records if r.key is not None}
            try:
                table.standby_partition(number).write(updates, records[-1].offset)
            except StoreClosedError:
                continue
            self.records_applied += len(records)
        now = asyncio.get_running_loop().time()
        if now >= following.next_lag_check:
            following.next_lag_check = now + 1.0
            ends = await reader.end_offsets(list(following.partitions))
            for tp, end in ends.items():
                table, number = following.partitions[tp]
                position = await reader.position(tp)
                self.lag[(table.name, number)] = max(0, end - position)


class _Following:
    """What the standby reader is assigned, and when lag is measured next."""

    def __init__(self) -> None:
        self.partitions: dict[TopicPartition, tuple[Table, int]] = {}
        self.next_lag_check = 0.0

    def clear(self) -> None:
        self.partitions = {}
