"""The producer: records batched per partition, handed to the sender (``sender.py``).

``send`` picks the partition (murmur2 of the key, Kafka's default, so a key lands where
the Java client and librdkafka put it; sticky for null keys, KIP-480), appends the record
to the partition's open batch and returns a handle at once; awaiting the handle waits for
the broker's acknowledgement. A batch closes when it reaches ``batch_size`` or has
lingered ``linger_ms``; the sender sends it, retries it in order and resolves it.
``buffer_memory`` bounds what is queued: beyond it ``send`` waits.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from itertools import accumulate, repeat

from streamlog.log.partitioner import DefaultPartitioner, partition_for_key
from streamlog.log.records import Compression
from streamlog.protocol import ErrorCode
from streamlog.transport.errors import (
    TransportClosedError,
    TransportError,
    UnknownTopicError,
)
from streamlog.transport.kafka.batches import (
    RECORD_OVERHEAD,
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


class KafkaProducer:
    """See the module docstring. Create through ``KafkaTransport.producer``."""

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
        self._counts: dict[str, int] = {}
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
        if self._closed:
            raise TransportClosedError("the producer is closed")
        if self._sender.failure is not None:
            raise self._sender.failure
        count = self._counts.get(topic)
        if count is None:
            count = await self._partition_count(topic)
        sticky = partition is None and key is None
        if partition is None:
            partition = self._partitioner.partition(topic, key, count)
        elif not 0 <= partition < count:
            count = await self._partition_count(topic, refresh=True)
            if not 0 <= partition < count:
                raise UnknownTopicError(
                    f"{topic}: partition {partition} does not exist ({count} partitions)"
                )
        if timestamp_ms is None:
            timestamp_ms = now_ms()
        size = RECORD_OVERHEAD
        if key is not None:
            size += len(key)
        if value is not None:
            size += len(value)
        if headers:
            headers = tuple(headers)
            for name, header_value in headers:
                size += len(name) + (len(header_value) if header_value is not None else 0) + 10
        if self._buffered >= self._buffer_memory:
            await self._wait_for_space()
        # A plain tuple finds the TopicPartition key (same hash and equality) without
        # building one per record.
        queue = self._queues.get((topic, partition))
        if queue is None:
            tp = TopicPartition(topic, partition)
            queue = self._queues[tp] = PartitionQueue(tp, self._max_in_flight)
        batch = queue.open
        if batch is not None and batch.size + size > self._batch_size:
            self._close_batch(queue)
            batch = None
            if sticky:
                # The sticky partition's batch is full: the record moves on with it
                # instead of opening a batch of one there (KIP-480's abortOnNewBatch).
                partition = self._partitioner.partition(topic, None, count)
                queue = self._queues.get((topic, partition))
                if queue is None:
                    tp = TopicPartition(topic, partition)
                    queue = self._queues[tp] = PartitionQueue(tp, self._max_in_flight)
                batch = queue.open
                if batch is not None and batch.size + size > self._batch_size:
                    self._close_batch(queue)
                    batch = None
        if batch is None:
            batch = self._new_batch(queue)
        index = len(batch.entries)
        batch.entries.append((key, value, timestamp_ms, headers))
        batch.size += size
        self._buffered += size
        if batch.size >= self._batch_size:
            self._close_batch(queue)
        return RecordFuture(batch, index)

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

        Runs of records for one partition are added to its batches in bulk (sizes summed
        and entries made by builtins, no handle per record); keyed records with no
        ``partition`` are first grouped by partition, a key at a time.
        """
        if self._closed:
            raise TransportClosedError("the producer is closed")
        if self._sender.failure is not None:
            raise self._sender.failure
        values = values if isinstance(values, list | tuple) else list(values)
        if keys is not None:
            keys = keys if isinstance(keys, list | tuple) else list(keys)
            if len(keys) != len(values):
                raise ValueError(f"{len(keys)} keys for {len(values)} values")
            _check_bytes_items(keys, "key")
        _check_bytes_items(values, "value")
        count = self._counts.get(topic)
        if count is None:
            count = await self._partition_count(topic)
        if partition is not None and not 0 <= partition < count:
            count = await self._partition_count(topic, refresh=True)
            if not 0 <= partition < count:
                raise UnknownTopicError(
                    f"{topic}: partition {partition} does not exist ({count} partitions)"
                )
        if timestamp_ms is None:
            timestamp_ms = now_ms()
        headers = tuple(headers)
        fixed = RECORD_OVERHEAD + sum(
            len(name) + (len(v) if v is not None else 0) + 10 for name, v in headers
        )
        sent = SentMany(len(values), timestamp_ms)
        if partition is not None or keys is None:
            await self._add_run(
                topic, count, partition, keys, values, timestamp_ms, headers, fixed, sent, 0
            )
            return sent
        # Grouped by partition (in order), each group one run; null keys go to the
        # sticky partition of the moment, in order with the keyed records there.
        groups: dict[int, list[int]] = {}
        sticky = -1
        for i, key in enumerate(keys):
            if key is not None:
                target = partition_for_key(key, count)
            else:
                if sticky < 0:
                    sticky = self._partitioner.partition(topic, None, count)
                target = sticky
            group = groups.get(target)
            if group is None:
                group = groups[target] = []
            group.append(i)
        for target, where in groups.items():
            await self._add_run(
                topic,
                count,
                target,
                [keys[i] for i in where],
                [values[i] for i in where],
                timestamp_ms,
                headers,
                fixed,
                sent,
                where,
            )
        return sent

    async def _add_run(
        self,
        topic: str,
        count: int,
        partition: int | None,
        keys: Sequence[bytes | None] | None,
        values: Sequence[bytes | None],
        timestamp_ms: int,
        headers: tuple[Header, ...],
        fixed: int,
        sent: SentMany,
        where: int | list[int],
    ) -> None:
        """Add ``values`` (and ``keys``) to ``partition``'s batches (the sticky
        partition's if None), closing each batch they fill; record the runs in ``sent``."""
        total = len(values)
        # ends[j]: the estimated bytes of records [0, j), as send counts them.
        ends = [0, *accumulate(_sizes(values, keys, fixed))]
        done = 0
        while done < total:
            target = partition
            if target is None:
                target = self._partitioner.partition(topic, None, count)
            if self._buffered >= self._buffer_memory:
                await self._wait_for_space()
            queue = self._queues.get((topic, target))
            if queue is None:
                tp = TopicPartition(topic, target)
                queue = self._queues[tp] = PartitionQueue(tp, self._max_in_flight)
            batch = queue.open or self._new_batch(queue)
            room = self._batch_size - batch.size
            upto = bisect_right(ends, ends[done] + room, done, total + 1) - 1
            if upto == done:
                if batch.entries:  # full: send it (a null-key run moves on, KIP-480)
                    self._close_batch(queue)
                    continue
                upto = done + 1  # an empty batch takes a record whatever its size
            first = len(batch.entries)
            batch.entries.extend(
                zip(
                    repeat(None, upto - done) if keys is None else keys[done:upto],
                    values[done:upto],
                    repeat(timestamp_ms),
                    repeat(headers),
                )
            )
            size = ends[upto] - ends[done]
            batch.size += size
            self._buffered += size
            sent.add_run(
                batch,
                first,
                upto - done,
                where + done if isinstance(where, int) else where[done:upto],
            )
            done = upto
            if done < total or batch.size >= self._batch_size:
                self._close_batch(queue)

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
        self._sender.close()
        if self._metadata_task is not None:
            self._metadata_task.cancel()
        error = TransportClosedError("the producer was closed before the record was sent")
        for queue in self._queues.values():
            for batch in queue.pending():
                batch.fail(error)
        await self._cluster.close()

    # ------------------------------------------------------------------ batching

    def _new_batch(self, queue: PartitionQueue) -> ProducerBatch:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._serial += 1
        batch = ProducerBatch(queue.tp, self._serial, now, now + self._delivery_timeout)
        queue.open = batch
        self._open[queue.tp] = queue
        if len(self._open) == 1:
            self._sender.wake()  # it may be sleeping without a linger deadline
        return batch

    def _close_batch(self, queue: PartitionQueue) -> None:
        batch = queue.open
        if batch is None:
            return
        batch.closed = True
        queue.open = None
        queue.ready.append(batch)
        del self._open[queue.tp]
        self._partitioner.on_new_batch(queue.tp.topic, queue.tp.partition)
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

    def _release(self, batch: ProducerBatch) -> None:
        self._buffered -= batch.size
        if self._space is not None and self._buffered < self._buffer_memory:
            self._space.set()

    # ------------------------------------------------------------------ metadata

    async def _partition_count(self, topic: str, refresh: bool = False) -> int:
        if not refresh and topic in self._counts:
            return self._counts[topic]
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
                self._counts[topic] = len(meta.partitions)
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
            await self._cluster.refresh(list(self._counts))
        except TransportError as e:
            log.debug("producer metadata refresh failed: %s", e)
        for topic, meta in self._cluster.topics.items():
            if topic in self._counts and meta.partitions:
                self._counts[topic] = len(meta.partitions)
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


def _sizes(
    values: Sequence[bytes | None], keys: Sequence[bytes | None] | None, fixed: int
) -> list[int]:
    """Each record's size as ``send`` estimates it: ``fixed`` plus key and value."""
    try:
        sizes = [len(v) + fixed for v in values]  # type: ignore[arg-type]
    except TypeError:  # None values
        sizes = [(len(v) if v is not None else 0) + fixed for v in values]
    if keys is not None:
        sizes = [s + (len(k) if k is not None else 0) for s, k in zip(sizes, keys, strict=True)]
    return sizes
