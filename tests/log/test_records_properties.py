"""Hypothesis round-trips of the record codec, across kernels and against kafka-python."""

from __future__ import annotations

import importlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record import MemoryRecords

from streamlog.log import _records_py, records
from streamlog.log.compression import Compression
from streamlog.log.errors import CorruptRecordError
from streamlog.log.records import Record, RecordCodec

IMPLEMENTATIONS = [records.PYTHON_CODEC] + ([records.C_CODEC] if records.C_CODEC else [])
needs_c = pytest.mark.skipif(records.C_CODEC is None, reason="C extension not built")

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

nullable_bytes = st.none() | st.binary(max_size=300)
headers = st.lists(st.tuples(st.text(max_size=12), st.none() | st.binary(max_size=30)), max_size=4)
# Timestamps within +-2**62 keep every delta inside a varlong; see test_records for the edges.
timestamps = st.integers(min_value=-(2**62) + 1, max_value=2**62 - 1)
entries = st.lists(
    st.tuples(nullable_bytes, nullable_bytes, timestamps, headers), min_size=1, max_size=25
)
codecs = st.sampled_from(IMPLEMENTATIONS)


def expected(batch_entries: list, base_offset: int) -> list[Record]:
    return [
        Record(base_offset + i, ts, key, value, tuple(headers))
        for i, (key, value, ts, headers) in enumerate(batch_entries)
    ]


@SETTINGS
@given(
    batch_entries=entries,
    base_offset=st.integers(min_value=0, max_value=2**62),
    compression=st.sampled_from(Compression),
    producer=st.tuples(
        st.integers(-1, 2**63 - 1), st.integers(-1, 2**15 - 1), st.integers(-1, 2**31 - 1)
    ),
    transactional=st.booleans(),
    encoder=codecs,
    decoder=codecs,
)
def test_encode_decode_round_trip(
    batch_entries: list,
    base_offset: int,
    compression: Compression,
    producer: tuple[int, int, int],
    transactional: bool,
    encoder: RecordCodec,
    decoder: RecordCodec,
) -> None:
    producer_id, producer_epoch, base_sequence = producer
    buf = encoder.encode_batch(
        batch_entries,
        base_offset=base_offset,
        compression=compression,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        transactional=transactional,
    )
    decoded = decoder.decode_batch(buf)
    assert decoded.records == expected(batch_entries, base_offset)
    h = decoded.header
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == producer
    assert h.is_transactional == transactional and h.compression == compression
    assert h.base_timestamp == batch_entries[0][2]
    assert h.max_timestamp == max(e[2] for e in batch_entries)
    assert h.size == len(buf) and h.record_count == len(batch_entries)


@needs_c
@SETTINGS
@given(batch_entries=entries, compression=st.sampled_from(Compression))
def test_kernels_encode_identical_bytes(batch_entries: list, compression: Compression) -> None:
    assert records.C_CODEC is not None
    assert records.C_CODEC.encode_batch(
        batch_entries, compression=compression
    ) == records.PYTHON_CODEC.encode_batch(batch_entries, compression=compression)


@SETTINGS
@given(batch_entries=entries, encoder=codecs)
def test_kafka_python_reads_what_we_write(batch_entries: list, encoder: RecordCodec) -> None:
    memory = MemoryRecords(encoder.encode_batch(batch_entries, base_offset=3))
    batch = memory.next_batch()
    assert batch.validate_crc() and not memory.has_next()
    got = [Record(r.offset, r.timestamp, r.key, r.value, tuple(r.headers)) for r in batch]
    assert got == expected(batch_entries, 3)


@SETTINGS
@given(
    batch_entries=entries,
    data=st.data(),
    compression=st.sampled_from([Compression.NONE, Compression.LZ4]),
    encoder=codecs,
    decoder=codecs,
)
def test_encode_records_round_trip_of_any_subset(
    batch_entries: list,
    data: st.DataObject,
    compression: Compression,
    encoder: RecordCodec,
    decoder: RecordCodec,
) -> None:
    original = decoder.decode_batch(encoder.encode_batch(batch_entries, base_offset=1000))
    keep = data.draw(
        st.lists(st.booleans(), min_size=len(batch_entries), max_size=len(batch_entries))
    )
    kept = [r for r, k in zip(original.records, keep, strict=True) if k]
    horizon = data.draw(st.none() | timestamps)
    buf = encoder.encode_records(
        kept,
        base_offset=1000,
        last_offset_delta=original.header.last_offset_delta,
        compression=compression,
        delete_horizon_ms=horizon,
        max_timestamp=None if kept else original.header.max_timestamp,
    )
    rewritten = decoder.decode_batch(buf)
    assert rewritten.records == kept
    assert rewritten.header.last_offset == original.header.last_offset
    assert rewritten.header.has_delete_horizon == (horizon is not None)
    if horizon is not None:
        assert rewritten.header.base_timestamp == horizon


@needs_c
@SETTINGS
@given(
    data=st.binary(max_size=200),
    count=st.integers(0, 40),
    base_offset=st.sampled_from([0, 2**63 - 1, -(2**63)]),
    append_time=st.none() | st.integers(-(2**63), 2**63 - 1),
)
def test_kernels_agree_on_arbitrary_bytes(
    data: bytes, count: int, base_offset: int, append_time: int | None
) -> None:
    _records_c = importlib.import_module("streamlog.log._records_c")

    results = []
    for kernel in (_records_py, _records_c):
        try:
            results.append(
                kernel.decode_records(data, 0, len(data), count, base_offset, 0, append_time)
            )
        except CorruptRecordError:
            results.append(CorruptRecordError)
    assert results[0] == results[1]
