"""Records gathered into per-partition batches as they are sent: the part of a producer
both transports share, as Kafka's ``RecordAccumulator`` is shared by its producer.

Per topic, a producer keeps a ``TopicBatches``: the partition count, the builders of the
open batches by partition (what ``send`` encodes records into: the codec's
``BatchBuilder``, one per open batch, whose ``owner`` is the transport's batch) and the
sticky partition of null-key records. ``RecordAccumulator`` is the logic over them:

* the partition of a record: the one given, else murmur2 of the key (Kafka's default, so
  a key lands where the Java client and librdkafka put it), else the sticky partition
  (KIP-480: one partition until its batch closes, then the partitioner picks another);
* ``send``: the record encoded into its partition's open batch at once, a batch opened
  when there is none, a full batch closed, and a record that did not fit carried to a
  new batch (a null-key record to the next sticky partition: it does not open a batch of
  one where the full batch was);
* ``send_many``: every key and value checked, then runs of records for one partition
  added with one codec call per batch they fill (``BatchBuilder.add_many``);
* ``_batch_closed``: the bookkeeping when a batch stops taking records.

What a transport adds is what happens around that: how a batch is opened and what
becomes of a closed one (the embedded producer appends it to the log in-process at once;
the Kafka producer queues it for its sender, which stamps the idempotent producer id and
sequence numbers and sends it in a Produce request), how a topic's partition count is
learnt, whether a partition the topic does not have is looked up again, and whether
``send`` waits for buffer space (``_full``, set by the Kafka producer past
``buffer_memory``).

The accumulator is a base class of the two producers rather than an object they call:
``send`` is the per-record path (~0.27 us a record on the embedded transport, 2026-12)
and one more Python call with its arguments costs ~0.025 us, a tenth of it. For the same
reason ``send`` finds a topic with a subscript, not ``dict.get``. A producer is used from
one event loop and is not thread-safe.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from streamlog.log.partitioner import DefaultPartitioner, partition_for_key
from streamlog.log.records import BatchBuilder
from streamlog.transport.types import Header

__all__ = ["RecordAccumulator", "TopicBatches", "SentRuns"]

_BYTES_TYPES = (bytes, bytearray, memoryview)


class SentRuns(Protocol):
    """What ``send_many`` returns, as the accumulator fills it: runs of records
    ``(batch, first index in the batch, count, where in the result)``."""

    def add_run(self, batch: Any, first: int, count: int, where: int | list[int]) -> None: ...


HandleT = TypeVar("HandleT")
SentT = TypeVar("SentT", bound=SentRuns)


class TopicBatches:
    """What ``send`` needs per topic: the partition count, the batch size limit, the
    builders of the open batches by partition, and the null-key (sticky) partition.

    Invariant: ``builders[p]`` is the builder of partition ``p``'s open batch, or None
    when it has none; ``sticky`` is -1 (none chosen) or below ``count``. ``builders`` may
    be longer than ``count``: the slots of removed partitions stay until their open
    batches close.
    """

    __slots__ = ("name", "count", "limit", "builders", "sticky")

    def __init__(self, name: str, count: int, limit: int) -> None:
        self.name = name
        self.count = count
        self.limit = limit
        self.builders: list[BatchBuilder | None] = [None] * count
        self.sticky = -1

    def resize(self, count: int) -> None:
        """The topic has ``count`` partitions now."""
        self.count = count
        if count > len(self.builders):
            self.builders.extend([None] * (count - len(self.builders)))
        if self.sticky >= count:
            self.sticky = -1


class RecordAccumulator(ABC, Generic[HandleT, SentT]):
    """Per-partition batching, partition choice and sticky partitioning for a producer
    (see the module docstring). ``HandleT`` is what ``send`` returns for a record (made
    by the builder), ``SentT`` what ``send_many`` returns.

    A subclass calls ``__init__``, implements the hooks below, and calls
    ``_batch_closed`` whenever one of its batches stops taking records (full, lingered,
    flushed), before it hands the batch on.
    """

    def __init__(self) -> None:
        self._topics: dict[str, TopicBatches] = {}
        self._partitioner = DefaultPartitioner()
        # True while send must wait for buffer space first (``_wait_for_space``).
        self._full = False

    # -- hooks -----------------------------------------------------------------------------

    @abstractmethod
    async def _topic(self, topic: str) -> TopicBatches:
        """The state of a topic not in ``_topics`` yet, put there; raises the
        transport's error if the producer cannot send (closed, failed)."""

    @abstractmethod
    async def _unknown_partition(self, state: TopicBatches, partition: int) -> int:
        """``partition``, which ``state.count`` says the topic does not have, if it does
        after all (the transport may ask the cluster again); else raise
        ``UnknownTopicError``."""

    @abstractmethod
    def _open_batch(self, state: TopicBatches, partition: int) -> BatchBuilder:
        """A new open batch for ``partition`` of ``state``: its builder, made with the
        transport's batch as ``owner`` and ``state.limit`` as its limit."""

    @abstractmethod
    def _close_full(self, builder: BatchBuilder) -> None:
        """The batch of ``builder`` is full (or the next record does not fit): close it
        and hand it on (``_batch_closed`` first)."""

    @abstractmethod
    def _new_sent(self, count: int, timestamp_ms: int) -> SentT:
        """An empty result for a ``send_many`` of ``count`` records at ``timestamp_ms``."""

    @abstractmethod
    def _now_ms(self) -> int:
        """The producer's clock: the timestamp of a ``send_many`` that gives none."""

    async def _wait_for_space(self) -> None:
        """Wait until ``_full`` is False (a transport that sets ``_full`` overrides this)."""

    # -- sending ---------------------------------------------------------------------------

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[Header] = (),
        timestamp_ms: int | None = None,
    ) -> HandleT:
        """Encode a record into its partition's open batch; the handle returned is
        awaited for the record's metadata. A key, value or header of the wrong type
        raises ``TypeError`` and adds nothing.

        ``key`` and the rest are keyword-only in the ``Producer`` protocol, not here:
        CPython (3.11) looks up the default of each keyword-only argument a call leaves
        out in a dict, three lookups for ``send(topic, value, partition=0)``: 7% of a
        send.
        """
        # The per-record path: one dict lookup, the partition, a list index and the
        # builder's add (checks, clock, encoding and the handle, in C when built);
        # everything rare (a new topic, a new or full batch, a closed producer: its
        # topics are dropped, no buffer space) is a call away.
        try:
            state = self._topics[topic]
        except KeyError:
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
            chosen = await self._unknown_partition(state, partition)
        if self._full:
            await self._wait_for_space()
        builder = state.builders[chosen]
        if builder is None:
            builder = self._new_batch(state, chosen)
        handle: HandleT | None = builder.add(key, value, timestamp_ms, headers)
        if handle is None:
            sticky = partition is None and key is None
            return self._add_to_full(
                state, chosen, builder, sticky, key, value, timestamp_ms, headers
            )
        if builder.full:
            self._close_full(builder)
        return handle

    def _add_to_full(
        self,
        state: TopicBatches,
        partition: int,
        full: BatchBuilder,
        sticky: bool,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None,
        headers: Sequence[Header],
    ) -> HandleT:
        """The record did not fit in ``partition``'s batch: close that batch, start
        another."""
        self._close_full(full)
        if sticky:
            # KIP-480: a null-key record whose sticky batch is full moves on with the
            # partitioner rather than opening a batch of one there.
            partition = self._stick(state)
        builder = state.builders[partition] or self._new_batch(state, partition)
        handle: HandleT | None = builder.add(key, value, timestamp_ms, headers)
        if handle is None:  # the partitioner moved to another partition's full batch
            return self._add_to_full(
                state, partition, builder, sticky, key, value, timestamp_ms, headers
            )
        if builder.full:
            self._close_full(builder)
        return handle

    async def send_many(
        self,
        topic: str,
        values: Iterable[bytes | None],
        *,
        keys: Iterable[bytes | None] | None = None,
        partition: int | None = None,
        headers: Sequence[Header] = (),
        timestamp_ms: int | None = None,
    ) -> SentT:
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
        if partition is not None and not 0 <= partition < state.count:
            await self._unknown_partition(state, partition)
        if timestamp_ms is None:
            timestamp_ms = self._now_ms()
        headers = tuple(headers)
        sent = self._new_sent(len(values), timestamp_ms)
        if partition is not None or keys is None:
            # One run: the codec checks every key and value before it adds the first.
            await self._add_run(
                state, partition, keys, values, timestamp_ms, headers, sent, 0, True
            )
            return sent
        for target, where in self._by_partition(state, keys, values).items():
            await self._add_run(
                state,
                target,
                [keys[i] for i in where],
                [values[i] for i in where],
                timestamp_ms,
                headers,
                sent,
                where,
                False,
            )
        return sent

    def _by_partition(
        self,
        state: TopicBatches,
        keys: Sequence[bytes | None],
        values: Sequence[bytes | None],
    ) -> dict[int, list[int]]:
        """The indexes of ``keys`` grouped by partition, in order; null keys go to the
        sticky partition of the moment, in order with the keyed records there. Every
        key and value is type-checked on the way (``TypeError``), before any is added."""
        groups: dict[int, list[int]] = {}
        count = state.count
        sticky = -1
        for i, (key, value) in enumerate(zip(keys, values, strict=True)):
            if value is not None and value.__class__ is not bytes:
                _check_bytes_like(value, "value")
            if key is not None:
                if key.__class__ is not bytes:
                    _check_bytes_like(key, "key")
                target = partition_for_key(key, count)
            else:
                if sticky < 0:
                    sticky = state.sticky if state.sticky >= 0 else self._stick(state)
                target = sticky
            group = groups.get(target)
            if group is None:
                group = groups[target] = []
            group.append(i)
        return groups

    async def _add_run(
        self,
        state: TopicBatches,
        partition: int | None,
        keys: Sequence[bytes | None] | None,
        values: Sequence[bytes | None],
        timestamp_ms: int,
        headers: tuple[Header, ...],
        sent: SentT,
        where: int | list[int],
        check: bool,
    ) -> None:
        """Add ``values`` (and ``keys``) to ``partition``'s batches (the sticky
        partition's if None), closing each batch they fill; record the runs in ``sent``.
        With ``check``, the codec type-checks them all before it adds the first."""
        total = len(values)
        done = 0
        while done < total:
            if self._full:
                await self._wait_for_space()
            target = partition
            if target is None:
                target = state.sticky
                if target < 0:
                    target = self._stick(state)
            builder = state.builders[target] or self._new_batch(state, target)
            first = builder.count
            added = builder.add_many(keys, values, done, timestamp_ms, headers, check)
            check = False
            if added:
                at = where + done if isinstance(where, int) else where[done : done + added]
                sent.add_run(builder.owner, first, added, at)
                done += added
            if done < total or builder.full:
                # Full (the next record did not fit): out it goes; a null-key run moves on
                # with the partitioner (KIP-480), as send would.
                self._close_full(builder)

    # -- batches ---------------------------------------------------------------------------

    def _stick(self, state: TopicBatches) -> int:
        state.sticky = self._partitioner.partition(state.name, None, state.count)
        return state.sticky

    def _new_batch(self, state: TopicBatches, partition: int) -> BatchBuilder:
        builder = self._open_batch(state, partition)
        state.builders[partition] = builder
        return builder

    def _batch_closed(self, topic: str, partition: int, builder: BatchBuilder | None) -> None:
        """The open batch of ``builder`` for ``topic``/``partition`` takes no more records:
        ``send`` opens a new one, and a null-key record picks its partition afresh."""
        state = self._topics.get(topic)
        if state is not None:
            builders = state.builders
            if partition < len(builders) and builders[partition] is builder:
                builders[partition] = None
            if state.sticky == partition:
                state.sticky = -1
        self._partitioner.on_new_batch(topic, partition)


def _check_bytes_like(obj: object, what: str) -> None:
    """Raise ``TypeError`` unless ``obj`` is a buffer (what the codec accepts)."""
    try:
        memoryview(obj)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} must be bytes-like or None, not {type(obj).__name__}") from None
