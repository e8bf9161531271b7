"""The embedded consumer: reads stored batches straight from the partition logs.

``getmany`` reads each assigned partition from its position (``PartitionLog.read``, up to
1 MiB of whole batches per partition per read), decodes them with ``decode_batch_as``
(CRC-checked, C kernel when built), drops records below the position (a read starts at
the batch holding it), skips control batches (transaction markers), and keeps what it
decoded but did not return in a per-partition buffer for the next call. With nothing to
return it long-polls: it sleeps on the transport's notifier, which producers wake after
each append, until data arrives or ``timeout_ms`` passes.

Positions start, for a partition with none, at the group's committed offset when there is
one, else at ``auto_offset_reset`` ("earliest", "latest", or "none" to raise); a position
outside the log (retention moved the start past it) is reset the same way.

``subscribe`` joins an in-process consumer group (``groups.py``): partitions are split by
range assignment, and the listener is told ``on_partitions_revoked`` then
``on_partitions_assigned`` on each rebalance, from inside ``subscribe``/``getmany`` (eager
protocol, as Kafka's classic group protocol). Commits go to the log's
``__consumer_offsets`` through ``LogManager.group_offsets``.

``isolation_level="read_committed"`` reads as Kafka's consumers read: up to each
partition's last stable offset (``PartitionLog.read`` with ``READ_COMMITTED`` returns no
batch at or past it, and the aborted transactions with records in what it returns); a
transactional batch of an aborted transaction (its producer id, from the transaction's
first offset to its abort marker) is dropped; ``end_offsets``, ``seek_to_end`` and the
"latest" reset use the last stable offset. A commit marker moves that offset: the
transport's coordinator wakes the consumers waiting on the partitions it ended.
``heartbeat_interval_ms`` has no use in-process: liveness is "polled within
``session_timeout_ms`` during a rebalance".
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from streamlog.log import AbortedTxn, GroupOffsetStore, IsolationLevel, LogManager, PartitionLog
from streamlog.log import OffsetAndMetadata as LogOffsetAndMetadata
from streamlog.log import errors as log_errors
from streamlog.log.batch_header import HEADER_SIZE, peek_offsets
from streamlog.log.records import decode_batch_as
from streamlog.transport.base import RebalanceListener, tell_lost
from streamlog.transport.embedded.errors import translate, translated
from streamlog.transport.embedded.groups import ConsumerGroup, Member
from streamlog.transport.errors import (
    CorruptBatchError,
    GroupError,
    InvalidConfigError,
    MembershipLostError,
    OffsetOutOfRangeError,
    RebalanceInProgressError,
    TransportClosedError,
    TransportError,
    UnknownTopicError,
)
from streamlog.transport.types import (
    ConsumerGroupMetadata,
    ConsumerRecord,
    GroupPeer,
    OffsetAndMetadata,
    TopicPartition,
)

if TYPE_CHECKING:
    from streamlog.transport.embedded.transport import EmbeddedTransport

__all__ = ["EmbeddedConsumer"]

log = logging.getLogger(__name__)

PARTITION_FETCH_BYTES = 1 << 20  # Kafka's max.partition.fetch.bytes default
OFFSET_RESETS = ("earliest", "latest", "none")


class _Buffer:
    """Decoded records of one partition not yet returned; ``end`` follows the last batch."""

    __slots__ = ("records", "index", "end")

    def __init__(self, records: list[ConsumerRecord], end: int) -> None:
        self.records = records
        self.index = 0
        self.end = end


class EmbeddedConsumer:
    """See the module docstring. Made by ``EmbeddedTransport.consumer``."""

    def __init__(
        self,
        transport: EmbeddedTransport,
        *,
        group_id: str | None = None,
        client_id: str = "streamlog",
        auto_offset_reset: str = "earliest",
        session_timeout_ms: int = 10_000,
        max_poll_records: int = 10_000,
        fetch_max_bytes: int = 50 * 1024 * 1024,
        isolation_level: str = "read_uncommitted",
        standby_replicas: int = 0,
    ) -> None:
        if auto_offset_reset not in OFFSET_RESETS:
            raise InvalidConfigError(
                f"auto_offset_reset must be one of {OFFSET_RESETS}, not {auto_offset_reset!r}"
            )
        if isolation_level not in ("read_uncommitted", "read_committed"):
            raise InvalidConfigError(f"unknown isolation_level {isolation_level!r}")
        if standby_replicas < 0:
            raise InvalidConfigError(f"standby_replicas must be 0 or more, not {standby_replicas}")
        if max_poll_records < 1:
            raise InvalidConfigError(f"max_poll_records must be positive, not {max_poll_records}")
        self.group_id = group_id
        self.client_id = client_id
        self.auto_offset_reset = auto_offset_reset
        self.isolation_level = isolation_level
        self._isolation = (
            IsolationLevel.READ_COMMITTED
            if isolation_level == "read_committed"
            else IsolationLevel.READ_UNCOMMITTED
        )
        self._transport = transport
        self._manager: LogManager = transport.manager
        self._session_timeout_s = session_timeout_ms / 1000
        self._max_poll_records = max_poll_records
        self._fetch_bytes = max(1, min(PARTITION_FETCH_BYTES, fetch_max_bytes))
        self._assignment: list[TopicPartition] = []
        self._positions: dict[TopicPartition, int | None] = {}
        self._buffers: dict[TopicPartition, _Buffer] = {}
        self._paused: set[TopicPartition] = set()
        self._rotation = 0
        self._topics: frozenset[str] = frozenset()
        self._listener: RebalanceListener | None = None
        self._group: ConsumerGroup | None = None
        self._member: Member | None = None
        self._user_data: bytes | None = None
        self._standby_replicas = standby_replicas
        self._peers: tuple[GroupPeer, ...] = ()
        self._standby: frozenset[TopicPartition] = frozenset()  # as of the last completion
        self._finalizer: weakref.finalize | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"EmbeddedConsumer({self._transport.url!r}, group_id={self.group_id!r}, "
            f"client_id={self.client_id!r})"
        )

    # -- assignment ----------------------------------------------------------------------

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self._check_open()
        if self._member is not None:
            raise GroupError("this consumer subscribed to topics; it cannot also assign()")
        self._set_assignment({TopicPartition(*tp) for tp in partitions})

    def _set_assignment(self, partitions: set[TopicPartition]) -> None:
        for tp in list(self._positions):
            if tp not in partitions:
                del self._positions[tp]
                self._buffers.pop(tp, None)
        for tp in partitions:
            self._positions.setdefault(tp, None)
        self._paused &= partitions
        self._assignment = sorted(partitions)

    def assignment(self) -> set[TopicPartition]:
        return set(self._assignment)

    def pause(self, *partitions: TopicPartition) -> None:
        self._check_open()
        targets = [TopicPartition(*tp) for tp in partitions]
        for tp in targets:
            self._check_assigned(tp)
        self._paused.update(targets)

    def resume(self, *partitions: TopicPartition) -> None:
        targets = [TopicPartition(*tp) for tp in partitions]
        self._paused.difference_update(targets)
        for tp in targets:  # a getmany asleep on them wakes up
            self._transport.notifier.notify(tp)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def membership_lost(self) -> bool:
        return self._member is not None and self._member.evicted

    def group_metadata(self) -> ConsumerGroupMetadata:
        """This member's group, generation and member id (see ``Consumer``)."""
        if self.group_id is None:
            raise GroupError("group_metadata() needs a consumer created with a group_id")
        member = self._member
        if member is None:
            return ConsumerGroupMetadata(self.group_id)
        return ConsumerGroupMetadata(self.group_id, member.generation, member.member_id)

    def joining(self) -> bool:
        return False  # a member completes a generation inside getmany, nothing waits on it

    def group_peers(self) -> tuple[GroupPeer, ...]:
        return self._peers if self._member is not None else ()

    def standby_assignment(self) -> frozenset[TopicPartition]:
        return self._standby if self._member is not None else frozenset()

    async def subscribe(
        self,
        topics: Iterable[str],
        listener: RebalanceListener | None = None,
        *,
        user_data: bytes | None = None,
    ) -> None:
        """Join the group ``group_id`` for ``topics`` (missing ones are auto-created if the
        transport allows); the first assignment is taken here when it is free."""
        self._check_open()
        group_id = self.group_id
        if group_id is None:
            raise GroupError("subscribe() needs a consumer created with a group_id")
        topics = frozenset(topics)
        if not topics:
            raise GroupError("subscribe() needs at least one topic")
        if self._member is None and self._assignment:
            raise GroupError("this consumer has assigned partitions; it cannot also subscribe()")
        for topic in sorted(topics):
            try:
                self._transport.ensure_topic(topic)
            except UnknownTopicError:
                pass  # joined anyway: the group rebalances when the topic appears
        self._topics = topics
        self._listener = listener
        self._user_data = user_data
        if self._group is None or self._member is None:
            self._join(group_id)
        else:
            self._group.resubscribe(self._member, topics, user_data)
        await self._sync_group(asyncio.get_running_loop().time())

    def _join(self, group_id: str) -> tuple[ConsumerGroup, Member]:
        group = self._transport.groups.group(group_id)
        member = group.join(
            self.client_id,
            self._topics,
            self._session_timeout_s,
            self._user_data,
            standby_replicas=self._standby_replicas,
        )
        self._group, self._member = group, member
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(self, group.mark_dead, member.member_id)
        return group, member

    async def _sync_group(self, deadline: float) -> None:
        """Take part in a pending rebalance (module docstring of ``groups.py``)."""
        group, member = self._group, self._member
        if group is None or member is None:
            raise GroupError(f"{self!r} is not a member of a group")
        member.touch()
        group.reap()
        loop = asyncio.get_running_loop()
        while True:
            if member.evicted:
                # Removed for not polling during a rebalance: what we held is gone.
                log.warning("%r was removed from group %r; rejoining", self, group.group_id)
                lost = set(self._assignment)
                self._set_assignment(set())
                if lost and self._listener is not None:
                    await tell_lost(self._listener, lost)
                group, member = self._join(group.group_id)
            if member.generation == group.generation:
                return
            generation = group.generation
            if member.owned - member.target:
                revoked = set(member.owned - member.target)
                if self._listener is not None:
                    await self._listener.on_partitions_revoked(revoked)
                group.release(member, revoked)
                self._set_assignment(set(member.owned))
                continue  # the callback may have taken a while: look again
            blockers = group.blockers(member)
            if blockers:
                now = time.monotonic()  # the clock of Member.last_seen
                for other in blockers:
                    idle = now - max(other.last_seen, group.rebalance_started)
                    if idle > other.session_timeout_s:
                        log.warning(
                            "evicting member %s from group %r: no poll in the %.1f s since "
                            "a rebalance began",
                            other.member_id,
                            group.group_id,
                            idle,
                        )
                        group.evict(other)
                if group.generation != generation or not group.blockers(member):
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                wait = min(remaining, min(b.session_timeout_s for b in blockers))
                await self._transport.notifier.wait((group.key,), wait)
                member.touch()
                if self._closed:
                    return
                continue
            added = set(group.complete(member))
            self._peers = group.peers()
            self._standby = member.standby
            self._set_assignment(set(member.owned))
            if self._listener is not None:
                await self._listener.on_partitions_assigned(added)

    # -- positions -----------------------------------------------------------------------

    def _check_assigned(self, tp: TopicPartition) -> None:
        if tp not in self._positions:
            raise TransportError(f"partition {tp.topic}-{tp.partition} is not assigned")

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._check_open()
        tp = TopicPartition(*partition)
        self._check_assigned(tp)
        if offset < 0:
            raise OffsetOutOfRangeError(f"cannot seek to a negative offset ({offset})")
        self._positions[tp] = offset
        self._buffers.pop(tp, None)

    def _targets(self, partitions: tuple[TopicPartition, ...]) -> list[TopicPartition]:
        if not partitions:
            return list(self._assignment)
        targets = [TopicPartition(*tp) for tp in partitions]
        for tp in targets:
            self._check_assigned(tp)
        return targets

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self._check_open()
        for tp in self._targets(partitions):
            self.seek(tp, self._plog(tp).log_start_offset)

    async def seek_to_end(self, *partitions: TopicPartition) -> None:
        self._check_open()
        for tp in self._targets(partitions):
            self.seek(tp, self._end_of(self._plog(tp)))

    async def seek_to_timestamp(self, timestamp_ms: int, *partitions: TopicPartition) -> None:
        self._check_open()
        for tp in self._targets(partitions):
            plog = self._plog(tp)
            with translated():
                found = await asyncio.to_thread(plog.offset_for_timestamp, timestamp_ms)
            self.seek(tp, plog.log_end_offset if found is None else found[0])

    async def position(self, partition: TopicPartition) -> int:
        self._check_open()
        tp = TopicPartition(*partition)
        self._check_assigned(tp)
        position = self._positions[tp]
        if position is None:
            position = self._positions[tp] = self._initial_position(tp)
        return position

    def _plog(self, tp: TopicPartition) -> PartitionLog:
        with translated():
            return self._manager.partition(tp.topic, tp.partition)

    def _offsets_store(self) -> GroupOffsetStore:
        store = self._manager.group_offsets
        if store is None:
            raise TransportClosedError("the log is closed")
        return store

    def _initial_position(self, tp: TopicPartition) -> int:
        if self.group_id is not None:
            found = self._offsets_store().fetch(self.group_id, [(tp.topic, tp.partition)])
            if found:
                return found[(tp.topic, tp.partition)].offset
        return self._reset_position(tp)

    def _reset_position(self, tp: TopicPartition) -> int:
        plog = self._plog(tp)
        if self.auto_offset_reset == "earliest":
            return plog.log_start_offset
        if self.auto_offset_reset == "latest":
            return self._end_of(plog)
        raise OffsetOutOfRangeError(
            f"no valid position for {tp.topic}-{tp.partition} and auto_offset_reset is 'none' "
            f"(log holds [{plog.log_start_offset}, {plog.log_end_offset}])"
        )

    # -- fetching ------------------------------------------------------------------------

    async def getmany(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records from the positions on, waiting up to ``timeout_ms`` for some."""
        self._check_open()
        limit = max_records or self._max_poll_records
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0, timeout_ms) / 1000
        notifier = self._transport.notifier
        while True:
            if self._member is not None:
                await self._sync_group(deadline)
                self._check_open()
            fetched = self._fetch(limit)
            if fetched:
                return fetched
            remaining = deadline - loop.time()
            if remaining <= 0:
                return fetched
            keys: list[object] = list(self._assignment)
            if self._group is not None:
                keys.append(self._group.key)
            await notifier.wait(keys, remaining)
            if self._closed:
                return {}

    def _fetch(self, limit: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        out: dict[TopicPartition, list[ConsumerRecord]] = {}
        parts = self._assignment
        count = len(parts)
        if not count:
            return out
        # Start at a different partition each call so that one busy partition cannot
        # starve the others when ``limit`` is reached.
        start = self._rotation % count
        self._rotation += 1
        taken = 0
        paused = self._paused
        for i in range(count):
            tp = parts[(start + i) % count]
            if paused and tp in paused:
                continue
            records = self._take(tp, limit - taken)
            if records:
                out[tp] = records
                taken += len(records)
                if taken >= limit:
                    break
        return out

    def _take(self, tp: TopicPartition, want: int) -> list[ConsumerRecord] | None:
        buffer = self._buffers.get(tp)
        if buffer is None:
            buffer = self._fill(tp)
            if buffer is None:
                return None
        records, index = buffer.records, buffer.index
        stop = index + want
        if stop >= len(records):
            del self._buffers[tp]
            self._positions[tp] = buffer.end
            return records[index:] if index else records
        buffer.index = stop
        taken = records[index:stop]
        self._positions[tp] = taken[-1].offset + 1
        return taken

    def _fill(self, tp: TopicPartition) -> _Buffer | None:
        """Read and decode from the position until some records turn up or the log ends."""
        position = self._positions.get(tp)
        try:
            plog = self._manager.partition(tp.topic, tp.partition)
            if position is None:
                position = self._positions[tp] = self._initial_position(tp)
            resets = 0
            while True:
                try:
                    read = plog.read(position, self._fetch_bytes, isolation=self._isolation)
                except log_errors.OffsetOutOfRangeError:
                    resets += 1
                    if resets > 3:  # retention racing us: try again next poll
                        return None
                    position = self._positions[tp] = self._reset_position(tp)
                    self._buffers.pop(tp, None)
                    continue
                data = read.records
                if not data:
                    return None
                records, end, error = _decode(data, tp, position, read.aborted_transactions)
                if records:
                    # An undecodable batch after them is met (and raised) next time.
                    buffer = self._buffers[tp] = _Buffer(records, end)
                    return buffer
                position = self._positions[tp] = end  # only control batches: skip them
                if error is not None:
                    raise error
        except (log_errors.UnknownTopicError, log_errors.LogClosedError):
            # Deleted, or not created yet: Kafka clients keep polling such a partition.
            return None
        except log_errors.LogError as exc:
            raise translate(exc) from exc

    # -- offsets -------------------------------------------------------------------------

    async def commit(
        self, offsets: Mapping[TopicPartition, int | OffsetAndMetadata] | None = None
    ) -> None:
        """Store ``offsets`` (default: every known position) as the group's committed."""
        self._check_open()
        if self.group_id is None:
            raise GroupError("commit() needs a consumer created with a group_id")
        if offsets is None:
            offsets = {tp: pos for tp, pos in self._positions.items() if pos is not None}
        values: dict[tuple[str, int], LogOffsetAndMetadata] = {}
        for tp, value in offsets.items():
            if isinstance(value, int):
                offset, metadata = value, ""
            else:
                offset, metadata = value.offset, value.metadata
            if offset < 0:
                raise GroupError(f"cannot commit a negative offset ({offset}) for {tp}")
            values[(tp[0], tp[1])] = LogOffsetAndMetadata(offset, metadata)
        self._check_may_commit(values)
        if not values:
            return
        store = self._offsets_store()
        with translated():
            if self._transport.durable_commits:
                # fsynced: keep the event loop free while the disk works
                await asyncio.to_thread(store.commit, self.group_id, values)
            else:
                store.commit(self.group_id, values)

    def _check_may_commit(self, values: Mapping[tuple[str, int], object]) -> None:
        """A member may commit what it owns, and anything once it has caught up with
        the group's generation (Kafka checks the generation only); a member that lost
        partitions and has not rejoined yet must not overwrite the new owner's commits."""
        member, group = self._member, self._group
        if member is None or group is None:
            return
        member.touch()
        if member.evicted:
            raise MembershipLostError(
                f"this consumer was removed from group {group.group_id!r}; it rejoins on "
                "the next getmany"
            )
        if member.generation == group.generation:
            return
        foreign = [tp for tp in values if TopicPartition(*tp) not in member.owned]
        if foreign:
            raise RebalanceInProgressError(
                f"group {group.group_id!r} is rebalancing and {foreign} are no longer "
                "this member's: poll (getmany) to rejoin, then commit again"
            )

    async def committed(self, partition: TopicPartition) -> int | None:
        self._check_open()
        if self.group_id is None:
            raise GroupError("committed() needs a consumer created with a group_id")
        key = (partition[0], partition[1])
        found = self._offsets_store().fetch(self.group_id, [key])
        return found[key].offset if found else None

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        self._check_open()
        return {
            TopicPartition(*tp): self._end_of(self._plog(TopicPartition(*tp))) for tp in partitions
        }

    def _end_of(self, plog: PartitionLog) -> int:
        """Where this consumer's reading ends: the last stable offset for read_committed
        (Kafka's ListOffsets with that isolation level), else the log end offset."""
        if self._isolation is IsolationLevel.READ_COMMITTED:
            return plog.last_stable_offset
        return plog.log_end_offset

    async def beginning_offsets(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]:
        self._check_open()
        return {
            TopicPartition(*tp): self._plog(TopicPartition(*tp)).log_start_offset
            for tp in partitions
        }

    # -- closing -------------------------------------------------------------------------

    async def close(self) -> None:
        """Leave the group (revoking what this member owns first), release everything."""
        if self._closed:
            return
        member, group = self._member, self._group
        try:
            if member is not None and group is not None and not member.evicted:
                if member.owned and self._listener is not None:
                    await self._listener.on_partitions_revoked(set(member.owned))
                group.leave(member)
        finally:
            self._closed = True
            if self._finalizer is not None:
                self._finalizer.detach()
            self._member = None
            self._assignment = []
            self._positions.clear()
            self._buffers.clear()
            self._transport.forget(self)

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosedError("the consumer is closed")


def _decode(
    data: bytes | memoryview,
    tp: TopicPartition,
    position: int,
    aborted: tuple[AbortedTxn, ...] | None = None,
) -> tuple[list[ConsumerRecord], int, CorruptBatchError | None]:
    """Records at or after ``position`` in ``data`` (whole stored batches), the offset
    after the last batch decoded, and the error of an undecodable batch that stopped the
    decoding there (None if none did). The codec makes each ``ConsumerRecord`` itself,
    topic and partition first: no per-record Python work here.

    ``aborted`` (a read_committed read's aborted transactions): a transactional batch of
    one of them, its producer's from the transaction's first offset to its marker, is
    dropped."""
    dropped = _aborted_ranges(aborted) if aborted else None
    out: list[ConsumerRecord] = []
    prefix = (tp.topic, tp.partition)
    pos = 0
    size = len(data)
    end = position
    while size - pos >= HEADER_SIZE:
        try:
            header, records = decode_batch_as(data, pos, ConsumerRecord, prefix, position)
        except log_errors.LogError as exc:
            base_offset, _, last_offset = peek_offsets(data, pos)
            error = CorruptBatchError(
                tp.topic, tp.partition, base_offset, last_offset + 1, str(exc)
            )
            return out, end, error
        pos += header.size
        end = header.next_offset
        if header.is_control:
            continue
        if (
            dropped
            and header.is_transactional
            and _in_aborted(dropped, header.producer_id, header.base_offset)
        ):
            continue
        if out:
            out += records
        else:
            out = records
    return out, end, None


def _aborted_ranges(aborted: tuple[AbortedTxn, ...]) -> dict[int, list[tuple[int, int]]]:
    """Producer id -> the (first offset, marker offset) of each of its aborted
    transactions."""
    ranges: dict[int, list[tuple[int, int]]] = {}
    for txn in aborted:
        ranges.setdefault(txn.producer_id, []).append((txn.first_offset, txn.last_offset))
    return ranges


def _in_aborted(ranges: dict[int, list[tuple[int, int]]], producer_id: int, offset: int) -> bool:
    return any(first <= offset < last for first, last in ranges.get(producer_id, ()))
