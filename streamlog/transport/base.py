"""The transport interface: one async API over the bundled log and over Kafka's protocol.

Everything above the transport (tables, streams, agents, the CLI tools) talks to these
Protocols only. Two implementations satisfy them: ``embedded`` (``memory://`` and
``file://PATH``: calls the log engine in-process) and ``kafka`` (``kafka://host:port``:
the Kafka wire protocol over asyncio TCP, to ``streamlog broker`` or any Kafka-protocol
cluster). A contract test suite runs the same checks against both.

Conventions:
* offsets are Kafka's: the next record to read; ``committed`` offsets likewise;
* timestamps are epoch milliseconds;
* keys and values are bytes (serialisation belongs above the transport);
* every call may raise a ``TransportError`` subclass; nothing else leaks from a client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from typing import Any, Protocol

from streamlog.transport.types import (
    ConsumerGroupMetadata,
    ConsumerRecord,
    GroupInfo,
    GroupPeer,
    Header,
    OffsetAndMetadata,
    RecordMetadata,
    TopicInfo,
    TopicPartition,
)

__all__ = [
    "Producer",
    "TransactionalProducer",
    "SentRecords",
    "Consumer",
    "Admin",
    "Transport",
    "RebalanceListener",
    "LossAwareListener",
    "tell_lost",
    "Compression",
]

# "none", "gzip", "snappy", "lz4", "zstd"
Compression = str


class RebalanceListener(Protocol):
    """Told when a group rebalance takes partitions away or hands them over.

    Both transports promise what Kafka's poll loop gives: ``on_partitions_revoked``
    finishes before the partitions are given up (its commits still count), and no record
    of a newly assigned partition is returned by ``getmany`` before
    ``on_partitions_assigned`` has returned, so the listener may ``pause`` them first.
    """

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None: ...

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None: ...


class LossAwareListener(RebalanceListener, Protocol):
    """A listener told apart when partitions were lost rather than revoked (Kafka's
    ``onPartitionsLost``): the group dropped this member (its session expired, the
    coordinator restarted), so the partitions may be another member's already and
    nothing of them should be committed or written any more. Listeners without
    ``on_partitions_lost`` get ``on_partitions_revoked`` instead, as in Kafka."""

    async def on_partitions_lost(self, lost: set[TopicPartition]) -> None: ...


async def tell_lost(listener: RebalanceListener, lost: set[TopicPartition]) -> None:
    """``on_partitions_lost`` when the listener has it, else ``on_partitions_revoked``."""
    on_lost = getattr(listener, "on_partitions_lost", None)
    if on_lost is not None:
        await on_lost(lost)
    else:
        await listener.on_partitions_revoked(lost)


class SentRecords(Protocol):
    """What ``Producer.send_many`` returns: ``await`` it for every record's metadata.

    ``highest_offsets()`` waits for the same acknowledgements (and raises the same first
    failure) but gives only the highest offset acknowledged in each partition the records
    went to, without a metadata object per record: what a table commit's changelog
    needs, for as many records as the commit changed keys.
    """

    def __await__(self) -> Generator[Any, None, list[RecordMetadata]]: ...

    def highest_offsets(self) -> Awaitable[dict[int, int]]:
        """Partition -> the highest offset among the records sent to it (-1 where the
        cluster gave no offsets: acks=0)."""
        ...


class Producer(Protocol):
    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[Header] = (),
        timestamp_ms: int | None = None,
    ) -> Awaitable[RecordMetadata]:
        """Queue a record; the awaitable resolves when it is acknowledged.

        Returns once the record is accepted into a batch (may wait if buffers are full);
        awaiting the result waits for the broker's acknowledgement.
        """
        ...

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[Header] = (),
        timestamp_ms: int | None = None,
    ) -> RecordMetadata: ...

    async def send_many(
        self,
        topic: str,
        values: Iterable[bytes | None],
        *,
        keys: Iterable[bytes | None] | None = None,
        partition: int | None = None,
        headers: Sequence[Header] = (),
        timestamp_ms: int | None = None,
    ) -> SentRecords:
        """Queue many records in one call; the awaitable resolves to their metadata, in
        the order given, once all are acknowledged (or raises the first failure); see
        ``SentRecords`` for a wait that makes no object per record.

        Records go where ``send`` one by one would put them (``keys[i]`` is the key of
        ``values[i]``; null keys and no ``partition``: the sticky partition, the one of
        the moment for all of them when some records have keys), in the order given
        within a partition; all share ``headers`` and ``timestamp_ms`` (default: now,
        read once). A key or value that is not bytes or None raises ``TypeError`` before
        any record is queued; ``keys`` of another length than ``values``, ``ValueError``.
        """
        ...

    async def flush(self) -> None:
        """Send everything queued and wait for every acknowledgement."""
        ...

    async def partitions_for(self, topic: str) -> int:
        """The partition count of ``topic`` (creating it if the cluster auto-creates)."""
        ...

    async def close(self) -> None: ...


class TransactionalProducer(Producer, Protocol):
    """A producer made with a ``transactional_id`` (Kafka's KIP-98 / KIP-447 model).

    Its records, and the consumer offsets handed to ``send_offsets_to_transaction``,
    become visible to ``read_committed`` consumers together on ``commit_transaction`` or
    never (``abort_transaction``). ``init_transactions`` fences every older producer with
    the same transactional id: their later calls raise ``ProducerFencedError`` and a
    transaction one of them left open is aborted. Calls out of order raise
    ``TransactionStateError``; a failed send or offset commit makes the transaction
    abortable (``TransactionAbortableError`` from commit).
    """

    @property
    def transactional_id(self) -> str | None: ...

    async def init_transactions(self) -> None: ...

    def begin_transaction(self) -> None: ...

    async def send_offsets_to_transaction(
        self,
        offsets: Mapping[TopicPartition, int | OffsetAndMetadata],
        group: str | ConsumerGroupMetadata,
        *,
        generation_id: int = -1,
        member_id: str = "",
        group_instance_id: str | None = None,
    ) -> None:
        """Commit ``offsets`` for ``group`` (the consuming member's
        ``consumer.group_metadata()``) as part of the open transaction."""
        ...

    async def commit_transaction(self) -> None: ...

    async def abort_transaction(self) -> None: ...


class Consumer(Protocol):
    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions (no group rebalancing)."""
        ...

    async def subscribe(
        self,
        topics: Iterable[str],
        listener: RebalanceListener | None = None,
        *,
        user_data: bytes | None = None,
    ) -> None:
        """Join the consumer group (``group_id`` given at creation) for ``topics``.

        ``user_data``: what this member advertises to the others (Kafka's subscription user
        data, opaque to the transport); members that advertise something see each other in
        ``group_peers``. Subscribing again with other topics or other user data rejoins.
        """
        ...

    def standby_assignment(self) -> frozenset[TopicPartition]:
        """The partitions the group's last rebalance gave this consumer as a *standby*
        (``standby_replicas`` on the consumers: partition N of every subscribed topic may
        be kept warm by other members, whose tables follow their changelogs; see
        ``streamlog.transport.sticky``). Empty without standbys or when the group's
        leader is not streamlog's."""
        ...

    def group_peers(self) -> tuple[GroupPeer, ...]:
        """The members of the group that advertised ``user_data``, this one included, with
        the partitions each holds, as of the last rebalance this consumer completed;
        sorted by member id. Empty without a group, before the first assignment, or when
        no member advertised anything. Over Kafka's protocol the group's leader shares
        them with every member in the assignment's user data, so a group led by a client
        that is not streamlog's shares nothing."""
        ...

    def assignment(self) -> set[TopicPartition]: ...

    def pause(self, *partitions: TopicPartition) -> None:
        """Return no records of these assigned partitions until ``resume`` (Kafka's pause).

        Positions are kept; what was fetched but not returned is returned after
        ``resume``. A partition leaves the paused set when it is unassigned.
        """
        ...

    def resume(self, *partitions: TopicPartition) -> None:
        """Undo ``pause`` for these partitions (unpaused or unassigned ones are ignored)."""
        ...

    def paused(self) -> set[TopicPartition]:
        """The assigned partitions that are paused."""
        ...

    def membership_lost(self) -> bool:
        """True when this consumer surely is no longer a member of its group (no heartbeat
        answered within the session timeout, or the group said so), before the rebalance
        that follows has told the listener: what it holds may be another member's now, so
        nothing of it should be committed or written. False without a group."""
        ...

    def group_metadata(self) -> ConsumerGroupMetadata:
        """This member's group id, generation and member id, for a transactional
        producer's ``send_offsets_to_transaction`` (KIP-447 fencing)."""
        ...

    def joining(self) -> bool:
        """True while a join round of the group protocol is under way (JoinGroup or
        SyncGroup in flight): a broker serves a connection's requests in order, so an
        offset commit sent now waits for the round to end, and is refused as of an old
        generation when it does. False without a group, and for the embedded groups."""
        ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None: ...

    async def seek_to_end(self, *partitions: TopicPartition) -> None: ...

    async def seek_to_timestamp(self, timestamp_ms: int, *partitions: TopicPartition) -> None:
        """Position at the first record at or after ``timestamp_ms`` (end if none)."""
        ...

    async def position(self, partition: TopicPartition) -> int: ...

    async def getmany(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records fetched since the last call, waiting up to ``timeout_ms`` for some."""
        ...

    async def commit(
        self, offsets: Mapping[TopicPartition, int | OffsetAndMetadata] | None = None
    ) -> None:
        """Commit ``offsets`` (default: the current positions) for the group."""
        ...

    async def committed(self, partition: TopicPartition) -> int | None: ...

    async def end_offsets(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]: ...

    async def beginning_offsets(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]: ...

    async def close(self) -> None:
        """Leave the group (if any) and release resources."""
        ...


class Admin(Protocol):
    async def create_topic(
        self,
        name: str,
        partitions: int = 1,
        configs: Mapping[str, str] | None = None,
        replication_factor: int | None = None,
    ) -> None:
        """``replication_factor``: copies of each partition on a Kafka cluster (None: the
        broker's ``default.replication.factor``); an embedded log has one copy and no
        replicas, and ignores it."""
        ...

    async def delete_topic(self, name: str) -> None: ...

    async def add_partitions(self, name: str, total: int) -> None: ...

    async def list_topics(self, include_internal: bool = False) -> list[str]: ...

    async def describe_topic(self, name: str) -> TopicInfo: ...

    async def list_groups(self) -> list[str]: ...

    async def describe_group(self, group_id: str) -> GroupInfo:
        """Members and, per committed or assigned partition, end offset, commit and lag."""
        ...

    async def close(self) -> None: ...


class Transport(Protocol):
    """A connection to one log: hands out producers, consumers and an admin client."""

    url: str

    async def start(self) -> None: ...

    def producer(
        self,
        *,
        acks: int = -1,
        linger_ms: int = 5,
        batch_size: int = 1 << 20,
        compression: Compression = "none",
        idempotent: bool = True,
        client_id: str = "streamlog",
        transactional_id: str | None = None,
        transaction_timeout_ms: int = 60_000,
    ) -> Producer:
        """A producer; with ``transactional_id`` a ``TransactionalProducer``."""
        ...

    def consumer(
        self,
        *,
        group_id: str | None = None,
        client_id: str = "streamlog",
        auto_offset_reset: str = "earliest",
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 1_000,
        max_poll_records: int = 10_000,
        fetch_max_bytes: int = 50 * 1024 * 1024,
        isolation_level: str = "read_uncommitted",
        partition_assignment_strategy: Sequence[str] = ("range", "roundrobin"),
        standby_replicas: int = 0,
    ) -> Consumer: ...

    def admin(self) -> Admin: ...

    async def close(self) -> None: ...


ErrorCallback = Callable[[BaseException], None]
