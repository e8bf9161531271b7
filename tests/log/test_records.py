"""RecordBatch v2 codec: API behaviour, and agreement with kafka-python both ways.

Every test runs against both kernels (pure Python always, C when built), through
``RecordCodec`` objects rather than the module-level functions, so one run covers both.
kafka-python's own pure-Python implementation is the outside reference.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest
from kafka import codec as kafka_codec
from kafka.record import MemoryRecords
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from streamlog.log import records
from streamlog.log.batch_header import DELETE_HORIZON_MASK, HEADER_SIZE
from streamlog.log.compression import Compression, UnsupportedCompressionError
from streamlog.log.errors import CorruptRecordError, InvalidRecordError
from streamlog.log.records import (
    ControlRecord,
    ControlType,
    Record,
    RecordCodec,
    decode_control_record,
    encode_control_batch,
)

if os.environ.get("STREAMLOG_REQUIRE_C", "") not in ("", "0") and records.C_CODEC is None:
    raise RuntimeError("STREAMLOG_REQUIRE_C is set but streamlog.log._records_c is not built")

CODECS = [
    pytest.param(records.PYTHON_CODEC, id="python"),
    pytest.param(
        records.C_CODEC,
        id="c",
        marks=pytest.mark.skipif(records.C_CODEC is None, reason="C extension not built"),
    ),
]

KAFKA_PYTHON_HAS = {
    Compression.NONE: True,
    Compression.GZIP: kafka_codec.has_gzip(),
    Compression.SNAPPY: kafka_codec.has_snappy(),
    Compression.LZ4: kafka_codec.has_lz4(),
    Compression.ZSTD: kafka_codec.has_zstd(),
}
COMPRESSIONS = [
    pytest.param(
        c,
        id=c.name.lower(),
        marks=pytest.mark.skipif(
            not KAFKA_PYTHON_HAS[c],
            reason=f"kafka-python lacks the {c.name.lower()} library (lz4/python-snappy/zstandard)",
        ),
    )
    for c in Compression
]

T0 = 1_700_000_000_000


def sample_entries() -> list[
    tuple[bytes | None, bytes | None, int, list[tuple[str, bytes | None]]]
]:
    """Null and empty keys and values, headers (null values, non-ASCII keys), timestamps
    out of order, a value over 64 KiB (several lz4 and snappy blocks), all compressible."""
    return [
        (b"key-1", b"value-1" * 20, T0, []),
        (None, b"null key" * 10, T0 + 5, [("trace-id", b"abc"), ("empty", b"")]),
        (b"tombstone", None, T0 - 3, [("null-header", None)]),
        (b"", b"", T0 + 1, [("ключ-ü", b"\x00\xff" * 4)]),
        (None, None, T0 + 2, []),
        (b"big", b"0123456789abcdef" * 5000, T0 + 400_000, [("a", b"b")] * 3),
    ]


def kafka_python_build(
    entries: list,
    compression: Compression = Compression.NONE,
    *,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=int(compression),
        is_transactional=transactional,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        batch_size=1 << 30,
    )
    for i, (key, value, ts, headers) in enumerate(entries):
        assert builder.append(i, timestamp=ts, key=key, value=value, headers=list(headers))
    return bytes(builder.build())


def kafka_python_read(buf: bytes) -> list[tuple[DefaultRecordBatch, list[Record]]]:
    """Every batch in ``buf`` read by kafka-python, records as our Record for comparison."""
    out = []
    memory = MemoryRecords(buf)
    while memory.has_next():
        batch = memory.next_batch()
        assert batch.validate_crc()
        recs = [
            Record(r.offset, r.timestamp, r.key, r.value, tuple(tuple(h) for h in r.headers))
            for r in batch
        ]
        out.append((batch, recs))
    return out


def expected_records(entries: list, base_offset: int) -> list[Record]:
    return [
        Record(base_offset + i, ts, key, value, tuple(tuple(h) for h in headers))
        for i, (key, value, ts, headers) in enumerate(entries)
    ]


# ------------------------------------------------------------------ kafka-python interop


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_reads_our_batches(codec: RecordCodec, compression: Compression) -> None:
    entries = sample_entries()
    first = codec.encode_batch(
        entries,
        base_offset=1000,
        compression=compression,
        producer_id=4242,
        producer_epoch=7,
        base_sequence=100,
        transactional=True,
        partition_leader_epoch=3,
    )
    second = codec.encode_batch(entries[:2], base_offset=1006, compression=compression)

    (batch1, recs1), (batch2, recs2) = kafka_python_read(first + second)

    assert recs1 == expected_records(entries, 1000)
    assert recs2 == expected_records(entries[:2], 1006)
    assert batch1.compression_type == compression
    assert batch1.base_offset == 1000 and batch1.last_offset == 1005
    assert batch1.leader_epoch == 3
    assert (batch1.producer_id, batch1.producer_epoch, batch1.base_sequence) == (4242, 7, 100)
    assert batch1.is_transactional and not batch1.is_control_batch
    assert batch1.first_timestamp == T0 and batch1.max_timestamp == T0 + 400_000
    assert batch1.records_count == len(entries)
    assert (batch2.producer_id, batch2.base_sequence, batch2.is_transactional) == (-1, -1, False)


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("codec", CODECS)
def test_we_read_kafka_python_batches(codec: RecordCodec, compression: Compression) -> None:
    entries = sample_entries()
    buf = kafka_python_build(
        entries,
        compression,
        producer_id=99,
        producer_epoch=2,
        base_sequence=5,
        transactional=True,
    )

    decoded = codec.decode_batch(buf)

    header = decoded.header
    assert header.compression == compression  # compressible data: kafka-python kept it
    assert decoded.records == expected_records(entries, 0)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (99, 2, 5)
    assert header.is_transactional and not header.is_control
    assert header.record_count == len(entries) and header.last_offset_delta == len(entries) - 1
    assert header.base_timestamp == T0 and header.max_timestamp == T0 + 400_000


@pytest.mark.parametrize("codec", CODECS)
def test_uncompressed_batches_are_byte_identical_to_kafka_python(codec: RecordCodec) -> None:
    entries = sample_entries()
    ours = codec.encode_batch(
        entries,
        partition_leader_epoch=0,  # kafka-python leaves the broker's fields at 0
        producer_id=12,
        producer_epoch=1,
        base_sequence=40,
        transactional=True,
    )
    theirs = kafka_python_build(
        entries, producer_id=12, producer_epoch=1, base_sequence=40, transactional=True
    )
    assert ours == theirs


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_reads_log_append_time_and_control_batches(codec: RecordCodec) -> None:
    entries = sample_entries()[:3]
    stamped = codec.encode_batch(entries, log_append_time=True, max_timestamp=T0 + 999)
    marker = encode_control_batch(
        ControlType.COMMIT, producer_id=5, producer_epoch=1, coordinator_epoch=17, timestamp=T0
    )

    (batch, recs), (control_batch, control_recs) = kafka_python_read(stamped + marker)

    assert batch.timestamp_type == 1
    assert [r.timestamp for r in recs] == [T0 + 999] * 3
    assert control_batch.is_control_batch and control_batch.is_transactional
    assert control_recs[0].value == struct.pack(">hi", 0, 17)
    (control,) = DefaultRecordBatch(marker)
    assert control.commit and control.version == 0 and control.timestamp == T0


# ------------------------------------------------------------------------ our own API


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_fields(codec: RecordCodec) -> None:
    entries = sample_entries()
    buf = codec.encode_batch(entries, base_offset=77, compression=Compression.LZ4)
    decoded = codec.decode_batch(buf)
    assert decoded.records == expected_records(entries, 77)
    assert decoded.header.size == len(buf)
    assert decoded.header.next_offset == 77 + len(entries)
    assert all(type(r) is Record for r in decoded.records)
    assert decoded.records[1].headers == (("trace-id", b"abc"), ("empty", b""))
    assert decoded.records[2].value is None and decoded.records[4].key is None


def test_both_kernels_encode_the_same_bytes_and_records_compare_equal() -> None:
    if records.C_CODEC is None:
        # CI builds it (STREAMLOG_REQUIRE_C=1): there, a missing extension is a failure
        assert not os.environ.get("STREAMLOG_REQUIRE_C"), "the C extension was not built"
        pytest.skip("C extension not built")
    entries = sample_entries()
    for compression in Compression:
        py = records.PYTHON_CODEC.encode_batch(entries, compression=compression)
        c = records.C_CODEC.encode_batch(entries, compression=compression)
        assert py == c
        assert records.PYTHON_CODEC.decode_batch(c) == records.C_CODEC.decode_batch(py)


def test_module_functions_use_the_selected_kernel() -> None:
    assert records.IMPLEMENTATION in ("c", "python")
    expected = records.C_CODEC if records.IMPLEMENTATION == "c" else records.PYTHON_CODEC
    assert expected is not None and expected.name == records.IMPLEMENTATION
    if os.environ.get("STREAMLOG_PURE_PYTHON", "") not in ("", "0"):
        assert records.IMPLEMENTATION == "python"
    elif records.C_CODEC is not None:
        assert records.IMPLEMENTATION == "c"


def test_pure_python_env_var_selects_python() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from streamlog.log import records; print(records.IMPLEMENTATION)"],
        env={**os.environ, "STREAMLOG_PURE_PYTHON": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "python"


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_decode_accepts_any_byte_buffer_and_position(codec: RecordCodec, kind: type) -> None:
    entries = sample_entries()[:3]
    batch = codec.encode_batch(entries, base_offset=5)
    buf = kind(b"\xee" * 13 + batch + b"\xee" * 4)
    decoded = codec.decode_batch(buf, 13)
    assert decoded.records == expected_records(entries, 5)
    wide = memoryview(bytearray(batch + b"\x00" * (-len(batch) % 4))).cast("i")
    assert codec.decode_batch(wide).records == expected_records(entries, 5)


@pytest.mark.parametrize("codec", CODECS)
def test_encode_accepts_bytes_like_keys_values_and_headers(codec: RecordCodec) -> None:
    entries = [
        (bytearray(b"k"), memoryview(b"xvaluex")[1:-1], T0, (("h", bytearray(b"hv")),)),
        (memoryview(b"k2"), b"v2", T0, [["h2", memoryview(b"x")]]),
    ]
    decoded = codec.decode_batch(codec.encode_batch(entries)).records
    assert decoded == [
        Record(0, T0, b"k", b"value", (("h", b"hv"),)),
        Record(1, T0, b"k2", b"v2", (("h2", b"x"),)),
    ]
    assert all(type(r.key) is bytes and type(r.value) is bytes for r in decoded)


@pytest.mark.parametrize("codec", CODECS)
def test_timestamps_base_max_and_extremes(codec: RecordCodec) -> None:
    entries = [(b"a", b"1", 50, []), (b"b", b"2", 10, []), (b"c", b"3", 90, [])]
    header = codec.decode_batch(codec.encode_batch(entries)).header
    assert (header.base_timestamp, header.max_timestamp) == (50, 90)

    header = codec.decode_batch(codec.encode_batch(entries, base_timestamp=0)).header
    assert (header.base_timestamp, header.max_timestamp) == (0, 90)

    extremes = [(None, b"x", 2**63 - 1, []), (None, b"y", -(2**63), []), (None, b"z", -1, [])]
    buf = codec.encode_batch(extremes, base_timestamp=0)
    assert [r.timestamp for r in codec.decode_batch(buf).records] == [2**63 - 1, -(2**63), -1]
    with pytest.raises(InvalidRecordError):
        codec.encode_batch(extremes)  # -(2**63) - (2**63 - 1) does not fit a varlong
    with pytest.raises(InvalidRecordError):
        codec.encode_batch([(None, b"x", 2**63, [])])


@pytest.mark.parametrize("codec", CODECS)
def test_log_append_time_reports_max_timestamp_for_every_record(codec: RecordCodec) -> None:
    entries = [(b"a", b"1", 50, []), (b"b", b"2", 10, [])]
    decoded = codec.decode_batch(codec.encode_batch(entries, log_append_time=True))
    assert decoded.header.is_log_append_time
    assert [r.timestamp for r in decoded.records] == [50, 50]
    decoded = codec.decode_batch(
        codec.encode_batch(entries, log_append_time=True, max_timestamp=T0)
    )
    assert [r.timestamp for r in decoded.records] == [T0, T0]


@pytest.mark.parametrize("codec", CODECS)
def test_encode_records_keeps_offsets_for_compaction(codec: RecordCodec) -> None:
    original = codec.decode_batch(
        codec.encode_batch(
            [(f"k{i}".encode(), f"v{i}".encode(), T0 + i, []) for i in range(10)],
            base_offset=100,
            producer_id=3,
            producer_epoch=0,
            base_sequence=20,
        )
    )
    kept = [original.records[i] for i in (1, 4, 6)]
    header = original.header

    buf = codec.encode_records(
        kept,
        base_offset=header.base_offset,
        last_offset_delta=header.last_offset_delta,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
    )
    rewritten = codec.decode_batch(buf)

    assert rewritten.records == kept
    assert [r.offset for r in rewritten.records] == [101, 104, 106]
    assert rewritten.header.base_offset == 100 and rewritten.header.last_offset == 109
    assert rewritten.header.record_count == 3
    assert rewritten.header.last_sequence == header.last_sequence
    assert (rewritten.header.base_timestamp, rewritten.header.max_timestamp) == (T0 + 1, T0 + 6)
    ((_, kp_recs),) = kafka_python_read(buf)
    assert kp_recs == kept

    # Without the override the batch ends at its last kept record.
    assert codec.decode_batch(codec.encode_records(kept, base_offset=100)).header.last_offset == 106


@pytest.mark.parametrize("codec", CODECS)
def test_encode_records_with_delete_horizon(codec: RecordCodec) -> None:
    kept = [
        Record(10, T0, b"k", b"v", ()),
        Record(12, T0 + 10, b"dead", None, (("h", None),)),
    ]
    horizon = T0 + 86_400_000  # later than every record: deltas are negative
    buf = codec.encode_records(
        kept,
        base_offset=10,
        last_offset_delta=5,
        delete_horizon_ms=horizon,
        compression=Compression.ZSTD,
    )
    decoded = codec.decode_batch(buf)
    assert decoded.header.has_delete_horizon
    assert decoded.header.attributes & DELETE_HORIZON_MASK
    assert decoded.header.base_timestamp == horizon
    assert decoded.header.max_timestamp == T0 + 10
    assert decoded.records == kept
    if KAFKA_PYTHON_HAS[Compression.ZSTD]:
        ((_, kp_recs),) = kafka_python_read(buf)
        assert kp_recs == kept
    with pytest.raises(ValueError):
        codec.encode_records(kept, base_offset=10, base_timestamp=1, delete_horizon_ms=2)


@pytest.mark.parametrize("codec", CODECS)
def test_encode_records_empty_batch_preserves_producer_state(codec: RecordCodec) -> None:
    buf = codec.encode_records(
        [],
        base_offset=500,
        last_offset_delta=9,
        producer_id=8,
        producer_epoch=2,
        base_sequence=70,
        max_timestamp=T0,
    )
    decoded = codec.decode_batch(buf)
    assert decoded.records == []
    h = decoded.header
    assert (h.base_offset, h.last_offset, h.record_count) == (500, 509, 0)
    assert (h.base_timestamp, h.max_timestamp) == (T0, T0)
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (8, 2, 70)
    with pytest.raises(ValueError):
        codec.encode_records([], base_offset=0)
    with pytest.raises(ValueError):
        codec.encode_batch([])


@pytest.mark.parametrize("codec", CODECS)
def test_encode_records_rejects_bad_offsets(codec: RecordCodec) -> None:
    r = Record(10, T0, b"k", b"v", ())
    with pytest.raises(InvalidRecordError):
        codec.encode_records([r], base_offset=11)  # before the base offset
    with pytest.raises(InvalidRecordError):
        codec.encode_records([r, r], base_offset=10)  # not increasing
    with pytest.raises(InvalidRecordError):
        codec.encode_records([r._replace(offset=10 + 2**31)], base_offset=10)
    with pytest.raises(InvalidRecordError):
        codec.encode_records([r], base_offset=0, last_offset_delta=9)  # before record delta 10
    top = codec.encode_records([r._replace(offset=10 + 2**31 - 1)], base_offset=10)
    assert codec.decode_batch(top).records[0].offset == 10 + 2**31 - 1


BAD_ENTRIES = [
    pytest.param([("k", b"v", 0, [])], TypeError, id="str-key"),
    pytest.param([(b"k", 5, 0, [])], TypeError, id="int-value"),
    pytest.param([(b"k", b"v", None, [])], TypeError, id="none-timestamp"),
    pytest.param([(b"k", b"v", 1.5, [])], TypeError, id="float-timestamp"),
    pytest.param([(b"k", b"v", 0)], TypeError, id="three-fields"),
    pytest.param([b"kv"], TypeError, id="not-a-tuple"),
    pytest.param([(b"k", b"v", 0, [(b"h", b"v")])], TypeError, id="bytes-header-key"),
    pytest.param([(b"k", b"v", 0, [("h",)])], TypeError, id="header-one-field"),
    pytest.param([(b"k", b"v", 0, [("h", "v")])], TypeError, id="str-header-value"),
    pytest.param([(b"k", b"v", 0, {"h": b"v"})], TypeError, id="dict-headers"),
    pytest.param([(b"k", b"v", 0, [("\ud800", b"v")])], UnicodeEncodeError, id="surrogate"),
    pytest.param([(b"k", b"v", 2**64, [])], InvalidRecordError, id="huge-timestamp"),
    pytest.param(
        [(b"k", b"v", 0, []), (b"k", b"v", 0, [("h", 1)])], TypeError, id="second-entry-bad"
    ),
]


@pytest.mark.parametrize(("entries", "error"), BAD_ENTRIES)
@pytest.mark.parametrize("codec", CODECS)
def test_bad_entries_raise_the_same_error_in_both_kernels(
    codec: RecordCodec, entries: list, error: type[Exception]
) -> None:
    with pytest.raises(error):
        codec.encode_batch(entries)


@pytest.mark.parametrize("codec", CODECS)
def test_bad_batch_arguments(codec: RecordCodec) -> None:
    entries = [(b"k", b"v", 0, [])]
    with pytest.raises(UnsupportedCompressionError):
        codec.encode_batch(entries, compression=5)
    with pytest.raises(ValueError):
        codec.encode_batch(entries, producer_epoch=2**15)
    with pytest.raises(ValueError):
        codec.encode_batch(entries, base_offset=2**63)
    with pytest.raises(TypeError):
        codec.encode_batch(entries, base_sequence="1")


@pytest.mark.parametrize("codec", CODECS)
def test_encode_does_not_leak_or_steal_references(codec: RecordCodec) -> None:
    key, value, hv = b"k" * 50, bytearray(b"v" * 50), b"h" * 50
    entries = [(key, value, T0, [("h", hv)])] * 10
    before = [sys.getrefcount(x) for x in (key, value, hv)]
    for _ in range(100):
        codec.encode_batch(entries)
        with pytest.raises(TypeError):
            codec.encode_batch(entries + [(key, value, T0, [("h", 1)])])
    assert [sys.getrefcount(x) for x in (key, value, hv)] == before
    value.extend(b"!")  # no buffer export was left behind


@pytest.mark.parametrize("codec", CODECS)
def test_decode_releases_the_input_buffer(codec: RecordCodec) -> None:
    buf = bytearray(codec.encode_batch(sample_entries()[:2]))
    codec.decode_batch(buf)
    corrupt = bytearray(buf)
    corrupt[-1] ^= 1
    with pytest.raises(CorruptRecordError):
        codec.decode_batch(corrupt)
    buf.extend(b"x")  # would raise BufferError if an export were still held
    corrupt.extend(b"x")


# -------------------------------------------------------------------------- iteration


@pytest.mark.parametrize("codec", CODECS)
def test_iter_batches_ignores_a_trailing_partial_batch(codec: RecordCodec) -> None:
    batches = [
        codec.encode_batch([(b"a", b"1", T0, [])], base_offset=0),
        codec.encode_batch([(b"b", b"2", T0, []), (b"c", b"3", T0, [])], base_offset=1),
        codec.encode_batch([(b"d", b"4", T0, [])], base_offset=3, compression=Compression.GZIP),
    ]
    whole = b"".join(batches[:2])
    for cut in range(len(batches[2])):
        got = list(codec.iter_batches(whole + batches[2][:cut]))
        assert [[r.offset for r in b.records] for b in got] == [[0], [1, 2]]
    got = list(codec.iter_batches(memoryview(whole + batches[2])))
    assert [r.key for b in got for r in b.records] == [b"a", b"b", b"c", b"d"]
    assert list(codec.iter_batches(b"")) == []


@pytest.mark.parametrize("codec", CODECS)
def test_iter_batches_raises_on_corruption_before_the_end(codec: RecordCodec) -> None:
    one = bytearray(codec.encode_batch([(b"a", b"1", T0, [])]))
    two = codec.encode_batch([(b"b", b"2", T0, [])], base_offset=1)
    one[-1] ^= 0x40
    with pytest.raises(CorruptRecordError):
        list(codec.iter_batches(bytes(one) + two))
    tiny = struct.pack(">qi", 0, 10) + b"\x00" * 60
    with pytest.raises(CorruptRecordError):
        list(codec.iter_batches(tiny))


# --------------------------------------------------------------------- control batches


def test_control_batch_round_trip() -> None:
    for control_type in ControlType:
        buf = encode_control_batch(
            control_type,
            producer_id=77,
            producer_epoch=3,
            coordinator_epoch=12,
            timestamp=T0,
            base_offset=40,
        )
        decoded = records.decode_batch(buf)
        assert decoded.header.is_control and decoded.header.is_transactional
        assert decoded.header.producer_id == 77 and decoded.header.producer_epoch == 3
        assert decoded.header.base_sequence == -1 and decoded.header.base_offset == 40
        (record,) = decoded.records
        assert record.key == struct.pack(">hh", 0, control_type)
        assert record.timestamp == T0
        assert decode_control_record(record) == ControlRecord(control_type, 12)


def test_decode_control_record_rejects_malformed_markers() -> None:
    good_value = struct.pack(">hi", 0, 1)
    with pytest.raises(CorruptRecordError):
        decode_control_record(Record(0, 0, b"\x00", good_value, ()))
    with pytest.raises(CorruptRecordError):
        decode_control_record(Record(0, 0, None, good_value, ()))
    with pytest.raises(CorruptRecordError):
        decode_control_record(Record(0, 0, struct.pack(">hh", -1, 0), good_value, ()))
    with pytest.raises(CorruptRecordError):
        decode_control_record(Record(0, 0, struct.pack(">hh", 0, 1), b"\x00\x00", ()))
    with pytest.raises(InvalidRecordError):
        decode_control_record(Record(0, 0, struct.pack(">hh", 0, 3), good_value, ()))
    # A newer marker version with extra bytes is still read, as Kafka does.
    newer = decode_control_record(
        Record(0, 0, struct.pack(">hh", 1, 0), struct.pack(">hi", 1, 9) + b"\x00", ())
    )
    assert newer == ControlRecord(ControlType.ABORT, 9)


def test_header_size_constant_matches_layout() -> None:
    assert HEADER_SIZE == struct.calcsize(">qiibIhiqqqhii")
