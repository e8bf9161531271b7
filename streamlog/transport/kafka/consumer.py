"""The consumer: positions, fetching (``fetcher.py``), group membership (``group.py``) and
offset commits, behind the transport's ``Consumer`` protocol.

Positions start unknown. Before handing out records, ``getmany`` gives every assigned
partition without a position its committed offset (OffsetFetch, when there is a group) or
else applies ``auto_offset_reset`` (ListOffsets: "earliest" or "latest"; "none" raises
``OffsetOutOfRangeError``). The same policy answers OFFSET_OUT_OF_RANGE from a fetch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence

from streamlog.transport.base import RebalanceListener, tell_lost
from streamlog.transport.errors import (
    GroupError,
    MembershipLostError,
    OffsetOutOfRangeError,
    RebalanceInProgressError,
    StaleGenerationError,
    TransportClosedError,
    TransportError,
    UnsupportedBrokerFeatureError,
)
from streamlog.transport.kafka.assignors import ASSIGNORS
from streamlog.transport.kafka.cluster import Cluster
from streamlog.transport.kafka.fetcher import Fetcher, PartitionState
from streamlog.transport.kafka.group import GroupMember
from streamlog.transport.kafka.offsets import EARLIEST, LATEST, GroupCoordinator, list_offsets
from streamlog.transport.types import (
    ConsumerGroupMetadata,
    ConsumerRecord,
    GroupPeer,
    OffsetAndMetadata,
    TopicPartition,
)

__all__ = ["KafkaConsumer"]

_RESETS = {"earliest": EARLIEST, "smallest": EARLIEST, "latest": LATEST, "largest": LATEST}
_ISOLATION = {"read_uncommitted": 0, "read_committed": 1}
# A record time no record has (the year 146 million): a time lookup for it finds nothing.
_AFTER_EVERY_RECORD = 1 << 62


class KafkaConsumer:
    """See the module docstring. Create through ``KafkaTransport.consumer``."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        group_id: str | None = None,
        auto_offset_reset: str = "earliest",
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 1_000,
        rebalance_timeout_ms: int = 30_000,
        max_poll_records: int = 10_000,
        fetch_max_bytes: int = 50 * 1024 * 1024,
        max_partition_fetch_bytes: int = 1024 * 1024,
        fetch_max_wait_ms: int = 500,
        fetch_min_bytes: int = 1,
        isolation_level: str = "read_uncommitted",
        partition_assignment_strategy: Sequence[str] = ("range", "roundrobin"),
        standby_replicas: int = 0,
    ) -> None:
        unknown = [name for name in partition_assignment_strategy if name not in ASSIGNORS]
        if unknown or not partition_assignment_strategy:
            raise ValueError(
                f"partition_assignment_strategy: unknown assignor(s) {unknown}; "
                f"known: {sorted(ASSIGNORS)}"
            )
        self._assignors = tuple(partition_assignment_strategy)
        if standby_replicas < 0:
            raise ValueError(f"standby_replicas must be 0 or more, not {standby_replicas}")
        self._standby_replicas = standby_replicas
        if auto_offset_reset not in (*_RESETS, "none"):
            raise ValueError(
                f"auto_offset_reset must be 'earliest', 'latest' or 'none', not "
                f"{auto_offset_reset!r}"
            )
        if isolation_level not in _ISOLATION:
            raise ValueError(
                f"isolation_level must be 'read_uncommitted' or 'read_committed', not "
                f"{isolation_level!r}"
            )
        self._cluster = cluster
        self._group_id = group_id
        self._reset = auto_offset_reset
        self._session_timeout_ms = session_timeout_ms
        self._heartbeat_interval_ms = heartbeat_interval_ms
        self._rebalance_timeout_ms = max(rebalance_timeout_ms, session_timeout_ms)
        self._max_poll_records = max_poll_records
        self._isolation = _ISOLATION[isolation_level]
        # KIP-447: a read_committed member waits for offsets a transaction is committing
        self._stable = isolation_level == "read_committed"
        self._data = asyncio.Event()
        self._fetcher = Fetcher(
            cluster,
            max_wait_ms=fetch_max_wait_ms,
            min_bytes=fetch_min_bytes,
            max_bytes=fetch_max_bytes,
            partition_max_bytes=min(max_partition_fetch_bytes, fetch_max_bytes),
            isolation_level=self._isolation,
            on_data=self._data.set,
        )
        self._coordinator = GroupCoordinator(cluster, group_id) if group_id else None
        self._member: GroupMember | None = None
        self._listener: RebalanceListener | None = None
        self._paused: set[TopicPartition] = set()  # what the application paused
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    # ---------------------------------------------------------------- assignment

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self._check_open()
        if self._member is not None:
            raise GroupError("this consumer is subscribed: assign() is for group-less reading")
        self._fetcher.set_assignment(TopicPartition(*tp) for tp in partitions)
        self._paused &= set(self._fetcher.states)
        self._data.set()

    async def subscribe(
        self,
        topics: Iterable[str],
        listener: RebalanceListener | None = None,
        *,
        user_data: bytes | None = None,
    ) -> None:
        self._check_open()
        if self._coordinator is None:
            raise GroupError("subscribe() needs a consumer created with a group_id")
        topics = sorted(set(topics))
        self._listener = listener
        if self._member is not None:
            self._member.topics = topics
            self._member.user_data = user_data
            self._member.request_rejoin()
            return
        self._fetcher.set_assignment(())
        member = GroupMember(
            self._cluster,
            self._coordinator,
            topics,
            on_revoked=self._on_revoked,
            on_lost=self._on_lost,
            on_assigned=self._on_assigned,
            session_timeout_ms=self._session_timeout_ms,
            rebalance_timeout_ms=self._rebalance_timeout_ms,
            heartbeat_interval_ms=self._heartbeat_interval_ms,
            assignors=self._assignors,
            user_data=user_data,
            standby_replicas=self._standby_replicas,
        )
        self._member = member
        try:
            await member.start()
        except BaseException:
            self._member = None
            raise

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        # The listener goes first: it may commit the positions it is about to lose.
        if self._listener is not None:
            await self._listener.on_partitions_revoked(set(revoked))
        self._fetcher.set_assignment(tp for tp in self._fetcher.states if tp not in revoked)
        self._paused -= revoked

    async def _on_lost(self, lost: set[TopicPartition]) -> None:
        if self._listener is not None:
            await tell_lost(self._listener, set(lost))
        self._fetcher.set_assignment(tp for tp in self._fetcher.states if tp not in lost)
        self._paused -= lost

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        # added to what is held (a cooperative rebalance assigns only what is new; an
        # eager one revoked everything first, so this is the whole assignment then)
        fetcher = self._fetcher
        new = [tp for tp in assigned if tp not in fetcher.states]
        fetcher.set_assignment({*fetcher.states, *assigned})
        self._paused &= set(fetcher.states)
        # Held back until the listener has seen them (it may pause them itself): the
        # promise of RebalanceListener, which the group task running this callback beside
        # getmany would otherwise break.
        for tp in new:
            fetcher.states[tp].paused = True
        try:
            if self._listener is not None:
                await self._listener.on_partitions_assigned(set(assigned))
        finally:
            for tp in new:
                state = fetcher.states.get(tp)
                if state is not None:
                    state.paused = tp in self._paused
            self._data.set()
            fetcher.wake()

    def assignment(self) -> set[TopicPartition]:
        return set(self._fetcher.states)

    def pause(self, *partitions: TopicPartition) -> None:
        self._check_open()
        targets = [TopicPartition(*tp) for tp in partitions]
        states = [self._state(tp) for tp in targets]
        for state in states:
            state.paused = True
        self._paused.update(targets)

    def resume(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            tp = TopicPartition(*tp)
            self._paused.discard(tp)
            state = self._fetcher.states.get(tp)
            if state is not None:
                state.paused = False
        self._data.set()
        self._fetcher.wake()

    def paused(self) -> set[TopicPartition]:
        return {tp for tp in self._paused if tp in self._fetcher.states}

    def membership_lost(self) -> bool:
        return self._member is not None and self._member.lost

    def joining(self) -> bool:
        return self._member is not None and self._member.joining

    def group_peers(self) -> tuple[GroupPeer, ...]:
        return () if self._member is None else self._member.peers

    def standby_assignment(self) -> frozenset[TopicPartition]:
        member = self._member
        if member is None:
            return frozenset()
        for peer in member.peers:
            if peer.member_id == member.member_id:
                return peer.standby
        return frozenset()

    # ---------------------------------------------------------------- positions

    def _state(self, partition: TopicPartition) -> PartitionState:
        state = self._fetcher.states.get(partition)
        if state is None:
            raise TransportError(f"{partition.topic}[{partition.partition}] is not assigned")
        return state

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._check_open()
        if offset < 0:
            raise ValueError(f"cannot seek to negative offset {offset}")
        self._state(partition).seek(offset)
        self._fetcher.wake()

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        await self._seek_to(EARLIEST, partitions)

    async def seek_to_end(self, *partitions: TopicPartition) -> None:
        await self._seek_to(LATEST, partitions)

    async def seek_to_timestamp(self, timestamp_ms: int, *partitions: TopicPartition) -> None:
        if timestamp_ms < 0:
            raise ValueError(f"timestamp must be >= 0, got {timestamp_ms}")
        await self._seek_to(timestamp_ms, partitions)

    async def _seek_to(self, timestamp: int, partitions: tuple[TopicPartition, ...]) -> None:
        self._check_open()
        targets = list(partitions) or list(self._fetcher.states)
        states = {tp: (self._state(tp), self._state(tp).epoch) for tp in targets}
        found = await list_offsets(
            self._cluster, {tp: timestamp for tp in targets}, isolation_level=self._isolation
        )
        if timestamp >= 0:
            await self._check_time_lookups(targets)
        missing = [tp for tp, (offset, _) in found.items() if offset < 0]
        if missing:  # no record at or after the timestamp: the end
            ends = await list_offsets(
                self._cluster, {tp: LATEST for tp in missing}, isolation_level=self._isolation
            )
            found.update(ends)
        for tp, (offset, _) in found.items():
            state, epoch = states[tp]
            if state.epoch == epoch and self._fetcher.states.get(tp) is state:
                state.seek(offset)
        self._fetcher.wake()

    async def _check_time_lookups(self, partitions: list[TopicPartition]) -> None:
        """Raise if the broker answers time lookups without looking at record times.

        Kafka answers a ListOffsets for a time after every record with offset -1; a
        broker that answers an offset there (Tansu answers 0 to every time) would start a
        seek at a wrong place silently. One more round trip, on an operation that is rare.
        """
        probe = await list_offsets(
            self._cluster, dict.fromkeys(partitions, _AFTER_EVERY_RECORD), isolation_level=0
        )
        wrong = sorted((tp, offset) for tp, (offset, _) in probe.items() if offset >= 0)
        if wrong:
            tp, offset = wrong[0]
            raise UnsupportedBrokerFeatureError(
                f"the broker does not look offsets up by time (ListOffsets with a "
                f"timestamp): asked for the first record of {tp.topic}[{tp.partition}] at "
                f"or after a time later than any record's, it answered offset {offset} "
                "instead of none; seek by offset instead"
            )

    async def position(self, partition: TopicPartition) -> int:
        self._check_open()
        state = self._state(partition)
        if state.position is None or state.reset is not None:
            await self._update_positions()
        if state.error is not None:
            raise state.error
        if state.position is None:
            raise TransportError(
                f"{partition.topic}[{partition.partition}] has no position: it was reassigned "
                "or sought while its position was being looked up"
            )
        return state.position

    async def _update_positions(self) -> None:
        """Give every assigned partition a position (committed offset or the reset policy)."""
        need = [
            (s, s.epoch)
            for s in self._fetcher.states.values()
            if (s.position is None or s.reset is not None) and s.error is None
        ]
        if not need:
            return
        committed: dict[TopicPartition, OffsetAndMetadata] = {}
        unpositioned = [s.tp for s, _ in need if s.position is None]
        if self._coordinator is not None and unpositioned:
            committed = await self._coordinator.fetch(unpositioned, require_stable=self._stable)
        resets: dict[TopicPartition, int] = {}
        for state, epoch in need:
            if state.epoch != epoch:
                continue
            if state.reset is None and state.tp in committed:
                state.seek(committed[state.tp].offset)
            elif self._reset == "none":
                if state.reset is not None:
                    where = f"offset {state.position} is out of range"
                else:
                    where = "no committed offset and auto_offset_reset='none'"
                state.error = OffsetOutOfRangeError(
                    f"{state.tp.topic}[{state.tp.partition}]: {where}"
                )
            else:
                resets[state.tp] = _RESETS[self._reset]
        if resets:
            found = await list_offsets(self._cluster, resets, isolation_level=self._isolation)
            for state, epoch in need:
                if state.epoch == epoch and state.tp in found:
                    state.seek(found[state.tp][0])
        self._fetcher.wake()

    # ---------------------------------------------------------------- records

    async def getmany(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        self._check_open()
        limit = (
            max_records if max_records is not None and max_records > 0 else self._max_poll_records
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0, timeout_ms) / 1000
        fetcher = self._fetcher
        while True:
            self._data.clear()
            await self._update_positions()
            self._raise_partition_errors()
            try:
                records = fetcher.drain(limit)
            except Exception as e:  # a corrupt batch: the codec's errors are not ours
                if isinstance(e, TransportError):
                    raise
                raise TransportError(f"undecodable records: {e}") from e
            if records:
                return records
            fetcher.wake()
            remaining = deadline - loop.time()
            if remaining <= 0:
                self._raise_outage()
                return {}
            try:
                await asyncio.wait_for(self._data.wait(), remaining)
            except TimeoutError:
                pass
            if self._closed:
                raise TransportClosedError("the consumer was closed")

    def _raise_partition_errors(self) -> None:
        if self._fetcher.failure is not None:
            raise self._fetcher.failure
        for state in self._fetcher.states.values():
            if state.error is not None and not state.buffered:
                raise state.error

    def _raise_outage(self) -> None:
        since = self._fetcher.unavailable_since
        if since is None or self._fetcher.last_error is None:
            return
        if asyncio.get_running_loop().time() - since > self._cluster.request_timeout:
            raise self._fetcher.last_error

    # ---------------------------------------------------------------- offsets

    def group_metadata(self) -> ConsumerGroupMetadata:
        """This member's group, generation and member id, for a transactional producer's
        ``send_offsets_to_transaction`` (a consumer without a group: raises)."""
        if self._coordinator is None:
            raise GroupError("group_metadata() needs a consumer created with a group_id")
        member = self._member
        if member is None:
            return ConsumerGroupMetadata(self._coordinator.group_id)
        return ConsumerGroupMetadata(member.group_id, member.generation, member.member_id)

    async def commit(
        self, offsets: Mapping[TopicPartition, int | OffsetAndMetadata] | None = None
    ) -> None:
        self._check_open()
        if self._coordinator is None:
            raise GroupError("commit() needs a consumer created with a group_id")
        if offsets is None:
            wanted = {
                tp: OffsetAndMetadata(s.position)
                for tp, s in self._fetcher.states.items()
                if s.position is not None
            }
        else:
            wanted = {
                TopicPartition(*tp): o if isinstance(o, OffsetAndMetadata) else OffsetAndMetadata(o)
                for tp, o in offsets.items()
            }
        if not wanted:
            return
        member = self._member
        generation = None if member is None else member.generation
        try:
            if member is not None:
                await self._coordinator.commit(
                    wanted, generation=member.generation, member_id=member.member_id
                )
            else:
                await self._coordinator.commit(wanted)
        except MembershipLostError as exc:
            if member is not None:
                if (
                    isinstance(exc, StaleGenerationError)
                    and member.cooperative
                    and (member.rebalancing or member.generation != generation)
                ):
                    # a cooperative member keeps processing while it rejoins: this commit
                    # raced its own join, the group moved on with it, nothing is lost; the
                    # offsets are committed again at the next commit (asking to rejoin
                    # here would start another generation, and race again)
                    raise
                member.membership_lost(
                    f"the group refused a commit: {exc}",
                    known=isinstance(exc, StaleGenerationError),
                )
            raise
        except RebalanceInProgressError:
            if member is not None:
                member.request_rejoin()
            raise

    async def committed(self, partition: TopicPartition) -> int | None:
        self._check_open()
        if self._coordinator is None:
            raise GroupError("committed() needs a consumer created with a group_id")
        found = await self._coordinator.fetch([partition], require_stable=self._stable)
        entry = found.get(partition)
        return None if entry is None else entry.offset

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return await self._offsets(partitions, LATEST)

    async def beginning_offsets(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return await self._offsets(partitions, EARLIEST)

    async def _offsets(
        self, partitions: Iterable[TopicPartition], timestamp: int
    ) -> dict[TopicPartition, int]:
        self._check_open()
        wanted = {TopicPartition(*tp): timestamp for tp in partitions}
        if not wanted:
            return {}
        found = await list_offsets(self._cluster, wanted, isolation_level=self._isolation)
        offsets = {tp: offset for tp, (offset, _) in found.items()}
        if timestamp == LATEST and self._isolation == _ISOLATION["read_uncommitted"]:
            # The log end never moves back, so a fetch's high watermark is a floor for
            # it. On Kafka the ListOffsets answer is newer and never lower; some brokers
            # (Tansu) answer the last batch's base offset + 1, behind records they hold.
            for tp, offset in offsets.items():
                state = self._fetcher.states.get(tp)
                if state is not None and state.high_watermark > offset:
                    offsets[tp] = state.high_watermark
        return offsets

    # ---------------------------------------------------------------- lifecycle

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosedError("the consumer is closed")

    async def close(self) -> None:
        if self._closed:
            return
        try:
            if self._member is not None:
                await self._member.close()
        finally:
            self._closed = True
            self._data.set()
            await self._fetcher.close()
            await self._cluster.close()
