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

Acknowledgement: the append is synchronous, so the awaitable ``send`` returns resolves
as soon as its batch is in the log, whatever ``acks`` says. ``idempotent`` is accepted and
ignored: there is no network, hence no retry that could duplicate a batch, and so no need
for producer ids and sequence numbers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from streamlog.log import errors as log_errors
from streamlog.log.clock import SystemClock
from streamlog.log.partitioner import DefaultPartitioner, partition_for_key
from streamlog.log.records import BatchBuilder, encode_built
from streamlog.log.records import Compression as CompressionId
from streamlog.transport.base import Compression
from streamlog.transport.embedded.batch import Batch, RecordFuture, SentMany
from streamlog.transport.embedded.errors import translate
from streamlog.transport.errors import (
    InvalidConfigError,
    ProduceError,
    TransportClosedError,
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
_BYTES_TYPES = (bytes, bytearray, memoryview)


class _Topic:
    """What the producer caches per topic: partition count, batch limit, the builders of
    the open batches (what ``send`` adds to), the sticky partition."""

    __slots__ = ("name", "count", "limit", "builders", "sticky")

    def __init__(self, name: str, count: int, limit: int) -> None:
        self.name = name
        self.count = count
        self.limit = limit
        self.builders: list[BatchBuilder | None] = [None] * count
        self.sticky = -1  # the null-key partition until its batch is sent; -1: none


class EmbeddedProducer:
    """See the module docstring. Made by ``EmbeddedTransport.producer``.

    Invariant: every open batch is both in ``_open`` (what flush and the linger timer
    drain) and, by its builder, in its topic's ``_Topic.builders`` slot (what ``send``
    looks up).
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
        # None for the system clock: the builder reads the wall clock itself, which
        # saves a call per record. Any other clock (tests) is called by the builder.
        self._clock_ms: Callable[[], int] | None = (
            None if type(clock) is SystemClock else clock.time_ms
        )
        self._linger_s = max(0, linger_ms) / 1000
        self._batch_size = batch_size
        self._partitioner = DefaultPartitioner()
        self._topics: dict[str, _Topic] = {}
        self._open: dict[tuple[str, int], Batch] = {}
        self._timer: asyncio.Handle | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"EmbeddedProducer({self._transport.url!r}, client_id={self.client_id!r})"

    # -- sending -------------------------------------------------------------------------

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[Header] = (),
        timestamp_ms: int | None = None,
    ) -> RecordFuture:
        """Encode a record into its partition's batch; await the result for its metadata.

        ``key`` and the rest are keyword-only in the ``Producer`` protocol; they are not
        here because CPython (3.11) looks up the default of every keyword-only argument
        a call leaves out in a dict, three lookups for a call such as
        ``send(topic, value, partition=0)``: 7% of a send.
        """
        # The per-record path: one dict lookup, one list index and the builder's add
        # (checks, clock, encoding and the handle, in C when built); everything rare (a
        # new topic, a new or full batch, a closed producer: its topics are dropped) is a
        # call away.
        try:
            state = self._topics[topic]
        except KeyError:
            state = self._topic(topic)
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
            raise UnknownTopicError(
                f"topic {topic!r} has no partition {partition} (it has {state.count})"
            )
        builder = state.builders[chosen]
        if builder is None:
            builder = self._new_batch(state, chosen)
        future = builder.add(key, value, timestamp_ms, headers)
        if future is None:
            sticky = partition is None and key is None
            return self._add_to_full(state, builder, sticky, key, value, timestamp_ms, headers)
        if builder.full:
            self._append(builder.owner)
        return future  # type: ignore[no-any-return]

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
        """The record did not fit in its partition's batch: send that batch, start another."""
        batch: Batch = full.owner
        partition = batch.partition
        self._append(batch)
        if sticky:
            # KIP-480: a null-key record whose sticky batch is full moves on with the
            # partitioner rather than opening a batch of one there.
            partition = self._stick(state)
        builder = state.builders[partition] or self._new_batch(state, partition)
        future = builder.add(key, value, timestamp_ms, headers)
        if future is None:  # the partitioner moved to another partition's full batch
            return self._add_to_full(state, builder, sticky, key, value, timestamp_ms, headers)
        if builder.full:
            self._append(builder.owner)
        return future  # type: ignore[no-any-return]

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
        """Encode many records into their partitions' batches (see ``Producer``).

        A run of records for one partition is one call into the codec
        (``BatchBuilder.add_many``): no Python work per record unless they are keyed
        and ``partition`` is None (each key is hashed to its partition first).
        """
        try:
            state = self._topics[topic]
        except KeyError:
            state = self._topic(topic)
        if partition is not None and not 0 <= partition < state.count:
            raise UnknownTopicError(
                f"topic {topic!r} has no partition {partition} (it has {state.count})"
            )
        values = values if isinstance(values, list | tuple) else list(values)
        if keys is not None:
            keys = keys if isinstance(keys, list | tuple) else list(keys)
            if len(keys) != len(values):
                raise ValueError(f"{len(keys)} keys for {len(values)} values")
        if timestamp_ms is None:
            clock = self._clock_ms
            timestamp_ms = time.time_ns() // 1_000_000 if clock is None else clock()
        sent = SentMany(len(values), timestamp_ms)
        if partition is not None or keys is None:
            self._add_run(state, partition, keys, values, timestamp_ms, headers, sent, 0)
            return sent
        # Keyed records: grouped by partition (in order), each group one run; every key
        # and value is checked before the first run is added. Null keys go to the
        # sticky partition of the moment, in order with the keyed records there.
        groups: dict[int, list[int]] = {}
        count = state.count
        sticky = -1
        for i, (key, value) in enumerate(zip(keys, values, strict=True)):
            if value is not None and value.__class__ is not bytes:
                _check_bytes_like(value, "value")
            if key is None:
                if sticky < 0:
                    sticky = state.sticky if state.sticky >= 0 else self._stick(state)
                target = sticky
            elif key.__class__ is bytes or isinstance(key, _BYTES_TYPES):
                target = partition_for_key(key, count)
            else:
                raise TypeError(f"key must be bytes or None, not {type(key).__name__}")
            group = groups.get(target)
            if group is None:
                group = groups[target] = []
            group.append(i)
        for target, where in groups.items():
            group_keys = [keys[i] for i in where]
            group_values = [values[i] for i in where]
            self._add_run(
                state, target, group_keys, group_values, timestamp_ms, headers, sent, where
            )
        return sent

    def _add_run(
        self,
        state: _Topic,
        partition: int | None,
        keys: Sequence[bytes | None] | None,
        values: Sequence[bytes | None],
        timestamp_ms: int,
        headers: Sequence[Header],
        sent: SentMany,
        where: int | list[int],
    ) -> None:
        """Add ``values`` (and ``keys``) to ``partition``'s batches, the sticky one's if
        None, appending each batch they fill; record the runs in ``sent``."""
        done = 0
        total = len(values)
        while done < total:
            target = partition
            if target is None:
                target = state.sticky
                if target < 0:
                    target = self._stick(state)
            builder = state.builders[target] or self._new_batch(state, target)
            first = builder.count
            added = builder.add_many(keys, values, done, timestamp_ms, headers, done == 0)
            if added:
                at = where + done if isinstance(where, int) else where[done : done + added]
                sent.add_run(builder.owner, first, added, at)
                done += added
            if done < total or builder.full:
                # Full (the next record did not fit): out it goes; a null-key run moves on
                # with the partitioner (KIP-480), as send would.
                self._append(builder.owner)

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
        if self._closed:
            raise TransportClosedError("the producer is closed")
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

    def _new_batch(self, state: _Topic, partition: int) -> BatchBuilder:
        batch = Batch(state.name, partition, state.limit, self._clock_ms)
        builder = batch.builder
        assert builder is not None
        state.builders[partition] = builder
        self._open[(state.name, partition)] = batch
        if self._timer is None:
            loop = asyncio.get_running_loop()
            if self._linger_s:
                self._timer = loop.call_later(self._linger_s, self._linger_expired)
            else:
                self._timer = loop.call_soon(self._linger_expired)
        return builder

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
        builder = batch.builder
        assert builder is not None
        state = self._topics.get(topic)
        if state is not None and partition < state.count and state.builders[partition] is builder:
            state.builders[partition] = None
        count = builder.count
        if not count:  # every add to it failed (a bad value): nothing to append
            batch.finish()
            return
        try:
            data = encode_built(builder, compression=self._compression)
            result = self._manager.append(topic, partition, data)
        except log_errors.LogError as exc:
            batch.error = translate(exc)
            batch.error.__cause__ = exc
        except (TypeError, ValueError) as exc:  # e.g. a compression library missing
            batch.error = ProduceError(f"cannot encode a batch for {topic}-{partition}: {exc}")
            batch.error.__cause__ = exc
        else:
            batch.base_offset = result.base_offset
            batch.append_time = result.log_append_time
            self._transport.notifier.notify((topic, partition))
        if batch.error is not None:
            log.warning("%d records for %s-%d failed: %s", count, topic, partition, batch.error)
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
        self._topics.clear()  # so that send reaches _topic, which refuses
        self._transport.forget(self)


def _check_bytes_like(obj: object, what: str) -> None:
    """Raise ``TypeError`` unless ``obj`` is a buffer (what the codec accepts)."""
    try:
        memoryview(obj)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} must be bytes-like or None, not {type(obj).__name__}") from None
