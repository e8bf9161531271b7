"""``decode_batch_as``: records decoded straight into a consumer's own tuple type.

Both kernels must give equal results and raise the same exception classes, as for
``decode_batch``; the C kernel also leaves such records untracked by the cycle collector
when nothing in them can form a cycle, and that rule is checked here too.
"""

from __future__ import annotations

import gc
import importlib
import random
import tracemalloc
from typing import Any, NamedTuple

import pytest

from streamlog.log import _records_py, records
from streamlog.log.compression import Compression
from streamlog.log.errors import CorruptRecordError
from streamlog.log.records import Record, RecordCodec

CODECS = [
    pytest.param(records.PYTHON_CODEC, id="python"),
    pytest.param(
        records.C_CODEC,
        id="c",
        marks=pytest.mark.skipif(records.C_CODEC is None, reason="C extension not built"),
    ),
]
needs_c = pytest.mark.skipif(records.C_CODEC is None, reason="C extension not built")

T0 = 1_700_000_000_000
ENTRIES = [
    (b"k0", b"v0", T0, ()),
    (None, b"v1", T0, [("h", b"x"), ("ü", None)]),
    (b"k2", None, T0 + 7, ()),
    (b"", b"", T0 - 3, ()),
]


class Consumed(NamedTuple):
    """A consumer's record: where it came from, then Record's fields."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


def expected(base_offset: int, min_offset: int = 0) -> list[Consumed]:
    return [
        Consumed("t", 3, base_offset + i, ts, key, value, tuple(headers))
        for i, (key, value, ts, headers) in enumerate(ENTRIES)
        if base_offset + i >= min_offset
    ]


@pytest.mark.parametrize("compression", [Compression.NONE, Compression.LZ4, Compression.GZIP])
@pytest.mark.parametrize("codec", CODECS)
def test_records_come_as_the_given_type_with_the_prefix(
    codec: RecordCodec, compression: Compression
) -> None:
    batch = codec.encode_batch(ENTRIES, base_offset=100, compression=compression)
    buf = b"\xff" * 9 + batch
    header, got = codec.decode_batch_as(buf, 9, Consumed, ("t", 3))
    assert header.base_offset == 100 and header.record_count == 4
    assert got == expected(100)
    assert all(type(r) is Consumed for r in got)
    assert got[1].headers == (("h", b"x"), ("ü", None))


@pytest.mark.parametrize("codec", CODECS)
def test_min_offset_leaves_out_the_records_before_it(codec: RecordCodec) -> None:
    batch = codec.encode_batch(ENTRIES, base_offset=100)
    for min_offset in (-5, 100, 101, 102, 103, 104, 10**6):
        _, got = codec.decode_batch_as(batch, 0, Consumed, ("t", 3), min_offset)
        assert got == expected(100, min_offset), min_offset


@pytest.mark.parametrize("codec", CODECS)
def test_plain_tuples_and_record_itself_work_too(codec: RecordCodec) -> None:
    batch = codec.encode_batch(ENTRIES, base_offset=5)
    _, as_tuples = codec.decode_batch_as(batch, 0, tuple, ("t",))
    assert as_tuples[0] == ("t", 5, T0, b"k0", b"v0", ())
    assert type(as_tuples[0]) is tuple
    _, as_records = codec.decode_batch_as(batch, 0, Record)
    assert as_records == codec.decode_batch(batch).records


@pytest.mark.parametrize("codec", CODECS)
def test_bad_arguments_are_caller_errors(codec: RecordCodec) -> None:
    batch = codec.encode_batch(ENTRIES)
    with pytest.raises(TypeError, match="7 fields"):
        codec.decode_batch_as(batch, 0, Consumed, ("t",))  # a prefix one short
    with pytest.raises(TypeError):
        codec.decode_batch_as(batch, 0, list, ())  # type: ignore[type-var]
    with pytest.raises(TypeError):
        codec.decode_batch_as(batch, 0, tuple, ["t", 0])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        codec.decode_batch_as(batch, 0, tuple, (), 2**63)


@needs_c
def test_both_kernels_check_arguments_alike() -> None:
    c_kernel = importlib.import_module("streamlog.log._records_c")
    section = records.PYTHON_CODEC.encode_batch(ENTRIES)[61:]
    base = (section, 0, len(section), 4, 0, T0, None)
    bad = [
        ((), list, 0),
        ([], Record, 0),
        ((), Record, "0"),
        ((), Record, 2**63),
        ((), Record, -(2**63) - 1),
        ((), 5, 0),
    ]
    for extra in bad:
        kinds = []
        for kernel in (c_kernel, _records_py):
            with pytest.raises((TypeError, ValueError)) as info:
                kernel.decode_records(*base, *extra)
            kinds.append(info.type)
        assert kinds[0] is kinds[1], extra


@needs_c
def test_fuzzed_sections_decode_alike_with_prefix_type_and_min_offset() -> None:
    c_kernel = importlib.import_module("streamlog.log._records_c")
    rng = random.Random(4242)
    shapes: list[list[Any]] = [
        ENTRIES,
        [(b"k" * i, b"v" * (i * 5), T0 + i, [("h" * i, b"x")] * (i % 3)) for i in range(9)],
    ]
    sections = [(records.PYTHON_CODEC.encode_batch(s)[61:], len(s)) for s in shapes]
    decoded_some = 0
    for _ in range(20000):
        section, count = rng.choice(sections)
        data = bytearray(section)
        for _ in range(rng.randrange(3)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        base_offset = rng.choice([0, 10, 2**63 - 5])
        args = (
            bytes(data),
            0,
            len(data),
            count,
            base_offset,
            rng.choice([T0, -(2**63)]),
            rng.choice([None, T0]),
            ("topic", rng.randrange(4)),
            Consumed,
            min(base_offset + rng.randrange(-2, count + 2), 2**63 - 1),
        )
        results = []
        for kernel in (c_kernel, _records_py):
            try:
                results.append(kernel.decode_records(*args))
            except CorruptRecordError:
                results.append(CorruptRecordError)
        assert results[0] == results[1], args
        decoded_some += results[0] is not CorruptRecordError
    assert decoded_some > 1000


@needs_c
def test_c_records_are_left_out_of_the_cycle_collector_when_they_cannot_form_cycles() -> None:
    codec = records.C_CODEC
    assert codec is not None
    batch = codec.encode_batch(ENTRIES)
    plain = codec.decode_batch(batch).records
    _, consumed = codec.decode_batch_as(batch, 0, Consumed, ("t", 3))
    every: list[Any] = [*plain, *consumed]
    for r in every:
        assert not gc.is_tracked(r)
        assert not gc.is_tracked(r.headers)
        assert all(not gc.is_tracked(h) for h in r.headers)
    # A prefix item the collector tracks could lead back to the record: keep tracking.
    box: list[object] = []
    _, boxed = codec.decode_batch_as(batch, 0, Consumed, (box, 3))
    assert all(gc.is_tracked(r) for r in boxed)
    box.extend(boxed)  # the cycle this allows is then collectable
    # A tuple subclass whose instances have a __dict__ could hold anything: tracked.

    class Loose(tuple):  # type: ignore[type-arg]
        pass

    _, loose = codec.decode_batch_as(batch, 0, Loose, ())
    assert all(gc.is_tracked(r) for r in loose)


@needs_c
def test_c_decode_as_does_not_leak() -> None:
    codec = records.C_CODEC
    assert codec is not None
    good = codec.encode_batch(ENTRIES * 20)
    bad = bytearray(good)
    bad[-1] ^= 0xFF  # CRC failure
    section = good[61:]

    def churn() -> None:
        for _ in range(200):
            codec.decode_batch_as(good, 0, Consumed, ("t", 1), 20)
            with pytest.raises(CorruptRecordError):
                codec.decode_batch_as(bytes(bad), 0, Consumed, ("t", 1))
            with pytest.raises(CorruptRecordError):  # truncated section, records made first
                importlib.import_module("streamlog.log._records_c").decode_records(
                    section[:-3], 0, len(section) - 3, 80, 0, T0, None, ("t", 1), Consumed, 0
                )

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
