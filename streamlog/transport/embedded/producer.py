"""The embedded producer: records batched per partition, appended to the log in-process.

Records are collected per partition into a list of ``(key, value, timestamp, headers)``
entries. A partition's batch is encoded with one ``encode_batch`` call (compression
honoured) and appended with one ``PartitionLog.append`` when it reaches ``batch_size``
(estimated, an upper bound of the encoded size), when ``linger_ms`` has passed since the
producer's oldest waiting batch was started, on ``flush``/``close``, or at once for
``send_and_wait``. With ``linger_ms=0`` batches go out on the next turn of the event loop,
so records sent in one turn still share a batch.

Partitioning is Kafka's: ``murmur2`` of a key (so a key lands where the Java client would
put it), the sticky partitioner for null keys (one partition until its batch is sent).

Acknowledgement: the append is synchronous, so the awaitable ``send`` returns resolves
as soon as its batch is in the log, whatever ``acks`` says. ``idempotent`` is accepted and
ignored: there is no network, hence no retry that could duplicate a batch, and so no need
for producer ids and sequence numbers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Generator, Sequence
from time import time_ns as _time_ns
from typing import TYPE_CHECKING, Any

from streamlog.log import errors as log_errors
from streamlog.log.clock import SystemClock
from streamlog.log.partitioner import DefaultPartitioner, partition_for_key
from streamlog.log.records import Compression as CompressionId
from streamlog.log.records import encode_batch
from streamlog.transport.base import Compression
from streamlog.transport.embedded.errors import translate
from streamlog.transport.errors import (
    InvalidConfigError,
    ProduceError,
    TransportClosedError,
    TransportError,
    UnknownTopicError,
)
from streamlog.transport.types import Header, RecordMetadata

if TYPE_CHECKING:
    from streamlog.transport.embedded.transport import EmbeddedTransport

__all__ = ["EmbeddedProducer", "RecordFuture"]

log = logging.getLogger(__name__)

COMPRESSIONS = {
    "none": CompressionId.NONE,
    "gzip": CompressionId.GZIP,
    "snappy": CompressionId.SNAPPY,
    "lz4": CompressionId.LZ4,
    "zstd": CompressionId.ZSTD,
}
# Upper bound of a record's framing in a batch: length (5), attributes (1), timestamp
# delta (10), offset delta (5), key and value lengths (5 + 5) and header count (5) are at
# most 36 bytes; 24 covers every record whose timestamp is within 2**41 ms of the batch's
# first (70 years) and whose sizes fit in 3-byte varints (2 MiB), i.e. every real one.
RECORD_OVERHEAD = 24
BATCH_OVERHEAD = 61
_BYTES_TYPES = (bytes, bytearray, memoryview)


class _Batch:
    """The records waiting for one partition, then the outcome of their append."""

    __slots__ = (
        "topic",
        "partition",
        "entries",
        "size",
        "base_offset",
        "append_time",
        "error",
        "waiter",
    )

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.entries: list[tuple[Any, Any, int, Sequence[Header]]] | None = []
        self.size = BATCH_OVERHEAD
        self.base_offset = -1
        self.append_time = -1
        self.error: TransportError | None = None
        self.waiter: asyncio.Future[None] | None = None

    @property
    def done(self) -> bool:
        return self.base_offset >= 0 or self.error is not None

    def finish(self) -> None:
        self.entries = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class RecordFuture(tuple):  # type: ignore[type-arg]
    """What ``send`` returns: await it for the record's ``RecordMetadata``.

    A 3-tuple (batch, index in the batch, timestamp) built with ``tuple.__new__``: the
    cheapest object Python makes, and one is made per record. The batch holds the one
    real future, created only if someone awaits before the batch is appended.
    """

    __slots__ = ()

    def done(self) -> bool:
        return bool(self[0].done)

    def result(self) -> RecordMetadata:
        """The metadata, or the error, of a record whose batch was appended."""
        batch, index, timestamp = self
        if batch.error is not None:
            error = batch.error
            raise type(error)(*error.args) from error.__cause__
        if batch.base_offset < 0:
            raise asyncio.InvalidStateError("the record has not been appended yet")
        if batch.append_time >= 0:
            timestamp = batch.append_time
        return RecordMetadata(batch.topic, batch.partition, batch.base_offset + index, timestamp)

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        batch = self[0]
        if not batch.done:
            if batch.waiter is None:
                batch.waiter = asyncio.get_running_loop().create_future()
            yield from batch.waiter.__await__()
        return self.result()

    def __repr__(self) -> str:
        batch, index, _ = self
        state = "done" if batch.done else "pending"
        return f"<RecordFuture {batch.topic}-{batch.partition} #{index} {state}>"


_new_future = tuple.__new__


class _Topic:
    """What the producer caches per topic: partition count, batch limit, open batches."""

    __slots__ = ("name", "count", "limit", "batches", "sticky")

    def __init__(self, name: str, count: int, limit: int) -> None:
        self.name = name
        self.count = count
        self.limit = limit
        self.batches: list[_Batch | None] = [None] * count
        self.sticky = -1  # the null-key partition until its batch is sent; -1: none


class EmbeddedProducer:
    """See the module docstring. Made by ``EmbeddedTransport.producer``.

    Invariant: every open batch is both in ``_open`` (what flush and the linger timer
    drain) and in its topic's ``_Topic.batches`` slot (what ``send`` looks up).
    """

    def __init__(
        self,
        transport: EmbeddedTransport,
        *,
        acks: int = -1,
        linger_ms: int = 5,
        batch_size: int = 1 << 20,
        compression: Compression = "none",
        idempotent: bool = True,
        client_id: str = "streamlog",
    ) -> None:
        if acks not in (-1, 0, 1):
            raise InvalidConfigError(f"acks must be -1 (all), 0 or 1, not {acks!r}")
        try:
            self._compression = COMPRESSIONS[compression]
        except KeyError:
            raise InvalidConfigError(
                f"unknown compression {compression!r}: use one of {', '.join(COMPRESSIONS)}"
            ) from None
        if batch_size < 1:
            raise InvalidConfigError(f"batch_size must be positive, not {batch_size}")
        self.acks = acks
        self.idempotent = idempotent  # nothing to do: see the module docstring
        self.client_id = client_id
        self._transport = transport
        self._manager = transport.manager
        clock = self._manager.clock
        # The system clock read inline saves a method call per record.
        self._system_clock = type(clock) is SystemClock
        self._time_ms = clock.time_ms
        self._linger_s = max(0, linger_ms) / 1000
        self._batch_size = batch_size
        self._partitioner = DefaultPartitioner()
        self._topics: dict[str, _Topic] = {}
        self._open: dict[tuple[str, int], _Batch] = {}
        self._timer: asyncio.Handle | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"EmbeddedProducer({self._transport.url!r}, client_id={self.client_id!r})"

    # -- sending -------------------------------------------------------------------------

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[Header] = (),
        timestamp_ms: int | None = None,
    ) -> RecordFuture:
        """Add a record to its partition's batch; await the result for its metadata."""
        # The per-record path, kept to attribute reads, one dict lookup and one list
        # index; everything rare (new topic, new batch, full batch) is a call away.
        if self._closed:
            raise TransportClosedError("the producer is closed")
        size = RECORD_OVERHEAD
        if value is not None:
            if value.__class__ is not bytes and not isinstance(value, _BYTES_TYPES):
                raise TypeError(f"value must be bytes or None, not {type(value).__name__}")
            size += len(value)
        if key is not None:
            if key.__class__ is not bytes and not isinstance(key, _BYTES_TYPES):
                raise TypeError(f"key must be bytes or None, not {type(key).__name__}")
            size += len(key)
        if headers:
            size += _headers_size(headers)
        state = self._topics.get(topic)
        if state is None:
            state = self._topic(topic)
        sticky = False
        if partition is None:
            if key is not None:
                partition = partition_for_key(key, state.count)
            else:
                sticky = True
                partition = state.sticky
                if partition < 0:
                    partition = self._stick(state)
        elif not 0 <= partition < state.count:
            raise UnknownTopicError(
                f"topic {topic!r} has no partition {partition} (it has {state.count})"
            )
        if timestamp_ms is None:
            timestamp_ms = _time_ns() // 1_000_000 if self._system_clock else self._time_ms()
        batch = state.batches[partition]
        if batch is None:
            batch = self._new_batch(state, partition)
        elif batch.size + size > state.limit:
            self._append(batch)
            if sticky:
                # KIP-480: a null-key record whose sticky batch is full moves on with
                # the partitioner rather than opening a batch of one there.
                partition = self._stick(state)
            batch = state.batches[partition] or self._new_batch(state, partition)
        entries = batch.entries
        entries.append((key, value, timestamp_ms, headers))  # type: ignore[union-attr]
        batch.size += size
        future = _new_future(RecordFuture, (batch, len(entries) - 1, timestamp_ms))  # type: ignore[arg-type]
        if batch.size >= state.limit:
            self._append(batch)
        return future  # type: ignore[no-any-return]

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
        """Send one record and append its batch now (lingering would only add latency)."""
        future = await self.send(
            topic, value, key=key, partition=partition, headers=headers, timestamp_ms=timestamp_ms
        )
        batch = future[0]
        if not batch.done:
            self._append(batch)
        return future.result()

    def _topic(self, topic: str) -> _Topic:
        count = self._transport.ensure_topic(topic)
        try:
            max_bytes = self._manager.topic_config(topic).max_message_bytes
        except log_errors.LogError as exc:
            raise translate(exc) from exc
        state = self._topics[topic] = _Topic(topic, count, min(self._batch_size, max_bytes))
        return state

    def _stick(self, state: _Topic) -> int:
        state.sticky = self._partitioner.partition(state.name, None, state.count)
        return state.sticky

    def topics_changed(self) -> None:
        """Told by the transport that topics changed: partition counts are re-read.

        The open batches go out first: they belong to the state being dropped.
        """
        self._drain()
        self._topics.clear()

    def _new_batch(self, state: _Topic, partition: int) -> _Batch:
        batch = _Batch(state.name, partition)
        state.batches[partition] = batch
        self._open[(state.name, partition)] = batch
        if self._timer is None:
            loop = asyncio.get_running_loop()
            if self._linger_s:
                self._timer = loop.call_later(self._linger_s, self._linger_expired)
            else:
                self._timer = loop.call_soon(self._linger_expired)
        return batch

    def _linger_expired(self) -> None:
        self._timer = None
        self._drain()

    def _drain(self) -> None:
        for batch in list(self._open.values()):
            self._append(batch)

    def _append(self, batch: _Batch) -> None:
        """Encode and append one batch; its records' futures resolve (or fail) now."""
        topic, partition = batch.topic, batch.partition
        if self._open.get((topic, partition)) is batch:
            del self._open[(topic, partition)]
        state = self._topics.get(topic)
        if state is not None and partition < state.count and state.batches[partition] is batch:
            state.batches[partition] = None
        entries = batch.entries
        assert entries is not None
        try:
            data = encode_batch(entries, compression=self._compression)
            result = self._manager.partition(topic, partition).append(data)
        except log_errors.LogError as exc:
            batch.error = translate(exc)
            batch.error.__cause__ = exc
        except (TypeError, ValueError) as exc:  # a header the send-time checks let through
            batch.error = ProduceError(f"cannot encode a batch for {topic}-{partition}: {exc}")
            batch.error.__cause__ = exc
        else:
            batch.base_offset = result.base_offset
            batch.append_time = result.log_append_time
            self._transport.notifier.notify((topic, partition))
        if batch.error is not None:
            log.warning(
                "%d records for %s-%d failed: %s", len(entries), topic, partition, batch.error
            )
        self._partitioner.on_new_batch(topic, partition)
        if state is not None and state.sticky == partition:
            state.sticky = -1
        batch.finish()

    # -- the rest of the interface -------------------------------------------------------

    async def flush(self) -> None:
        """Append every waiting batch (appends are synchronous: nothing else to wait for)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._drain()

    async def partitions_for(self, topic: str) -> int:
        if self._closed:
            raise TransportClosedError("the producer is closed")
        return self._transport.ensure_topic(topic)

    async def close(self) -> None:
        if self._closed:
            return
        await self.flush()
        self._closed = True
        self._transport.forget(self)


def _headers_size(headers: Sequence[Header]) -> int:
    size = 0
    for name, value in headers:
        if not isinstance(name, str):
            raise TypeError(f"a header name must be a str, not {type(name).__name__}")
        size += 10 + len(name.encode())
        if value is not None:
            if not isinstance(value, _BYTES_TYPES):
                raise TypeError(f"a header value must be bytes or None, not {type(value).__name__}")
            size += len(value)
    return size
