"""The embedded producer: records batched per partition, appended to the log in-process.

Each record is encoded into its partition's open batch as it is sent (the codec's
``BatchBuilder``: no per-record entry kept, no second pass, the record's handle made by
the codec too). A batch is framed (compression honoured) and appended with one
``PartitionLog.append`` when the next record would take it past ``batch_size`` or it
reaches it, when ``linger_ms`` has passed since the producer's oldest waiting batch was
started, on ``flush``/``close``, or at once for ``send_and_wait``. With ``linger_ms=0``
batches go out on the next turn of the event loop, so records sent in one turn still
share a batch. Bad keys, values or headers raise ``TypeError`` from ``send``.

Partitioning is Kafka's: ``murmur2`` of a key (so a key lands where the Java client would
put it), the sticky partitioner for null keys (one partition until its batch is sent).
The batching and the partition choice are the accumulator's, shared with the Kafka
producer (``streamlog/transport/accumulator.py``); what is this module's is the batches'
end: one in-process append each.

Acknowledgement: the append is synchronous, so the awaitable ``send`` returns resolves
as soon as its batch is in the log, whatever ``acks`` says. ``idempotent`` is accepted and
ignored: there is no network, hence no retry that could duplicate a batch, and so no need
for producer ids and sequence numbers. A transactional producer (``txn_producer.py``, a
subclass: ``_write`` is where it differs) stamps them, as its transactions need them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from streamlog.log import AppendResult
from streamlog.log import errors as log_errors
from streamlog.log.clock import SystemClock
from streamlog.log.records import BatchBuilder, encode_built
from streamlog.log.records import Compression as CompressionId
from streamlog.transport.accumulator import RecordAccumulator, TopicBatches
from streamlog.transport.base import Compression
from streamlog.transport.embedded.batch import Batch, RecordFuture, SentMany
from streamlog.transport.embedded.errors import translate
from streamlog.transport.errors import (
    InvalidConfigError,
    ProduceError,
    TransactionStateError,
    TransportClosedError,
    TransportError,
    UnknownTopicError,
)
from streamlog.transport.types import (
    ConsumerGroupMetadata,
    Header,
    OffsetAndMetadata,
    RecordMetadata,
    TopicPartition,
)

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


class EmbeddedProducer(RecordAccumulator[RecordFuture, SentMany]):
    """See the module docstring. Made by ``EmbeddedTransport.producer``.

    ``send`` and ``send_many`` are the accumulator's (``streamlog.transport.accumulator``);
    this class opens batches and appends the closed ones.

    Invariant: every open batch is both in ``_open`` (what flush and the linger timer
    drain) and, by its builder, in its topic's ``TopicBatches.builders`` slot (what
    ``send`` looks up).
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
        super().__init__()
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
        # None for the system clock: the builder reads the wall clock itself, which
        # saves a call per record. Any other clock (tests) is called by the builder.
        self._clock_ms: Callable[[], int] | None = (
            None if type(clock) is SystemClock else clock.time_ms
        )
        self._linger_s = max(0, linger_ms) / 1000
        self._batch_size = batch_size
        self._open: dict[tuple[str, int], Batch] = {}
        self._timer: asyncio.Handle | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"EmbeddedProducer({self._transport.url!r}, client_id={self.client_id!r})"

    # -- the accumulator's hooks ---------------------------------------------------------

    async def _topic(self, topic: str) -> TopicBatches:
        if self._closed:
            raise TransportClosedError("the producer is closed")
        count = self._transport.ensure_topic(topic)
        try:
            max_bytes = self._manager.topic_config(topic).max_message_bytes
        except log_errors.LogError as exc:
            raise translate(exc) from exc
        state = self._topics[topic] = TopicBatches(topic, count, min(self._batch_size, max_bytes))
        return state

    async def _unknown_partition(self, state: TopicBatches, partition: int) -> int:
        # The log is in-process: its partition count is already the current one.
        raise UnknownTopicError(
            f"topic {state.name!r} has no partition {partition} (it has {state.count})"
        )

    def _open_batch(self, state: TopicBatches, partition: int) -> BatchBuilder:
        batch = Batch(state.name, partition, state.limit, self._clock_ms)
        self._open[(state.name, partition)] = batch
        if self._timer is None:
            loop = asyncio.get_running_loop()
            if self._linger_s:
                self._timer = loop.call_later(self._linger_s, self._linger_expired)
            else:
                self._timer = loop.call_soon(self._linger_expired)
        return batch.open_builder()

    def _close_full(self, builder: BatchBuilder) -> None:
        self._append(builder.owner)

    def _new_sent(self, count: int, timestamp_ms: int) -> SentMany:
        return SentMany(count, timestamp_ms)

    def _now_ms(self) -> int:
        clock = self._clock_ms
        return time.time_ns() // 1_000_000 if clock is None else clock()

    # -- sending -------------------------------------------------------------------------

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

    def topics_changed(self) -> None:
        """Told by the transport that topics changed: partition counts are re-read.

        The open batches go out first: they belong to the state being dropped.
        """
        self._drain()
        self._topics.clear()

    def _linger_expired(self) -> None:
        self._timer = None
        self._drain()

    def _drain(self) -> None:
        for batch in list(self._open.values()):
            self._append(batch)

    def _append(self, batch: Batch) -> None:
        """Encode and append one batch; its records' futures resolve (or fail) now."""
        topic, partition = batch.topic, batch.partition
        if self._open.get((topic, partition)) is batch:
            del self._open[(topic, partition)]
        builder = batch.open_builder()
        self._batch_closed(topic, partition, builder)
        count = builder.count
        if not count:  # every add to it failed (a bad value): nothing to append
            batch.finish()
            return
        try:
            result = self._write(topic, partition, builder)
        except log_errors.LogError as exc:
            batch.error = translate(exc)
            batch.error.__cause__ = exc
        except TransportError as exc:
            batch.error = exc
        except (TypeError, ValueError) as exc:  # e.g. a compression library missing
            batch.error = ProduceError(f"cannot encode a batch for {topic}-{partition}: {exc}")
            batch.error.__cause__ = exc
        else:
            batch.base_offset = result.base_offset
            batch.append_time = result.log_append_time
            self._transport.notifier.notify((topic, partition))
        if batch.error is not None:
            log.warning("%d records for %s-%d failed: %s", count, topic, partition, batch.error)
            self._failed(batch.error)
        batch.finish()

    def _write(self, topic: str, partition: int, builder: BatchBuilder) -> AppendResult:
        """Frame the records of ``builder`` and append them: one batch, one append. A
        transactional producer overrides it to stamp its producer id, epoch and
        sequence numbers and to add the partition to its transaction first."""
        data = encode_built(builder, compression=self._compression)
        return self._manager.append(topic, partition, data)

    def _failed(self, error: TransportError) -> None:
        """A batch failed with ``error`` (its records' handles raise it): nothing more to
        do here; a transactional producer's transaction can only be aborted then."""

    # -- transactions: only with a transactional_id (``txn_producer.py``) -----------------

    @property
    def transactional_id(self) -> str | None:
        return None

    def _no_transactions(self, action: str) -> TransactionStateError:
        return TransactionStateError(f"{action}: the producer has no transactional_id")

    async def init_transactions(self) -> None:
        raise self._no_transactions("init_transactions")

    def begin_transaction(self) -> None:
        raise self._no_transactions("begin_transaction")

    async def send_offsets_to_transaction(
        self,
        offsets: Mapping[TopicPartition, int | OffsetAndMetadata],
        group: str | ConsumerGroupMetadata,
        *,
        generation_id: int = -1,
        member_id: str = "",
        group_instance_id: str | None = None,
    ) -> None:
        raise self._no_transactions("send_offsets_to_transaction")

    async def commit_transaction(self) -> None:
        raise self._no_transactions("commit_transaction")

    async def abort_transaction(self) -> None:
        raise self._no_transactions("abort_transaction")

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
        self._topics.clear()  # so that send reaches _topic, which refuses
        self._transport.forget(self)
