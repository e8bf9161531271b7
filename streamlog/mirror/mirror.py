"""Copy topics from one log to another, resumably: the engine of ``streamlog mirror``.

One consumer reads the selected source partitions (``read_committed``: an aborted
transaction is not copied) and one idempotent producer writes each record, with its key,
value, headers and timestamp, to the same partition number of the same topic on the
target. Every ``checkpoint_interval_s`` the mirror waits for the target's
acknowledgements, checks that each partition's last record landed at the offset it
expected (it must be the target partition's only writer), and records its position and
new offset-map breakpoints in its state topics on the target (``state.py``).

Restart without duplicates, with or without transactions on the target: records written
after the last checkpoint are already on the target; on start the mirror reads each
target partition from its checkpoint to its end, and the first that many source records
after the checkpoint are matched against them (key and value must be equal, else
``TargetDivergedError``) instead of being sent again. The idempotent producer keeps a
retried batch from landing twice within one run; the matching covers a crash between
runs. Before the first record goes to a partition, a first checkpoint is written, so
even a crash in the first second leaves something to match against.

Consumer groups (``groups.py``) are translated through the offset map after each
checkpoint (every ``group_sync_interval_s``) and at the end of a ``once`` run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any

from streamlog.mirror.ends import log_ends
from streamlog.mirror.errors import (
    LeaseLostError,
    MirrorError,
    NoTopicsError,
    SameLogError,
    TargetDivergedError,
)
from streamlog.mirror.groups import GroupSelector, read_group_offsets, sync_groups
from streamlog.mirror.identity import reads_its_own_target
from streamlog.mirror.lease import MirrorLease, leased_by_another
from streamlog.mirror.offset_map import OffsetMap, PartitionOffsets
from streamlog.mirror.results import (
    MirrorOptions,
    MirrorProgress,
    MirrorSummary,
    PartitionProgress,
    ProgressCallback,
)
from streamlog.mirror.state import (
    Checkpoint,
    ensure_state_topics,
    load_state,
    send_breakpoints,
    send_checkpoints,
)
from streamlog.mirror.topics import TopicSelector, prepare_target_topic
from streamlog.transport.base import Admin, Consumer, Producer, Transport
from streamlog.transport.errors import (
    BrokerUnavailableError,
    ProduceError,
    RecordRejectedError,
    TransportClosedError,
    TransportError,
)
from streamlog.transport.types import ConsumerRecord, TopicPartition

__all__ = ["Mirror", "RETRIABLE"]

log = logging.getLogger(__name__)

#: Failures that end a session but not the mirror: the other side may come back.
RETRIABLE: tuple[type[BaseException], ...] = (
    BrokerUnavailableError,
    ProduceError,
    TransportClosedError,
    ConnectionError,
    TimeoutError,
)
_FIRST_BACKOFF_S = 0.5
# A once run finding the name's lease held waits this long: a killed mirror's membership
# expires after its session timeout (lease.LEASE_SESSION_TIMEOUT_MS); a live mirror's never
# does.
_ONCE_LEASE_WAIT_S = 15.0
_MAX_BACKOFF_S = 10.0


def _record_bytes(record: ConsumerRecord) -> int:
    key, value, headers = record.key, record.value, record.headers
    size = (len(key) if key is not None else 0) + (len(value) if value is not None else 0)
    for name, header in headers:
        size += len(name) + (len(header) if header is not None else 0)
    return size


class Mirror:
    """Copies the selected topics of ``source`` into ``target`` (both started transports,
    closed by their owner). ``run`` returns after a ``once`` copy; a continuous mirror
    runs until cancelled, and records a last checkpoint before the cancellation goes on."""

    def __init__(
        self,
        source: Transport,
        target: Transport,
        options: MirrorOptions | None = None,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.options = options or MirrorOptions()
        self.offset_map = OffsetMap()
        self.summary = MirrorSummary()
        self._selector = TopicSelector(self.options.topics)
        self._groups = (
            GroupSelector(self.options.groups) if self.options.groups is not None else None
        )
        self._on_progress = on_progress
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        # One admin client per side for a session: each ``admin()`` call makes a client
        # with connections of its own, kept until the transport closes, and topic
        # refreshes and group syncs come every few seconds for as long as the mirror runs.
        self._source_admin: Admin | None = None
        self._target_admin: Admin | None = None
        self._started = 0.0
        self._to_match: dict[TopicPartition, deque[ConsumerRecord]] = {}
        self._unacknowledged = 0  # records sent since the last checkpoint
        self._progressed = False  # a checkpoint was made in this session
        self._lease: MirrorLease | None = None
        self._last_sent: dict[TopicPartition, tuple[Awaitable[Any], int]] = {}
        self._new_breakpoints: dict[TopicPartition, list[tuple[int, int]]] = {}
        self._written: dict[TopicPartition, Checkpoint] = {}
        self._state_breakpoints: dict[TopicPartition, list[tuple[int, int]]] = {}
        self._state_checkpoints: dict[TopicPartition, Checkpoint] = {}

    # ------------------------------------------------------------------ running

    async def run(self) -> MirrorSummary:
        """Mirror until done (``once``) or cancelled. An outage of either side (a broker
        restarting, unreachable, refusing writes) ends the session: the mirror starts
        afresh from its checkpoints on the target, as a restarted process would, after a
        backoff, for as long as ``retry_for_s`` of failures in a row allows."""
        self._started = time.monotonic()
        failing_since: float | None = None
        backoff = _FIRST_BACKOFF_S
        try:
            while True:
                self._progressed = False
                try:
                    await self._session()
                    return self.summary
                except LeaseLostError as exc:
                    log.warning("mirror: %s; waiting to hold it again", exc)
                    self._reset()
                    continue
                except RETRIABLE as exc:
                    if isinstance(exc, RecordRejectedError):
                        raise  # the target refuses these records for good: say so now
                    now = time.monotonic()
                    if self._progressed or failing_since is None:
                        failing_since, backoff = now, _FIRST_BACKOFF_S
                    if now - failing_since + backoff > self.options.retry_for_s:
                        raise
                    log.warning(
                        "mirror interrupted (%s: %s); resuming from the checkpoints on the "
                        "target in %.1f s",
                        type(exc).__name__,
                        " ".join(str(exc).split()),
                        backoff,
                    )
                    self._reset()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_S)
        finally:
            self._finish_summary()

    async def _session(self) -> None:
        """One run of the mirror with its own clients, from the state on the target,
        holding the name's lease (``lease.py``): a continuous mirror waits for it as a
        standby; a ``once`` run goes ahead when nobody holds it, waits out a killed
        mirror's membership, and is refused while another mirror of the name runs."""
        self._source_admin = source_admin = self.source.admin()
        self._target_admin = target_admin = self.target.admin()
        lease = None
        try:
            await ensure_state_topics(target_admin)
            if not self.options.once or await leased_by_another(target_admin, self.options.name):
                lease = MirrorLease(
                    self.target, self.options.name, before_giving_up=self._flush_in_flight
                )
                self._lease = lease
                await lease.acquire(_ONCE_LEASE_WAIT_S if self.options.once else None)
            await self._run_session(source_admin, target_admin)
        finally:
            self._lease = None
            if lease is not None:
                await lease.release()
            self._source_admin = self._target_admin = None
            await source_admin.close()
            await target_admin.close()

    async def _flush_in_flight(self) -> None:
        """Before the lease moves: the records sent so far reach the target, where the
        next holder finds and matches them."""
        if self._producer is not None and not getattr(self._producer, "closed", False):
            await self._producer.flush()

    async def _run_session(self, source_admin: Admin, target_admin: Admin) -> None:
        name = self.options.name
        state = await load_state(self.target, name)
        self._state_checkpoints = state.checkpoints
        self._state_breakpoints = state.breakpoints
        self._producer = self.target.producer(
            acks=-1,
            idempotent=True,
            linger_ms=self.options.producer_linger_ms,
            compression=self.options.compression,
            client_id=f"streamlog-mirror-{name}",
        )
        self._consumer = self.source.consumer(
            client_id=f"streamlog-mirror-{name}",
            isolation_level="read_committed",
            auto_offset_reset="earliest",
        )
        try:
            client_id = f"streamlog-mirror-{name}"
            if await reads_its_own_target(self.source, source_admin, self._producer, client_id):
                raise SameLogError(
                    "the source and the target are the same log (reached by two URLs): "
                    "mirroring it onto itself would append every record to it again"
                )
            group_snapshot = None
            if self.options.once and self._groups is not None:
                # before the end offsets: every committed offset read is then within them
                group_snapshot = await read_group_offsets(source_admin, self._groups)
            await self._add_topics(first=True)
            if self.options.once:
                await self._copy_until(await self._end_offsets())
                await self._checkpoint()
                await self._check_all_matched()
                await self._sync_groups(group_snapshot)
            else:
                await self._follow()
        except asyncio.CancelledError:
            try:
                await self._checkpoint()
            except TransportError as exc:  # an outage as we stop: resumes from the last one
                log.warning("no last checkpoint on the way out (%s)", exc)
            raise
        finally:
            await self._consumer.close()
            await self._producer.close()

    def _reset(self) -> None:
        """Forget the session's positions: the next one reads them back from the target."""
        self.offset_map = OffsetMap()
        self._to_match.clear()
        self._last_sent.clear()
        self._new_breakpoints.clear()
        self._written.clear()
        self._unacknowledged = 0

    async def _follow(self) -> None:
        now = time.monotonic()
        next_groups = now + self.options.group_sync_interval_s
        next_topics = now + self.options.topic_refresh_interval_s
        while True:
            await self._copy_for(self.options.checkpoint_interval_s)
            await self._checkpoint()
            now = time.monotonic()
            if self._groups is not None and now >= next_groups:
                await self._sync_groups(None)
                next_groups = now + self.options.group_sync_interval_s
            if now >= next_topics:
                await self._add_topics(first=False)
                next_topics = now + self.options.topic_refresh_interval_s

    async def _copy_for(self, seconds: float) -> None:
        consumer = self._require_consumer()
        deadline = time.monotonic() + seconds
        while self._consumer_has_partitions():
            left = deadline - time.monotonic()
            if left <= 0 or self._unacknowledged >= self.options.max_pending_records:
                return
            batch = await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            if self._lease is not None:
                await self._lease.check()  # nothing more is sent once it moved
            await self._copy(batch)
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))

    async def _copy_until(self, ends: dict[TopicPartition, int]) -> None:
        """Copy until every partition's position reaches its end offset in ``ends``."""
        consumer = self._require_consumer()
        waiting = {tp for tp, end in ends.items() if self.offset_map[tp].source_next < end}
        next_checkpoint = time.monotonic() + self.options.checkpoint_interval_s
        while waiting:
            batch = await consumer.getmany(timeout_ms=500)
            await self._copy(batch)
            for tp in list(waiting):
                if await consumer.position(tp) >= ends[tp]:
                    waiting.discard(tp)
            now = time.monotonic()
            if now >= next_checkpoint or self._unacknowledged >= self.options.max_pending_records:
                await self._checkpoint()
                next_checkpoint = now + self.options.checkpoint_interval_s

    async def _copy(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        producer = self._require_producer()
        summary = self.summary
        for tp, records in batch.items():
            entry = self.offset_map[tp]
            progress = summary.partitions[tp]
            to_match = self._to_match.get(tp)
            send = producer.send
            sent_bytes = 0
            sent = 0
            last: tuple[Awaitable[Any], int] | None = None
            for record in records:
                if to_match:
                    self._match(tp, entry, record, to_match.popleft())
                    progress.matched += 1
                    continue
                target = entry.target_next
                handle = await send(
                    tp.topic,
                    record.value,
                    key=record.key,
                    partition=tp.partition,
                    headers=record.headers,
                    timestamp_ms=record.timestamp,
                )
                last = (handle, target)
                if entry.note(record.offset, target):
                    self._new_breakpoints.setdefault(tp, []).append((record.offset, target))
                sent_bytes += _record_bytes(record)
                sent += 1
            if last is not None:
                self._last_sent[tp] = last
            progress.copied += sent
            summary.records += sent
            summary.bytes += sent_bytes
            self._unacknowledged += sent

    def _match(
        self,
        tp: TopicPartition,
        entry: PartitionOffsets,
        record: ConsumerRecord,
        there: ConsumerRecord,
    ) -> None:
        """A source record the target holds already (copied before a crash): check it is
        the same record, and map its offsets."""
        if record.key != there.key or record.value != there.value:
            raise TargetDivergedError(
                f"{tp.topic}[{tp.partition}]: the target's record at offset {there.offset} "
                f"is not the source's record at offset {record.offset}, which the mirror "
                "would have written there: another producer writes to this target partition. "
                "Nothing was changed; point the mirror at an empty target topic or another "
                "--name"
            )
        if entry.note(record.offset, there.offset):
            self._new_breakpoints.setdefault(tp, []).append((record.offset, there.offset))
        self.summary.matched += 1

    # --------------------------------------------------------------- checkpoints

    async def _checkpoint(self) -> None:
        """Wait for every copied record's acknowledgement, check where each partition's
        last one landed, then record the positions and new breakpoints on the target."""
        producer = self._require_producer()
        consumer = self._require_consumer()
        await producer.flush()  # every batch acknowledged or failed
        self._unacknowledged = 0
        if self._lease is not None:
            await self._lease.check()  # the next holder writes the checkpoints now
        # The last record of each partition says for all: a record lost before it (a
        # failed batch) would have moved it to a lower offset, or failed it as well (the
        # idempotent producer refuses to send past a gap in its sequence numbers).
        for tp, (handle, expected) in self._last_sent.items():
            landed = (await handle).offset
            if landed != expected:
                raise TargetDivergedError(
                    f"{tp.topic}[{tp.partition}]: a copied record landed at target offset "
                    f"{landed}, not {expected}: another producer writes to this target "
                    "partition, so the mirror's offsets there cannot be trusted"
                )
        self._last_sent.clear()
        for tp in self.offset_map.partitions():
            entry = self.offset_map[tp]
            if not self._to_match.get(tp):
                # markers and aborted records after the last copied record: passed too
                entry.source_next = max(entry.source_next, await consumer.position(tp))
        pending: list[Awaitable[Any]] = []
        for tp, points in self._new_breakpoints.items():
            pending += await send_breakpoints(producer, self.options.name, tp, points)
        self._new_breakpoints.clear()
        changed = []
        for tp in self.offset_map.partitions():
            entry = self.offset_map[tp]
            checkpoint = Checkpoint(entry.source_next, entry.target_next)
            if self._written.get(tp) != checkpoint:
                changed.append((tp, checkpoint))
        pending += await send_checkpoints(producer, self.options.name, changed)
        await producer.flush()
        if pending:
            await asyncio.gather(*pending)
        self._written.update(changed)
        self._progressed = True
        await self._report_progress()

    async def _report_progress(self) -> None:
        consumer = self._require_consumer()
        tps = self.offset_map.partitions()
        ends = await consumer.end_offsets(tps) if tps else {}
        lags = {}
        for tp in tps:
            progress = self.summary.partitions[tp]
            entry = self.offset_map[tp]
            progress.source_next = entry.source_next
            progress.target_next = entry.target_next
            progress.lag = lags[tp] = max(0, ends.get(tp, entry.source_next) - entry.source_next)
        if self._on_progress is not None:
            self._on_progress(
                MirrorProgress(
                    self.summary.records,
                    self.summary.bytes,
                    time.monotonic() - self._started,
                    lags,
                )
            )

    # -------------------------------------------------------------- partitions

    async def _add_topics(self, *, first: bool) -> None:
        """Find the selected topics (and new partitions of known ones), prepare their
        twins on the target, and start reading the partitions not read yet."""
        source_admin, target_admin = self._require_admins()
        names = self._selector.select(await source_admin.list_topics())
        if not names and first and self.options.once:
            raise NoTopicsError(f"no topic on the source matches {self._selector.describe()!r}")
        if not names and first:
            log.warning("no topic on the source matches %r yet", self._selector.describe())
        new: list[TopicPartition] = []
        for name in names:
            known = self.summary.topics.get(name)
            info = await source_admin.describe_topic(name)
            if (
                known is not None
                and known.partitions >= len(info.partitions)
                and TopicPartition(name, known.partitions - 1) in self.offset_map
            ):
                continue  # prepared, and read since this session started
            topic = await prepare_target_topic(source_admin, target_admin, name)
            self.summary.topics[name] = topic
            new += [
                TopicPartition(name, p)
                for p in range(topic.partitions)
                if TopicPartition(name, p) not in self.offset_map
            ]
        if new:
            await self._resume(new)
            consumer = self._require_consumer()
            partitions = self.offset_map.partitions()
            if not first:  # keep what was read: reassigning may drop positions
                for tp in partitions:
                    if tp not in new and not self._to_match.get(tp):
                        entry = self.offset_map[tp]
                        entry.source_next = max(entry.source_next, await consumer.position(tp))
            consumer.assign(partitions)
            for tp in partitions:
                consumer.seek(tp, self.offset_map[tp].source_next)

    async def _resume(self, tps: list[TopicPartition]) -> None:
        """Place each new partition where the mirror's state on the target says, and read
        the records the target got after that checkpoint, to match instead of resend."""
        reader = self.target.consumer(client_id=f"streamlog-mirror-{self.options.name}")
        try:
            target_ends = await log_ends(self.target, tps, f"streamlog-mirror-{self.options.name}")
            source_starts = await self._require_consumer().beginning_offsets(tps)
            tails: dict[TopicPartition, tuple[int, int]] = {}
            first: list[tuple[TopicPartition, Checkpoint]] = []
            for tp in tps:
                end = target_ends[tp]
                checkpoint = self._state_checkpoints.get(tp)
                if checkpoint is None:
                    entry = self.offset_map.start(tp, source_starts[tp], end)
                    first.append((tp, Checkpoint(entry.source_next, entry.target_next)))
                    if end > 0:
                        log.warning(
                            "%s[%d] holds %d records on the target already: the mirror "
                            "appends after them",
                            tp.topic,
                            tp.partition,
                            end,
                        )
                else:
                    if end < checkpoint.target_next:
                        raise TargetDivergedError(
                            f"{tp.topic}[{tp.partition}] ends at offset {end} on the target, "
                            f"before the mirror's checkpoint ({checkpoint.target_next}): the "
                            "topic was emptied or recreated there. Resuming would skip "
                            "records; mirror under another --name to start afresh"
                        )
                    entry = self.offset_map.start(
                        tp, checkpoint.source_next, checkpoint.target_next
                    )
                    for source, target in self._state_breakpoints.get(tp, ()):
                        entry.add_breakpoint(source, target)
                    entry.forget_from(checkpoint.source_next)
                    if end > checkpoint.target_next:
                        tails[tp] = (checkpoint.target_next, end)
                progress = self.summary.partitions.get(tp)
                if progress is None:
                    self.summary.partitions[tp] = PartitionProgress(
                        entry.source_next, entry.target_next
                    )
                else:  # a new session: the counts go on
                    progress.source_next, progress.target_next = (
                        entry.source_next,
                        entry.target_next,
                    )
            if tails:
                await self._read_tails(reader, tails)
            if first:  # before any record goes there (module docstring)
                producer = self._require_producer()
                pending = await send_checkpoints(producer, self.options.name, first)
                await producer.flush()
                await asyncio.gather(*pending)
                self._written.update(first)
        finally:
            await reader.close()

    async def _read_tails(
        self, reader: Consumer, tails: dict[TopicPartition, tuple[int, int]]
    ) -> None:
        reader.assign(tails)
        for tp, (start, _) in tails.items():
            reader.seek(tp, start)
            self._to_match[tp] = deque()
        waiting = set(tails)
        while waiting:
            for tp, records in (await reader.getmany(timeout_ms=500)).items():
                end = tails[tp][1]
                self._to_match[tp].extend(r for r in records if r.offset < end)
            for tp in list(waiting):
                if await reader.position(tp) >= tails[tp][1]:
                    waiting.discard(tp)
        for tp, matched in self._to_match.items():
            log.info(
                "%s[%d]: %d records on the target after the mirror's checkpoint: matched "
                "with the source instead of copied again",
                tp.topic,
                tp.partition,
                len(matched),
            )

    async def _end_offsets(self) -> dict[TopicPartition, int]:
        consumer = self._require_consumer()
        return await consumer.end_offsets(self.offset_map.partitions())

    async def _check_all_matched(self) -> None:
        left = {tp: len(records) for tp, records in self._to_match.items() if records}
        if left:
            where = ", ".join(f"{tp.topic}[{tp.partition}]: {n}" for tp, n in sorted(left.items()))
            raise TargetDivergedError(
                f"the target holds records the source does not have after the mirror's "
                f"checkpoint ({where}): another producer wrote there, or the source lost them"
            )

    async def _sync_groups(self, snapshot: dict[str, dict[TopicPartition, int]] | None) -> None:
        if self._groups is None:
            return
        source_admin, target_admin = self._require_admins()
        done = await sync_groups(
            source_admin, target_admin, self.target, self._groups, self.offset_map, snapshot
        )
        for group, offsets in done.items():
            self.summary.groups.setdefault(group, {}).update(offsets)

    # ------------------------------------------------------------------ helpers

    def _finish_summary(self) -> None:
        self.summary.elapsed_s = time.monotonic() - self._started
        for tp in self.offset_map.partitions():
            entry = self.offset_map[tp]
            progress = self.summary.partitions[tp]
            progress.source_next = entry.source_next
            progress.target_next = entry.target_next
        self.summary.records = sum(p.copied for p in self.summary.partitions.values())

    def _consumer_has_partitions(self) -> bool:
        return bool(self.offset_map.partitions())

    def _require_consumer(self) -> Consumer:
        if self._consumer is None:
            raise MirrorError("the mirror is not running (Mirror.run starts it)")
        return self._consumer

    def _require_admins(self) -> tuple[Admin, Admin]:
        if self._source_admin is None or self._target_admin is None:
            raise MirrorError("the mirror is not running (Mirror.run starts it)")
        return self._source_admin, self._target_admin

    def _require_producer(self) -> Producer:
        if self._producer is None:
            raise MirrorError("the mirror is not running (Mirror.run starts it)")
        return self._producer
