"""``BatchBuilder``: a batch encoded record by record, as a producer fills it.

Its bytes must be exactly ``encode_batch``'s for the same entries, in both kernels; its
limit, handles, clock and errors must behave the same in both.
"""

from __future__ import annotations

import gc
import importlib
import time
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlog.log import _records_py, records
from streamlog.log.batch_header import HEADER_SIZE
from streamlog.log.compression import Compression
from streamlog.log.errors import InvalidRecordError
from streamlog.log.records import RecordCodec

CODECS = [
    pytest.param(records.PYTHON_CODEC, id="python"),
    pytest.param(
        records.C_CODEC,
        id="c",
        marks=pytest.mark.skipif(records.C_CODEC is None, reason="C extension not built"),
    ),
]
KERNELS = [_records_py] + (
    [importlib.import_module("streamlog.log._records_c")] if records.C_CODEC else []
)
needs_c = pytest.mark.skipif(records.C_CODEC is None, reason="C extension not built")

T0 = 1_700_000_000_000


class Handle(tuple):  # type: ignore[type-arg]
    """A producer's per-record handle: (owner, index, timestamp)."""

    __slots__ = ()


def build(codec: RecordCodec, entries: list, limit: int = 1 << 20, **kwargs: Any) -> Any:
    builder = codec.batch_builder(limit, **kwargs)
    for key, value, ts, headers in entries:
        assert builder.add(key, value, ts, headers) is not None
    return builder


# Timestamps within +-2**62 keep every delta inside a varlong.
ENTRY = st.tuples(
    st.none() | st.binary(max_size=300),
    st.none() | st.binary(max_size=300),
    st.integers(min_value=-(2**62) + 1, max_value=2**62 - 1),
    st.lists(st.tuples(st.text(max_size=12), st.none() | st.binary(max_size=30)), max_size=3)
    | st.just(()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=st.lists(ENTRY, min_size=1, max_size=20),
    compression=st.sampled_from([Compression.NONE, Compression.ZSTD]),
    producer=st.tuples(st.integers(-1, 2**40), st.integers(-1, 99), st.integers(-1, 2**31 - 1)),
    codec=st.sampled_from([c.values[0] for c in CODECS if c.values[0] is not None]),
)
def test_built_batches_are_byte_identical_to_encode_batch(
    entries: list, compression: Compression, producer: tuple[int, int, int], codec: RecordCodec
) -> None:
    pid, epoch, sequence = producer
    framing = dict(
        compression=compression, producer_id=pid, producer_epoch=epoch, base_sequence=sequence
    )
    built = codec.encode_built(build(codec, entries), **framing)  # type: ignore[arg-type]
    assert built == records.PYTHON_CODEC.encode_batch(entries, **framing)  # type: ignore[arg-type]


@pytest.mark.parametrize("codec", CODECS)
def test_limit_closes_the_batch_but_a_first_record_always_fits(codec: RecordCodec) -> None:
    one = len(codec.encode_batch([(None, bytes(100), T0, ())]))
    builder = codec.batch_builder(one + 2 * (one - HEADER_SIZE) + 5)
    results = [builder.add(None, bytes(100), T0, ()) for _ in range(4)]
    assert results == [0, 1, 2, None]  # indexes; the 4th would pass the limit
    assert builder.count == 3 and builder.size == one + 2 * (one - HEADER_SIZE)
    assert not builder.full
    big = codec.batch_builder(10)
    assert big.add(None, bytes(500), T0, ()) == 0  # alone, however large
    assert big.full and big.add(None, b"", T0, ()) is None
    header, decoded = codec.decode_batch(codec.encode_built(big))
    assert header.record_count == 1 and decoded[0].value == bytes(500)


@pytest.mark.parametrize("codec", CODECS)
def test_handles_carry_owner_index_and_timestamp(codec: RecordCodec) -> None:
    owner = object()
    builder = codec.batch_builder(1 << 20, owner, Handle)
    first = builder.add(b"k", b"v", T0 + 5, ())
    second = builder.add(None, b"w", T0, [("h", b"x")])
    assert type(first) is Handle and first == (owner, 0, T0 + 5)
    assert second == (owner, 1, T0)
    assert builder.owner is owner
    _, decoded = codec.decode_batch(codec.encode_built(builder))
    assert [(r.offset, r.timestamp) for r in decoded] == [(0, T0 + 5), (1, T0)]


@pytest.mark.parametrize("codec", CODECS)
def test_missing_timestamps_come_from_the_clock_or_the_wall_clock(codec: RecordCodec) -> None:
    ticks = iter([T0, T0 + 1])
    builder = codec.batch_builder(1 << 20, None, Handle, lambda: next(ticks))
    assert builder.add(None, b"a", None, ())[2] == T0
    assert builder.add(None, b"b", T0 - 9, ())[2] == T0 - 9  # a given timestamp wins
    assert builder.add(None, b"c", None, ())[2] == T0 + 1
    before = time.time_ns() // 1_000_000
    wall = codec.batch_builder(1 << 20, None, Handle).add(None, b"d", None, ())[2]
    assert before <= wall <= time.time_ns() // 1_000_000


@pytest.mark.parametrize("codec", CODECS)
def test_a_bad_record_raises_and_leaves_the_batch_as_it_was(codec: RecordCodec) -> None:
    good = [(b"k", b"v", T0, ()), (None, b"w", T0 + 1, [("h", None)])]
    builder = build(codec, good[:1])
    size = builder.size
    bad_records: list[tuple[Any, Any, Any, Any, type[Exception]]] = [
        ("text", b"v", T0, (), TypeError),
        (None, 5, T0, (), TypeError),
        (None, b"v", "now", (), TypeError),
        (None, b"v", 2**63, (), InvalidRecordError),
        (None, b"v", -(2**63), (), InvalidRecordError),  # its delta from T0 overflows
        (None, b"v", T0, [("h", 1)], TypeError),
        (None, b"v", T0, [(1, b"x")], TypeError),
        (None, b"v", T0, [("h",)], TypeError),
        (None, b"v", T0, "headers", TypeError),
    ]
    for key, value, ts, headers, error in bad_records:
        with pytest.raises(error):
            builder.add(key, value, ts, headers)
        assert (builder.count, builder.size) == (1, size)
    builder.add(*good[1])
    assert codec.encode_built(builder) == codec.encode_batch(good)


@pytest.mark.parametrize("codec", CODECS)
def test_a_builder_is_taken_once(codec: RecordCodec) -> None:
    builder = build(codec, [(None, b"v", T0, ())])
    codec.encode_built(builder)
    with pytest.raises(ValueError):
        codec.encode_built(builder)
    with pytest.raises(ValueError):
        builder.add(None, b"v", T0, ())
    with pytest.raises(ValueError):
        codec.encode_built(codec.batch_builder(100))  # nothing added
    empty = codec.batch_builder(100)
    assert empty.take() == (bytearray(HEADER_SIZE), 0, None, None, -1)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(st.none() | st.binary(max_size=200), min_size=1, max_size=40),
    keyed=st.booleans(),
    headers=st.sampled_from([(), [("h", b"x"), ("n", None)]]),
    limit=st.integers(min_value=1, max_value=3000),
    codec=st.sampled_from([c.values[0] for c in CODECS if c.values[0] is not None]),
)
def test_add_many_fills_batches_as_add_would(
    values: list, keyed: bool, headers: Any, limit: int, codec: RecordCodec
) -> None:
    keys = [b"k%d" % i if i % 3 else None for i in range(len(values))] if keyed else None
    done = 0
    batches = []
    while done < len(values):
        builder = codec.batch_builder(limit)
        added = builder.add_many(keys, values, done, T0, headers, done == 0)
        assert added >= 1  # a fresh batch takes at least one record
        # The same records one add at a time: the same stop, the same bytes.
        single = codec.batch_builder(limit)
        for i in range(done, len(values)):
            if single.add(keys[i] if keys else None, values[i], T0, headers) is None:
                break
        assert single.count == added
        batch = codec.encode_built(builder)
        assert batch == codec.encode_built(single)
        assert added == 1 or len(batch) <= limit
        batches.append(batch)
        done += added
    decoded = [r for b in batches for r in codec.decode_batch(b).records]
    assert [r.value for r in decoded] == values
    assert [r.key for r in decoded] == (keys or [None] * len(values))
    assert {r.timestamp for r in decoded} == {T0}


@pytest.mark.parametrize("codec", CODECS)
def test_add_many_checks_everything_first_when_asked(codec: RecordCodec) -> None:
    values: list[Any] = [b"a", bytearray(b"b"), memoryview(b"c"), None, b"e"]
    builder = codec.batch_builder(1 << 20)
    for bad_values, bad_keys in (
        ([*values, "text"], None),
        ([*values, 5], None),
        (values, [b"k", None, b"k", 7, b"k"]),
    ):
        with pytest.raises(TypeError):
            builder.add_many(bad_keys, bad_values, 0, T0, (), True)
        assert builder.count == 0
    # Unchecked, a bad value stops the run where it is: those before it stay.
    with pytest.raises(TypeError):
        builder.add_many(None, [b"a", b"b", 5, b"d"], 0, T0, (), False)
    assert builder.count == 2
    assert builder.add_many(None, values, 1, T0, (), True) == 4
    _, decoded = codec.decode_batch(codec.encode_built(builder))
    assert [r.value for r in decoded] == [b"a", b"b", b"b", b"c", None, b"e"]


@pytest.mark.parametrize("codec", CODECS)
def test_add_many_arguments_are_checked(codec: RecordCodec) -> None:
    builder = codec.batch_builder(1 << 20)
    with pytest.raises(ValueError):
        builder.add_many([b"k"], [b"a", b"b"], 0, T0, (), True)
    with pytest.raises(ValueError):
        builder.add_many(None, [b"a"], 2, T0, (), True)
    with pytest.raises(TypeError):
        builder.add_many(None, iter([b"a"]), 0, T0, (), True)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        builder.add_many(None, [b"a"], 0, None, (), True)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        builder.add_many(None, [b"a"], 0, T0, [("h", 1)], True)
    assert builder.count == 0
    assert builder.add_many(None, [], 0, T0, (), True) == 0


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__.rsplit("_", 1)[-1])
def test_constructor_arguments_are_checked(kernel: Any) -> None:
    with pytest.raises(ValueError):
        kernel.BatchBuilder(100, 5000)
    with pytest.raises(TypeError):
        kernel.BatchBuilder(100, 61, None, list)
    with pytest.raises(TypeError):
        kernel.BatchBuilder(100, 61, None, None, 5)
    with pytest.raises(TypeError):
        kernel.BatchBuilder("100", 61)


@needs_c
def test_c_builder_does_not_leak_and_is_collected_in_a_cycle() -> None:
    codec = records.C_CODEC
    assert codec is not None

    class Owner:
        builder: Any = None

    def churn() -> None:
        for _ in range(100):
            owner = Owner()
            owner.builder = codec.batch_builder(1 << 16, owner, Handle, lambda: T0)
            for _ in range(20):
                owner.builder.add(b"k", b"v" * 50, None, [("h", b"x")])
            with pytest.raises(TypeError):
                owner.builder.add(b"k", b"v", None, [("h", 1)])
            with pytest.raises(TypeError):
                owner.builder.add_many(None, [b"v"] * 5 + [5], 0, T0, (), True)
            with pytest.raises(TypeError):
                owner.builder.add_many([b"k"] * 6, [b"v"] * 5 + [5], 0, T0, (), False)
            owner.builder.add_many([b"k"] * 30, [b"v" * 50] * 30, 0, T0, [("h", b"x")], True)
            if _ % 2:
                codec.encode_built(owner.builder)

    churn()
    gc.collect()
    tracemalloc.start()
    try:
        churn()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            churn()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 32_000
