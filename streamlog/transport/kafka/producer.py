"""The producer: records batched per partition, handed to the sender (``sender.py``).

``send`` picks the partition (murmur2 of the key, Kafka's default, so a key lands where
the Java client and librdkafka put it; sticky for null keys, KIP-480), encodes the record
into the partition's open batch (the codec's ``BatchBuilder``: the encoding happens here,
once, not when the batch is sent) and returns the handle the builder made for it;
awaiting the handle waits for the broker's acknowledgement. Bad keys, values or headers
raise ``TypeError`` from ``send``. A batch closes when the next record would take it past
``batch_size`` or it reaches it, or when it has lingered ``linger_ms``; the sender frames
it, sends it, retries it in order and resolves it. ``buffer_memory`` bounds the bytes of
closed batches not yet acknowledged: beyond it ``send`` waits (open batches, at most one
per partition and ``batch_size`` each, are counted when they close).

The partition choice and the batching are the accumulator's, shared with the embedded
producer (``streamlog/transport/accumulator.py``); this module is what Kafka adds: the
partition queues, the bound on buffered bytes, metadata lookups, and the ``Sender``
(idempotent producer ids and sequence numbers, Produce requests, retries).

With a ``transactional_id`` the producer is transactional (Kafka's KIP-98): after
``init_transactions``, records are sent only between ``begin_transaction`` and
``commit_transaction`` / ``abort_transaction``, and ``send_offsets_to_transaction`` puts
a consumer group's offsets in the same transaction. The transaction's requests and
state are the ``TransactionManager``'s (``transactions.py``). While no transaction is
open (or it failed) ``_topics`` is kept empty, so that ``send`` reaches ``_topic``, which
raises: the per-record path has no extra check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from streamlog.log.records import BatchBuilder, Compression
from streamlog.protocol import ErrorCode
from streamlog.transport.accumulator import RecordAccumulator, TopicBatches
from streamlog.transport.errors import (
    TransactionError,
    TransactionStateError,
    TransportClosedError,
    TransportError,
    UnknownTopicError,
)
from streamlog.transport.kafka.batches import (
    PartitionQueue,
    ProducerBatch,
    RecordFuture,
    SentMany,
)
from streamlog.transport.kafka.cluster import Cluster
from streamlog.transport.kafka.errors import error_for, is_retriable
from streamlog.transport.kafka.sender import Sender
from streamlog.transport.kafka.transactions import TransactionManager, TxnState
from streamlog.transport.kafka.util import log, now_ms, spawn
from streamlog.transport.types import (
    ConsumerGroupMetadata,
    Header,
    OffsetAndMetadata,
    RecordMetadata,
    TopicPartition,
)

__all__ = ["KafkaProducer", "COMPRESSION_TYPES"]

COMPRESSION_TYPES = {
    "none": Compression.NONE,
    "gzip": Compression.GZIP,
    "snappy": Compression.SNAPPY,
    "lz4": Compression.LZ4,
    "zstd": Compression.ZSTD,
}

_UNKNOWN_TOPIC_GRACE = 2.0  # seconds a topic may be unknown before send fails


class KafkaProducer(RecordAccumulator[RecordFuture, SentMany]):
    """See the module docstring. Create through ``KafkaTransport.producer``.

    ``send`` and ``send_many`` are the accumulator's (``streamlog.transport.accumulator``);
    this class opens batches, queues the closed ones for its ``Sender`` and bounds the
    bytes waiting (``_full``).

    Invariant: every open batch is its partition queue's ``open``, is in ``_open`` (what
    flush and the linger check close) and, while the producer can send, by its builder
    in its topic's ``TopicBatches.builders`` slot (what ``send`` adds to). ``_topics`` is
    emptied when the producer closes or its sender fails, and for a transactional
    producer whenever no transaction is open to send in (committing, aborting, failed),
    so that ``send`` reaches ``_topic``, which raises. ``_full`` is
    ``_buffered >= _buffer_memory``.
    """

    def __init__(
        self,
        cluster: Cluster,
        *,
        acks: int = -1,
        linger_ms: int = 5,
        batch_size: int = 1 << 20,
        compression: str = "none",
        idempotent: bool = True,
        max_in_flight: int = 5,
        delivery_timeout_ms: int = 120_000,
        retry_backoff_ms: int = 100,
        buffer_memory: int = 64 << 20,
        transactional_id: str | None = None,
        transaction_timeout_ms: int = 60_000,
    ) -> None:
        super().__init__()
        if acks not in (-1, 0, 1):
            raise ValueError(f"acks must be -1 (all), 0 or 1, not {acks}")
        if transactional_id is not None and (acks != -1 or not idempotent):
            raise ValueError("a transactional producer needs acks=-1 and idempotent=True")
        try:
            compression_type = int(COMPRESSION_TYPES[compression])
        except KeyError:
            raise ValueError(
                f"unknown compression {compression!r}: use one of {', '.join(COMPRESSION_TYPES)}"
            ) from None
        self._cluster = cluster
        # Idempotence needs acks=all (Kafka refuses the combination otherwise).
        idempotent = idempotent and acks == -1
        self._linger = linger_ms / 1000
        self._batch_size = max(1, batch_size)
        self._max_in_flight = max(1, min(max_in_flight, 5) if idempotent else max_in_flight)
        self._delivery_timeout = delivery_timeout_ms / 1000
        self._backoff = retry_backoff_ms / 1000
        self._buffer_memory = buffer_memory
        self._count_lookups: dict[str, asyncio.Future[int]] = {}
        self._queues: dict[tuple[str, int], PartitionQueue] = {}
        self._open: dict[TopicPartition, PartitionQueue] = {}
        self._buffered = 0
        self._full = self._buffered >= self._buffer_memory
        self._space: asyncio.Event | None = None
        self._metadata_task: asyncio.Task[None] | None = None
        self._serial = 0
        self._closed = False
        self._transaction: TransactionManager | None = None
        if transactional_id is not None:
            self._transaction = TransactionManager(
                cluster,
                transactional_id,
                transaction_timeout_ms=transaction_timeout_ms,
                wake_sender=self._wake_sender,
                halt_sends=self._topics.clear,
            )
        self._sender = Sender(
            cluster,
            self._queues,
            self._open,
            acks=acks,
            idempotent=idempotent,
            compression=compression_type,
            max_in_flight=self._max_in_flight,
            linger=self._linger,
            delivery_timeout=self._delivery_timeout,
            backoff=self._backoff,
            close_batch=self._close_batch,
            release=self._release,
            refresh_metadata=self._refresh_metadata_soon,
            failed=self._topics.clear,
            transaction=self._transaction,
        )

    # ------------------------------------------------------------------ public API

    @property
    def closed(self) -> bool:
        return self._closed

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[Header] = (),
        timestamp_ms: int | None = None,
    ) -> RecordMetadata:
        handle = await self.send(
            topic, value, key=key, partition=partition, headers=headers, timestamp_ms=timestamp_ms
        )
        return await handle

    async def flush(self) -> None:
        """Send everything queued now and wait until each batch is acknowledged or failed
        (a transactional producer: or until its transaction failed, which leaves the
        records to ``abort_transaction``)."""
        for queue in list(self._open.values()):
            self._close_batch(queue)
        futures: set[asyncio.Future[Any]] = {
            b.future for q in self._queues.values() for b in q.pending()
        }
        if not futures:
            return
        if self._transaction is None:
            await asyncio.wait(futures)
            return
        broken = asyncio.ensure_future(self._transaction.broken.wait())
        try:
            while futures and not broken.done():
                _, futures = await asyncio.wait(
                    futures | {broken}, return_when=asyncio.FIRST_COMPLETED
                )
                futures.discard(broken)
        finally:
            broken.cancel()

    async def partitions_for(self, topic: str) -> int:
        return await self._partition_count(topic, refresh=True)

    async def close(self) -> None:
        """Flush (waiting at most the request timeout), then release everything."""
        if self._closed:
            return
        try:
            txn = self._transaction
            if txn is None or txn.state in (TxnState.IN_TRANSACTION, TxnState.COMMITTING):
                # (batches of a transaction that failed or ended are never sent)
                await asyncio.wait_for(self.flush(), self._cluster.request_timeout)
        except TimeoutError:
            log.warning("producer closed with unacknowledged records")
        self._closed = True
        self._topics.clear()  # so that send reaches _topic, which refuses
        self._sender.close()
        if self._transaction is not None:
            self._transaction.close()
        if self._metadata_task is not None:
            self._metadata_task.cancel()
        error = TransportClosedError("the producer was closed before the record was sent")
        for queue in self._queues.values():
            for batch in queue.pending():
                batch.fail(error)
        await self._cluster.close()

    # ------------------------------------------------------------------ transactions

    @property
    def transactional_id(self) -> str | None:
        return None if self._transaction is None else self._transaction.transactional_id

    def _txn(self, action: str) -> TransactionManager:
        self._check_open()
        if self._transaction is None:
            raise TransactionStateError(f"{action}: the producer has no transactional_id")
        return self._transaction

    async def init_transactions(self) -> None:
        """Register the transactional id with its coordinator: take a producer id and a
        new epoch, fencing every older producer with the same id (their open transaction
        is aborted by the coordinator). Call once, before the first transaction.

        :raises TransactionError: the broker refused the id (a broker without
            transactions answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED) or did not answer
            within the request timeout.
        """
        txn = self._txn("init_transactions")
        await txn.init()
        self._sender.use_producer_id(txn.producer_id, txn.epoch)

    def begin_transaction(self) -> None:
        """Open a transaction: sends are allowed until it is committed or aborted."""
        self._txn("begin_transaction").begin()

    async def send_offsets_to_transaction(
        self,
        offsets: Mapping[TopicPartition, int | OffsetAndMetadata],
        group: str | ConsumerGroupMetadata,
        *,
        generation_id: int = -1,
        member_id: str = "",
        group_instance_id: str | None = None,
    ) -> None:
        """Commit ``offsets`` (the next offsets to read) for a group as part of the open
        transaction: they become the group's committed offsets only if it commits.
        ``group`` is the consuming member's ``consumer.group_metadata()`` (KIP-447: its
        generation and member id, so that a member the group has fenced since cannot
        commit), or a group id with those given apart (a group without members: the
        defaults).

        :raises TransactionAbortableError: the group refused the offsets (for example a
            stale generation); the transaction must be aborted.
        """
        txn = self._txn("send_offsets_to_transaction")
        wanted = {
            TopicPartition(*tp): o if isinstance(o, OffsetAndMetadata) else OffsetAndMetadata(o)
            for tp, o in offsets.items()
        }
        if isinstance(group, str):
            group = ConsumerGroupMetadata(group, generation_id, member_id, group_instance_id)
        await txn.send_offsets(
            wanted,
            group.group_id,
            generation_id=group.generation_id,
            member_id=group.member_id,
            group_instance_id=group.group_instance_id,
        )

    async def commit_transaction(self) -> None:
        """Send every record of the transaction, then commit it (EndTxn): its records and
        offsets become visible to read_committed consumers together.

        :raises TransactionAbortableError: a record or offset commit of the transaction
            failed; call ``abort_transaction``.
        :raises ProducerFencedError: a newer producer owns the transactional id.
        """
        txn = self._txn("commit_transaction")
        txn.start_commit()
        self._topics.clear()  # sends from now on reach _topic, which refuses them
        await self.flush()
        txn.require(TxnState.COMMITTING, action="commit_transaction")
        await txn.end(commit=True)

    async def abort_transaction(self) -> None:
        """Abort the open transaction: records not sent yet are dropped (their handles
        raise ``TransactionError``), then EndTxn marks the sent ones aborted, so no
        read_committed consumer sees them. Also ends a transaction that failed.

        :raises ProducerFencedError: a newer producer owns the transactional id (it has
            aborted this transaction already).
        """
        txn = self._txn("abort_transaction")
        txn.start_abort()
        self._topics.clear()
        dropped = TransactionError("the transaction was aborted before the record was sent")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._cluster.request_timeout
        while True:
            # Batches in flight cannot be called back: wait for their answers (a retried
            # one comes back to the queue, and is dropped there).
            if self._drop_unsent(dropped):
                txn.sequences_lost = True
            if not any(q.in_flight for q in self._queues.values()) or loop.time() > deadline:
                break
            self._sender.answered.clear()
            try:
                await asyncio.wait_for(self._sender.answered.wait(), deadline - loop.time())
            except TimeoutError:
                pass
        if any(q.in_flight for q in self._queues.values()):
            txn.sequences_lost = True
        try:
            await txn.end(commit=False)
            if txn.sequences_lost:
                await txn.bump_epoch()
                self._sender.use_producer_id(txn.producer_id, txn.epoch)
        except TransactionError as e:
            txn.abort_failed(e)
            raise

    def _drop_unsent(self, error: TransactionError) -> bool:
        """Fail every batch of the transaction not in flight (open, waiting, set aside
        for a retry); whether one of them had been sent before (its sequence numbers are
        then lost to the partition)."""
        for queue in list(self._open.values()):
            self._close_batch(queue)
        sent_before = False
        for queue in self._queues.values():
            for batch in [*queue.retry, *queue.ready]:
                sent_before = sent_before or batch.data is not None
                batch.fail(error)
                self._release(batch)
            queue.retry.clear()
            queue.ready.clear()
            queue.hold = False
        return sent_before

    def _wake_sender(self) -> None:
        self._sender.wake()

    # ------------------------------------------------------------------ topics

    async def _topic(self, topic: str) -> TopicBatches:
        """The topic's state, made on its first send (raises if the producer cannot send)."""
        self._check_open()
        count = await self._partition_count(topic)
        self._check_open()
        if self._transaction is not None:
            self._transaction.check_send()
        state = self._topics.get(topic)
        if state is None:
            state = self._topics[topic] = TopicBatches(topic, count, self._batch_size)
        return state

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosedError("the producer is closed")
        if self._sender.failure is not None:
            raise self._sender.failure
        if self._transaction is not None and self._transaction.state is TxnState.FATAL_ERROR:
            if self._transaction.error is not None:
                raise self._transaction.error

    async def _unknown_partition(self, state: TopicBatches, partition: int) -> int:
        """``partition`` if the topic has it after a metadata refresh, else raise."""
        count = await self._partition_count(state.name, refresh=True)
        if not 0 <= partition < count:
            raise UnknownTopicError(
                f"{state.name}: partition {partition} does not exist ({count} partitions)"
            )
        self._check_open()
        return partition

    def _set_count(self, topic: str, count: int) -> None:
        state = self._topics.get(topic)
        if state is not None and state.count != count:
            state.resize(count)

    # ------------------------------------------------------------------ batching

    def _open_batch(self, state: TopicBatches, partition: int) -> BatchBuilder:
        queue = self._queues.get((state.name, partition))
        if queue is None:
            tp = TopicPartition(state.name, partition)
            queue = self._queues[tp] = PartitionQueue(tp, self._max_in_flight)
        now = asyncio.get_running_loop().time()
        self._serial += 1
        batch = ProducerBatch(
            queue.tp, self._serial, now, now + self._delivery_timeout, state.limit
        )
        queue.open = batch
        self._open[queue.tp] = queue
        if len(self._open) == 1:
            self._sender.wake()  # it may be sleeping without a linger deadline
        return batch.open_builder()

    def _close_full(self, builder: BatchBuilder) -> None:
        batch: ProducerBatch = builder.owner
        self._close_batch(self._queues[batch.tp])

    def _new_sent(self, count: int, timestamp_ms: int) -> SentMany:
        return SentMany(count, timestamp_ms)

    def _now_ms(self) -> int:
        return now_ms()

    def _close_batch(self, queue: PartitionQueue) -> None:
        """Close the queue's open batch (full, lingered, flushed) and queue it for the
        sender."""
        batch = queue.open
        if batch is None:
            return
        queue.open = None
        del self._open[queue.tp]
        topic, partition = queue.tp
        self._batch_closed(topic, partition, batch.builder)
        if not batch.close():
            # Every add to it failed (a bad value): nothing to send, nobody to answer.
            batch.builder = None
            batch.done(-1, -1)
            return
        self._buffered += batch.size
        self._full = self._buffered >= self._buffer_memory
        queue.ready.append(batch)
        self._sender.wake()

    async def _wait_for_space(self) -> None:
        if self._space is None:
            self._space = asyncio.Event()
        while self._full and not self._closed:
            self._space.clear()
            # Everything buffered may be sitting in open batches: send them.
            for queue in list(self._open.values()):
                self._close_batch(queue)
            await self._space.wait()
        self._check_open()

    def _release(self, batch: ProducerBatch) -> None:
        self._buffered -= batch.size
        self._full = self._buffered >= self._buffer_memory
        if self._space is not None and not self._full:
            self._space.set()

    # ------------------------------------------------------------------ metadata

    async def _partition_count(self, topic: str, refresh: bool = False) -> int:
        state = self._topics.get(topic)
        if not refresh:
            if state is not None:
                return state.count
            known = self._cluster.partition_count(topic)
            if known:  # a transactional producer's topics are forgotten per transaction
                return known
        lookup = self._count_lookups.get(topic)
        if lookup is None:
            lookup = asyncio.ensure_future(self._lookup_count(topic))
            self._count_lookups[topic] = lookup
            lookup.add_done_callback(lambda _: self._count_lookups.pop(topic, None))
        return await asyncio.shield(lookup)

    async def _lookup_count(self, topic: str) -> int:
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + self._cluster.request_timeout
        while True:
            answered = await self._cluster.refresh([topic], allow_auto_create=True)
            meta = answered.get(topic)
            code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if meta is None else meta.error
            if code == ErrorCode.NONE and meta is not None and meta.partitions:
                self._set_count(topic, len(meta.partitions))
                return len(meta.partitions)
            now = loop.time()
            if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                if now - start > _UNKNOWN_TOPIC_GRACE:
                    raise UnknownTopicError(f"{topic}: unknown topic (and not auto-created)")
            elif code != ErrorCode.NONE and not is_retriable(code):
                raise error_for(code, topic)
            if now > deadline:
                raise error_for(code or ErrorCode.LEADER_NOT_AVAILABLE, topic)
            await asyncio.sleep(self._backoff)

    def _refresh_metadata_soon(self) -> None:
        if self._metadata_task is None or self._metadata_task.done():
            self._metadata_task = spawn(self._refresh_metadata(), "streamlog-producer-metadata")

    async def _refresh_metadata(self) -> None:
        await asyncio.sleep(self._backoff)
        try:
            await self._cluster.refresh(list(self._topics))
        except TransportError as e:
            log.debug("producer metadata refresh failed: %s", e)
        for topic, meta in self._cluster.topics.items():
            if meta.partitions:
                self._set_count(topic, len(meta.partitions))
        self._sender.wake()
