"""Choosing a partition for a record, as Kafka's producer does.

A keyed record goes to ``toPositive(murmur2(key)) % num_partitions``, bit for bit what the
Java client computes, so a key lands on the same partition whichever client (Java,
librdkafka with ``murmur2_random``, kafka-python, streamlog) produced it: co-partitioned
joins and tables rely on that. A record without a key has no natural home, so a
null-key strategy spreads such records instead: ``StickyPartitioner`` (Kafka >= 2.4, KIP-480)
fills one batch per partition before moving on, which gives fuller batches than
``RoundRobinPartitioner``.

The strategies keep per-topic state in the object, not in the module, and are not
thread-safe: a producer owns one and calls it from its own task.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from struct import Struct, unpack_from
from typing import Any, Protocol

from streamlog.log.errors import InvalidPartitionsError

__all__ = [
    "murmur2",
    "murmur2_py",
    "partition_for_key",
    "RandomSource",
    "NullKeyPartitioner",
    "StickyPartitioner",
    "RoundRobinPartitioner",
    "DefaultPartitioner",
]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
# Precompiled little-endian word unpackers for keys up to 256 bytes: building the format
# string and finding it in struct's cache cost about as much as two rounds of the hash.
_WORD_UNPACKERS: tuple[Callable[[bytes | bytearray | memoryview], tuple[Any, ...]], ...] = tuple(
    Struct(f"<{n}I").unpack_from for n in range(65)
)


def murmur2_py(data: bytes | bytearray | memoryview) -> int:
    """Kafka's ``Utils.murmur2``: MurmurHash2 with Kafka's seed, as a signed 32-bit int.

    The pure-Python version; ``murmur2`` is the C one from the record codec's extension
    when it is built (about 20x faster; the same values, checked by the tests), unless
    ``STREAMLOG_PURE_PYTHON`` is set.

    This runs once per keyed record, so the loop is kept tight: words are unpacked by
    one precompiled ``struct`` call and each round is two big-int multiplications. Only
    the low 32 bits of a product depend on the low 32 bits of its operands, so masking
    once per round is enough; ``k`` is masked before its shift because a right shift
    would pull high bits down.
    """
    length = len(data)
    h = _SEED ^ length
    words = length >> 2
    if words:
        unpacked = _WORD_UNPACKERS[words](data) if words < 65 else unpack_from(f"<{words}I", data)
        for k in unpacked:
            k = k * _M & _MASK
            h = (h * _M ^ (k ^ k >> 24) * _M) & _MASK
    tail = length & 3
    if tail:
        base = length - tail
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = (h ^ data[base]) * _M & _MASK
    h ^= h >> 13
    h = h * _M & _MASK
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


def _native_murmur2() -> Callable[[bytes | bytearray | memoryview], int] | None:
    if os.environ.get("STREAMLOG_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from streamlog.log._records_c import murmur2 as native
    except ImportError:
        return None
    return native  # type: ignore[no-any-return]


murmur2: Callable[[bytes | bytearray | memoryview], int] = _native_murmur2() or murmur2_py


def partition_for_key(key: bytes | bytearray | memoryview, num_partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a non-null key.

    ``& 0x7fffffff`` is Kafka's ``toPositive``, not ``abs``: the two differ for negative
    hashes, and only this one matches the Java client.
    """
    if num_partitions < 1:
        raise InvalidPartitionsError(f"num_partitions must be positive, got {num_partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


def _check_count(num_partitions: int) -> None:
    if num_partitions < 1:
        raise InvalidPartitionsError(f"num_partitions must be positive, got {num_partitions}")


class RandomSource(Protocol):
    """What the sticky partitioner needs from randomness; ``random.Random`` fits."""

    def randrange(self, stop: int, /) -> int:
        """A uniformly chosen int in ``[0, stop)``."""
        ...


class NullKeyPartitioner(Protocol):
    """A strategy for records without a key.

    ``available`` lists the partitions that currently have a leader; when it is ``None``
    or empty every partition in ``range(num_partitions)`` is a candidate, as in Kafka.
    """

    def partition(
        self, topic: str, num_partitions: int, available: Sequence[int] | None = None
    ) -> int:
        """The partition for the next null-key record of ``topic``."""
        ...

    def on_new_batch(self, topic: str, prev_partition: int | None = None) -> None:
        """Told that the batch for ``prev_partition`` of ``topic`` is complete."""
        ...


class StickyPartitioner:
    """Kafka's sticky partitioning for null keys (``StickyPartitionCache``, KIP-480).

    Invariant: each topic has at most one sticky partition; every null-key record of the
    topic goes there until ``on_new_batch`` releases it. The next choice is uniform over
    the candidates other than the one just released (when there is another), so batches
    rotate across partitions instead of filling the same one twice in a row.

    The choice is made lazily, on the first ``partition`` call after the release, because
    only that call knows the partition count and which partitions are available.
    """

    __slots__ = ("_rng", "_sticky", "_released")

    def __init__(self, rng: RandomSource | None = None) -> None:
        self._rng: RandomSource = rng if rng is not None else random.Random()
        self._sticky: dict[str, int] = {}
        self._released: dict[str, int] = {}

    def partition(
        self, topic: str, num_partitions: int, available: Sequence[int] | None = None
    ) -> int:
        """The topic's sticky partition, choosing one first if there is none."""
        current = self._sticky.get(topic)
        # A caller may pass a smaller count than before (stale metadata): never answer
        # with a partition that does not exist.
        if current is not None and current < num_partitions:
            return current
        _check_count(num_partitions)
        chosen = self._choose(num_partitions, available, self._released.pop(topic, None))
        self._sticky[topic] = chosen
        return chosen

    def on_new_batch(self, topic: str, prev_partition: int | None = None) -> None:
        """Release the sticky partition so that the next record picks another.

        With ``prev_partition`` given, nothing happens unless it is still the sticky one:
        as in Kafka, a late notice about an older batch must not move the topic twice.
        """
        current = self._sticky.get(topic)
        if current is None or (prev_partition is not None and prev_partition != current):
            return
        del self._sticky[topic]
        self._released[topic] = current

    def _choose(
        self, num_partitions: int, available: Sequence[int] | None, avoid: int | None
    ) -> int:
        pool: Sequence[int] = available if available else range(num_partitions)
        size = len(pool)
        if size == 1:
            return pool[0]
        if avoid is None or avoid not in pool:
            return pool[self._rng.randrange(size)]
        # Uniform over the other size - 1 candidates, with one draw (no retry loop, so a
        # scripted random source in tests gives a predictable answer).
        skip = pool.index(avoid)
        i = self._rng.randrange(size - 1)
        return pool[i + 1 if i >= skip else i]


class RoundRobinPartitioner:
    """Kafka's ``RoundRobinPartitioner`` for null keys: a per-topic counter.

    Record n of a topic goes to ``available[n % len(available)]`` (or ``n %
    num_partitions`` when nothing is marked available). ``on_new_batch`` does nothing:
    Kafka's version re-asked the partitioner after a new batch and so skipped a partition
    each time (KAFKA-9965); here the counter moves once per record, whatever the batching.
    """

    __slots__ = ("_counters",)

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}

    def partition(
        self, topic: str, num_partitions: int, available: Sequence[int] | None = None
    ) -> int:
        """The next partition in turn for ``topic``."""
        _check_count(num_partitions)
        n = self._counters.get(topic, 0)
        self._counters[topic] = n + 1
        if available:
            return available[n % len(available)]
        return n % num_partitions

    def on_new_batch(self, topic: str, prev_partition: int | None = None) -> None:
        """Ignored: round robin does not depend on batch boundaries."""


class DefaultPartitioner:
    """Kafka's default: murmur2 for keyed records, a null-key strategy for the rest.

    Keyed records ignore ``available`` on purpose: a key must map to the same partition
    whether or not that partition's leader is up, or co-partitioning breaks.
    """

    __slots__ = ("_null_key",)

    def __init__(self, null_key: NullKeyPartitioner | None = None) -> None:
        self._null_key: NullKeyPartitioner = (
            null_key if null_key is not None else StickyPartitioner()
        )

    def partition(
        self,
        topic: str,
        key: bytes | None,
        num_partitions: int,
        available: Sequence[int] | None = None,
    ) -> int:
        """The partition for a record of ``topic`` with serialized ``key``."""
        if key is not None:
            return partition_for_key(key, num_partitions)
        return self._null_key.partition(topic, num_partitions, available)

    def on_new_batch(self, topic: str, prev_partition: int | None = None) -> None:
        """Pass a completed-batch notice on to the null-key strategy."""
        self._null_key.on_new_batch(topic, prev_partition)
