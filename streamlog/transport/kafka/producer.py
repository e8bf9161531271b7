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
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from streamlog.log.partitioner import DefaultPartitioner, partition_for_key
from streamlog.log.records import BatchBuilder, Compression
from streamlog.protocol import ErrorCode
from streamlog.transport.errors import (
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
from streamlog.transport.kafka.util import log, now_ms, spawn
from streamlog.transport.types import Header, RecordMetadata, TopicPartition

__all__ = ["KafkaProducer", "COMPRESSION_TYPES"]

COMPRESSION_TYPES = {
    "none": Compression.NONE,
    "gzip": Compression.GZIP,
    "snappy": Compression.SNAPPY,
    "lz4": Compression.LZ4,
    "zstd": Compression.ZSTD,
}

_UNKNOWN_TOPIC_GRACE = 2.0  # seconds a topic may be unknown before send fails
_BYTES_TYPES = (bytes, bytearray, memoryview)


class _Topic:
    """What ``send`` needs per topic: the partition count, the builders of the open
    batches by partition, and the null-key (sticky) partition until its batch closes."""

    __slots__ = ("name", "count", "builders", "sticky")

    def __init__(self, name: str, count: int) -> None:
        self.name = name
        self.count = count
        self.builders: list[BatchBuilder | None] = [None] * count
        self.sticky = -1  # -1: none chosen

    def resize(self, count: int) -> None:
        """The topic has ``count`` partitions now (the slots of any removed ones stay
        until their open batches close)."""
        self.count = count
        if count > len(self.builders):
            self.builders.extend([None] * (count - len(self.builders)))


class KafkaProducer:
    """See the module docstring. Create through ``KafkaTransport.producer``.

    Invariant: every open batch is its partition queue's ``open``, is in ``_open`` (what
    flush and the linger check close) and, while the producer can send, by its builder
    in its topic's ``_Topic.builders`` slot (what ``send`` adds to). ``_topics`` is
    emptied when the producer closes or its sender fails, so that ``send`` reaches
    ``_topic``, which raises.
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
    ) -> None:
        if acks not in (-1, 0, 1):
            raise ValueError(f"acks must be -1 (all), 0 or 1, not {acks}")
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
        self._partitioner = DefaultPartitioner()
        self._topics: dict[str, _Topic] = {}
        self._count_lookups: dict[str, asyncio.Future[int]] = {}
        self._queues: dict[tuple[str, int], PartitionQueue] = {}
        self._open: dict[TopicPartition, PartitionQueue] = {}
        self._buffered = 0
        self._space: asyncio.Event | None = None
        self._metadata_task: asyncio.Task[None] | None = None
        self._serial = 0
        self._closed = False
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
        )

    # ------------------------------------------------------------------ public API

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[Header] = (),
        timestamp_ms: int | None = None,
    ) -> RecordFuture:
        # ``key`` and the rest are keyword-only in the ``Producer`` protocol, not here:
        # CPython (3.11) looks up the default of each keyword-only argument a call
        # leaves out in a dict (see EmbeddedProducer.send).
        #
        # The per-record path: one dict lookup, the partition, the buffer check and the
        # builder's add (checks, clock, encoding and the handle, in C when built);
        # everything rare (a new topic, a new or full batch, a closed producer) is a
        # call away.
        state = self._topics.get(topic)
        if state is None:
            state = await self._topic(topic)
        if partition is None:
            if key is None:
                chosen = state.sticky
                if chosen < 0:
                    chosen = self._stick(state)
            else:
                if key.__class__ is not bytes and not isinstance(key, _BYTES_TYPES):
                    raise TypeError(f"key must be bytes or None, not {type(key).__name__}")
                count = state.count  # one partition: no hash (the answer is 0)
                chosen = 0 if count == 1 else partition_for_key(key, count)
        elif 0 <= partition < state.count:
            chosen = partition
        else:
            chosen = await self._check_partition(state, partition)
        if self._buffered >= self._buffer_memory:
            await self._wait_for_space()
        builder = state.builders[chosen]
        if builder is None:
            builder = self._new_batch(state, chosen)
        future: RecordFuture | None = builder.add(key, value, timestamp_ms, headers)
        if future is None:
            sticky = partition is None and key is None
            return self._add_to_full(state, builder, sticky, key, value, timestamp_ms, headers)
        if builder.full:
            self._close_batch(self._queue_of(builder))
        return future

    def _add_to_full(
        self,
        state: _Topic,
        full: BatchBuilder,
        sticky: bool,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None,
        headers: Sequence[Header],
    ) -> RecordFuture:
        """The record did not fit in its partition's batch: close that batch, start another."""
        batch: ProducerBatch = full.owner
        partition = batch.tp.partition
        self._close_batch(self._queue_of(full))
        if sticky:
            # KIP-480: a null-key record whose sticky batch is full moves on with the
            # partitioner rather than opening a batch of one there.
            partition = self._stick(state)
        builder = state.builders[partition] or self._new_batch(state, partition)
        future: RecordFuture | None = builder.add(key, value, timestamp_ms, headers)
        if future is None:  # the partitioner moved to another partition's full batch
            return self._add_to_full(state, builder, sticky, key, value, timestamp_ms, headers)
        if builder.full:
            self._close_batch(self._queue_of(builder))
        return future

    async def send_many(
        self,
        topic: str,
        values: Iterable[bytes | None],
        *,
        keys: Iterable[bytes | None] | None = None,
        partition: int | None = None,
        headers: Sequence[Header] = (),
        timestamp_ms: int | None = None,
    ) -> SentMany:
        """Queue many records (see ``Producer.send_many``).

        Every key and value is checked before anything is queued. A run of records for
        one partition is one call into the codec (``BatchBuilder.add_many``) per batch it
        fills: no Python work per record unless they are keyed and ``partition`` is None
        (each key is hashed to its partition first, grouping them by partition).
        """
        state = self._topics.get(topic)
        if state is None:
            state = await self._topic(topic)
        values = values if isinstance(values, list | tuple) else list(values)
        if keys is not None:
            keys = keys if isinstance(keys, list | tuple) else list(keys)
            if len(keys) != len(values):
                raise ValueError(f"{len(keys)} keys for {len(values)} values")
            _check_bytes_items(keys, "key")
        _check_bytes_items(values, "value")
        if partition is not None and not 0 <= partition < state.count:
            await self._check_partition(state, partition)
        if timestamp_ms is None:
            timestamp_ms = now_ms()
        headers = tuple(headers)
        sent = SentMany(len(values), timestamp_ms)
        if partition is not None or keys is None:
            await self._add_run(state, partition, keys, values, timestamp_ms, headers, sent, 0)
            return sent
        # Grouped by partition (in order), each group one run; null keys go to the
        # sticky partition of the moment, in order with the keyed records there.
        groups: dict[int, list[int]] = {}
        count = state.count
        sticky = -1
        for i, key in enumerate(keys):
            if key is not None:
                target = partition_for_key(key, count)
            else:
                if sticky < 0:
                    sticky = state.sticky if state.sticky >= 0 else self._stick(state)
                target = sticky
            group = groups.get(target)
            if group is None:
                group = groups[target] = []
            group.append(i)
        for target, where in groups.items():
            await self._add_run(
                state,
                target,
                [keys[i] for i in where],
                [values[i] for i in where],
                timestamp_ms,
                headers,
                sent,
                where,
            )
        return sent

    async def _add_run(
        self,
        state: _Topic,
        partition: int | None,
        keys: Sequence[bytes | None] | None,
        values: Sequence[bytes | None],
        timestamp_ms: int,
        headers: tuple[Header, ...],
        sent: SentMany,
        where: int | list[int],
    ) -> None:
        """Add ``values`` (and ``keys``) to ``partition``'s batches (the sticky
        partition's if None), closing each batch they fill; record the runs in ``sent``."""
        total = len(values)
        done = 0
        while done < total:
            if self._buffered >= self._buffer_memory:
                await self._wait_for_space()
            target = partition
            if target is None:
                target = state.sticky
                if target < 0:
                    target = self._stick(state)
            builder = state.builders[target] or self._new_batch(state, target)
            first = builder.count
            # Keys and values were checked by send_many: no second pass here.
            added = builder.add_many(keys, values, done, timestamp_ms, headers, False)
            if added:
                at = where + done if isinstance(where, int) else where[done : done + added]
                sent.add_run(builder.owner, first, added, at)
                done += added
            if done < total or builder.full:
                # Full (the next record did not fit): out it goes; a null-key run moves on
                # with the partitioner (KIP-480), as send would.
                self._close_batch(self._queue_of(builder))

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
        """Send everything queued now and wait until each batch is acknowledged or failed."""
        for queue in list(self._open.values()):
            self._close_batch(queue)
        futures = [b.future for q in self._queues.values() for b in q.pending()]
        if futures:
            await asyncio.wait(futures)

    async def partitions_for(self, topic: str) -> int:
        return await self._partition_count(topic, refresh=True)

    async def close(self) -> None:
        """Flush (waiting at most the request timeout), then release everything."""
        if self._closed:
            return
        try:
            await asyncio.wait_for(self.flush(), self._cluster.request_timeout)
        except TimeoutError:
            log.warning("producer closed with unacknowledged records")
        self._closed = True
        self._topics.clear()  # so that send reaches _topic, which refuses
        self._sender.close()
        if self._metadata_task is not None:
            self._metadata_task.cancel()
        error = TransportClosedError("the producer was closed before the record was sent")
        for queue in self._queues.values():
            for batch in queue.pending():
                batch.fail(error)
        await self._cluster.close()

    # ------------------------------------------------------------------ topics

    async def _topic(self, topic: str) -> _Topic:
        """The topic's state, made on its first send (raises if the producer cannot send)."""
        self._check_open()
        count = await self._partition_count(topic)
        self._check_open()
        state = self._topics.get(topic)
        if state is None:
            state = self._topics[topic] = _Topic(topic, count)
        return state

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosedError("the producer is closed")
        if self._sender.failure is not None:
            raise self._sender.failure

    async def _check_partition(self, state: _Topic, partition: int) -> int:
        """``partition`` if the topic has it after a metadata refresh, else raise."""
        count = await self._partition_count(state.name, refresh=True)
        if not 0 <= partition < count:
            raise UnknownTopicError(
                f"{state.name}: partition {partition} does not exist ({count} partitions)"
            )
        self._check_open()
        return partition

    def _stick(self, state: _Topic) -> int:
        state.sticky = self._partitioner.partition(state.name, None, state.count)
        return state.sticky

    def _set_count(self, topic: str, count: int) -> None:
        state = self._topics.get(topic)
        if state is not None and state.count != count:
            state.resize(count)
            if state.sticky >= count:
                state.sticky = -1

    # ------------------------------------------------------------------ batching

    def _queue_of(self, builder: BatchBuilder) -> PartitionQueue:
        batch: ProducerBatch = builder.owner
        return self._queues[batch.tp]

    def _new_batch(self, state: _Topic, partition: int) -> BatchBuilder:
        queue = self._queues.get((state.name, partition))
        if queue is None:
            tp = TopicPartition(state.name, partition)
            queue = self._queues[tp] = PartitionQueue(tp, self._max_in_flight)
        now = asyncio.get_running_loop().time()
        self._serial += 1
        batch = ProducerBatch(
            queue.tp, self._serial, now, now + self._delivery_timeout, self._batch_size
        )
        builder = batch.builder
        assert builder is not None
        queue.open = batch
        self._open[queue.tp] = queue
        state.builders[partition] = builder
        if len(self._open) == 1:
            self._sender.wake()  # it may be sleeping without a linger deadline
        return builder

    def _close_batch(self, queue: PartitionQueue) -> None:
        batch = queue.open
        if batch is None:
            return
        queue.open = None
        del self._open[queue.tp]
        topic, partition = queue.tp
        state = self._topics.get(topic)
        if state is not None:
            if partition < len(state.builders) and state.builders[partition] is batch.builder:
                state.builders[partition] = None
            if state.sticky == partition:
                state.sticky = -1
        self._partitioner.on_new_batch(topic, partition)
        if not batch.close():
            # Every add to it failed (a bad value): nothing to send, nobody to answer.
            batch.builder = None
            batch.done(-1, -1)
            return
        self._buffered += batch.size
        queue.ready.append(batch)
        self._sender.wake()

    async def _wait_for_space(self) -> None:
        if self._space is None:
            self._space = asyncio.Event()
        while self._buffered >= self._buffer_memory and not self._closed:
            self._space.clear()
            # Everything buffered may be sitting in open batches: send them.
            for queue in list(self._open.values()):
                self._close_batch(queue)
            await self._space.wait()
        self._check_open()

    def _release(self, batch: ProducerBatch) -> None:
        self._buffered -= batch.size
        if self._space is not None and self._buffered < self._buffer_memory:
            self._space.set()

    # ------------------------------------------------------------------ metadata

    async def _partition_count(self, topic: str, refresh: bool = False) -> int:
        state = self._topics.get(topic)
        if not refresh and state is not None:
            return state.count
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


def _check_bytes_items(items: Sequence[object], what: str) -> None:
    """Raise ``TypeError`` unless every item is bytes-like or None (builtins do the
    common case, all bytes and None, at C speed)."""
    kinds = set(map(type, items))
    kinds.discard(bytes)
    kinds.discard(type(None))
    if not kinds:
        return
    for item in items:
        if item is not None and type(item) in kinds:
            try:
                memoryview(item)  # type: ignore[arg-type]
            except TypeError:
                raise TypeError(
                    f"{what} must be bytes-like or None, not {type(item).__name__}"
                ) from None
