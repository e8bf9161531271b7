"""Kafka's default partitioner: golden murmur2 values, kafka-python as an oracle, and the
null-key strategies driven by a scripted random source."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import DefaultPartitioner as KafkaPythonPartitioner
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from streamlog.log.errors import InvalidPartitionsError
from streamlog.log.partitioner import (
    DefaultPartitioner,
    RoundRobinPartitioner,
    StickyPartitioner,
    murmur2,
    partition_for_key,
)

# Kafka's own test vectors: clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java,
# testMurmur2.
KAFKA_UTILS_TEST_CASES = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]

# Values computed with Kafka's Utils.murmur2, as quoted by Akka's Murmur2Spec; they cover
# the 1-, 2-, 3-byte tails and the 4- and 5-byte cases the Kafka vectors skip.
KAFKA_DERIVED_CASES = [
    (b"1", -1993445489),
    (b"12", 126087238),
    (b"123", -267702483),
    (b"1234", -1614185708),
    (b"12345", -1188365604),
]


@pytest.mark.parametrize(("data", "expected"), KAFKA_UTILS_TEST_CASES + KAFKA_DERIVED_CASES)
def test_murmur2_matches_kafka_test_vectors(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_murmur2_of_empty_input_is_the_finalised_seed() -> None:
    assert murmur2(b"") == kafka_python_murmur2(b"") == 275646681


def test_murmur2_accepts_any_bytes_like() -> None:
    data = b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"
    assert murmur2(bytearray(data)) == murmur2(memoryview(data)) == -58897971


@given(st.binary(max_size=300))
def test_murmur2_agrees_with_kafka_python(data: bytes) -> None:
    ours = murmur2(data)
    # kafka-python returns the same 32 bits unsigned; Kafka's (and ours) are signed.
    assert -(1 << 31) <= ours < 1 << 31
    assert ours & 0xFFFFFFFF == kafka_python_murmur2(data)


@pytest.mark.parametrize("size", [255, 256, 257, 259, 260, 261, 4099])
def test_murmur2_long_keys_agree_with_kafka_python(size: int) -> None:
    # Around 256 bytes murmur2 switches from precompiled unpackers to a formatted one.
    data = random.Random(size).randbytes(size)
    assert murmur2(data) & 0xFFFFFFFF == kafka_python_murmur2(data)


class _Cluster:
    """The three ClusterMetadata methods kafka-python's DefaultPartitioner calls."""

    def __init__(self, topic: str, num_partitions: int) -> None:
        self._topic = topic
        self._partitions = set(range(num_partitions))

    def topics(self) -> set[str]:
        return {self._topic}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions


@given(key=st.binary(max_size=200), num_partitions=st.integers(1, 10_000))
def test_partition_for_key_agrees_with_kafka_python(key: bytes, num_partitions: int) -> None:
    expected = KafkaPythonPartitioner().partition(
        "t", None, key, None, None, _Cluster("t", num_partitions)
    )
    assert partition_for_key(key, num_partitions) == expected


def test_partition_for_key_uses_to_positive_not_abs() -> None:
    # murmur2(b"21") is negative: toPositive masks the sign bit, abs() would negate.
    assert partition_for_key(b"21", 1000) == (-973932308 & 0x7FFFFFFF) % 1000 == 340
    assert abs(-973932308) % 1000 != 340


@pytest.mark.parametrize("count", [0, -1])
def test_partition_for_key_refuses_non_positive_counts(count: int) -> None:
    with pytest.raises(InvalidPartitionsError, match="positive"):
        partition_for_key(b"k", count)


class ScriptedRandom:
    """Answers ``randrange`` from a script and records each ``stop`` it was asked for."""

    def __init__(self, *answers: int) -> None:
        self._answers = list(answers)
        self.asked: list[int] = []

    def randrange(self, stop: int, /) -> int:
        self.asked.append(stop)
        answer = self._answers.pop(0)
        assert 0 <= answer < stop
        return answer


def test_sticky_stays_on_one_partition_until_the_batch_is_complete() -> None:
    rng = ScriptedRandom(2)
    sticky = StickyPartitioner(rng)
    assert [sticky.partition("t", 4) for _ in range(5)] == [2, 2, 2, 2, 2]
    assert rng.asked == [4]


def test_sticky_moves_to_a_different_partition_after_a_new_batch() -> None:
    # Second draw is over the 3 others [0, 1, 3]: index 2 is partition 3, index 1 is 1.
    rng = ScriptedRandom(2, 2, 1)
    sticky = StickyPartitioner(rng)
    assert sticky.partition("t", 4) == 2
    sticky.on_new_batch("t")
    assert sticky.partition("t", 4) == 3
    assert sticky.partition("t", 4) == 3
    sticky.on_new_batch("t", prev_partition=3)
    assert sticky.partition("t", 4) == 1
    assert rng.asked == [4, 3, 3]


def test_sticky_ignores_a_late_notice_about_an_older_partition() -> None:
    rng = ScriptedRandom(1)
    sticky = StickyPartitioner(rng)
    assert sticky.partition("t", 3) == 1
    sticky.on_new_batch("t", prev_partition=0)
    assert sticky.partition("t", 3) == 1
    assert rng.asked == [3]


def test_sticky_keeps_topics_apart() -> None:
    sticky = StickyPartitioner(ScriptedRandom(0, 5))
    assert sticky.partition("a", 6) == 0
    assert sticky.partition("b", 6) == 5
    sticky.on_new_batch("unknown-topic")
    assert (sticky.partition("a", 6), sticky.partition("b", 6)) == (0, 5)


def test_sticky_picks_among_available_partitions() -> None:
    rng = ScriptedRandom(1, 0)
    sticky = StickyPartitioner(rng)
    assert sticky.partition("t", 8, available=[2, 5, 7]) == 5
    sticky.on_new_batch("t")
    # The others are [2, 7]; draw 0 of 2.
    assert sticky.partition("t", 8, available=[2, 5, 7]) == 2
    assert rng.asked == [3, 2]


def test_sticky_falls_back_to_all_partitions_when_none_is_available() -> None:
    sticky = StickyPartitioner(ScriptedRandom(3))
    assert sticky.partition("t", 4, available=[]) == 3


def test_sticky_with_a_single_candidate_needs_no_randomness() -> None:
    rng = ScriptedRandom()
    sticky = StickyPartitioner(rng)
    assert sticky.partition("t", 1) == 0
    sticky.on_new_batch("t")
    assert sticky.partition("t", 1) == 0
    sticky.on_new_batch("t")
    assert sticky.partition("t", 5, available=[4]) == 4
    assert rng.asked == []


def test_sticky_never_answers_a_partition_past_the_count() -> None:
    sticky = StickyPartitioner(ScriptedRandom(3, 1))
    assert sticky.partition("t", 4) == 3
    assert sticky.partition("t", 2) == 1


def test_sticky_refuses_non_positive_counts() -> None:
    with pytest.raises(InvalidPartitionsError):
        StickyPartitioner().partition("t", 0)


@given(seed=st.integers(0, 2**32), num_partitions=st.integers(2, 12))
def test_sticky_consecutive_batches_differ_and_stay_in_range(
    seed: int, num_partitions: int
) -> None:
    sticky = StickyPartitioner(random.Random(seed))
    chosen = []
    for _ in range(30):
        chosen.append(sticky.partition("t", num_partitions))
        sticky.on_new_batch("t")
    assert all(0 <= p < num_partitions for p in chosen)
    assert all(a != b for a, b in zip(chosen, chosen[1:], strict=False))


def test_sticky_spreads_batches_over_all_partitions() -> None:
    sticky = StickyPartitioner(random.Random(7))
    counts = [0] * 4
    for _ in range(4000):
        counts[sticky.partition("t", 4)] += 1
        sticky.on_new_batch("t")
    assert all(850 < c < 1150 for c in counts), counts


def test_round_robin_cycles_per_topic() -> None:
    rr = RoundRobinPartitioner()
    assert [rr.partition("a", 3) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert [rr.partition("b", 2) for _ in range(3)] == [0, 1, 0]


def test_round_robin_cycles_over_available_partitions() -> None:
    rr = RoundRobinPartitioner()
    assert [rr.partition("t", 6, available=[1, 4]) for _ in range(5)] == [1, 4, 1, 4, 1]


def test_round_robin_does_not_skip_on_new_batch() -> None:
    # KAFKA-9965: Kafka's version skipped a partition at every new batch.
    rr = RoundRobinPartitioner()
    seen = []
    for _ in range(6):
        p = rr.partition("t", 3)
        rr.on_new_batch("t", prev_partition=p)
        seen.append(p)
    assert seen == [0, 1, 2, 0, 1, 2]


def test_round_robin_refuses_non_positive_counts() -> None:
    with pytest.raises(InvalidPartitionsError):
        RoundRobinPartitioner().partition("t", 0)


def test_default_partitioner_hashes_keys_and_delegates_null_keys() -> None:
    partitioner = DefaultPartitioner(RoundRobinPartitioner())
    assert partitioner.partition("t", b"21", 1000) == 340
    # Keyed records ignore availability: the key's home does not move.
    assert partitioner.partition("t", b"21", 1000, available=[1]) == 340
    assert [partitioner.partition("t", None, 3) for _ in range(4)] == [0, 1, 2, 0]


def test_default_partitioner_passes_batch_notices_to_the_null_key_strategy() -> None:
    partitioner = DefaultPartitioner(StickyPartitioner(ScriptedRandom(0, 0)))
    assert partitioner.partition("t", None, 3) == 0
    partitioner.on_new_batch("t", prev_partition=0)
    assert partitioner.partition("t", None, 3) == 1


def test_default_partitioner_is_sticky_by_default() -> None:
    partitioner = DefaultPartitioner()
    first = partitioner.partition("t", None, 50)
    assert all(partitioner.partition("t", None, 50) == first for _ in range(20))


@given(st.binary(max_size=600))
def test_c_and_python_murmur2_agree(data):
    from streamlog.log import partitioner

    native = partitioner._native_murmur2()
    if native is None:
        # CI builds it (STREAMLOG_REQUIRE_C=1): there, a missing extension is a failure
        assert not os.environ.get("STREAMLOG_REQUIRE_C"), "the C extension was not built"
        pytest.skip("the C codec is not built")
    assert native(data) == partitioner.murmur2_py(data)
    assert native(data) & 0xFFFFFFFF == kafka_python_murmur2(data)  # unsigned there
    assert native(bytearray(data)) == native(memoryview(data)) == native(data)


def test_c_murmur2_refuses_what_is_not_bytes():
    from streamlog.log import partitioner

    native = partitioner._native_murmur2()
    if native is None:
        # CI builds it (STREAMLOG_REQUIRE_C=1): there, a missing extension is a failure
        assert not os.environ.get("STREAMLOG_REQUIRE_C"), "the C extension was not built"
        pytest.skip("the C codec is not built")
    with pytest.raises(TypeError):
        native("text")
