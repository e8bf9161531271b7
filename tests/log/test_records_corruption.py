"""Corrupt, truncated and fuzzed record batches: both kernels raise CorruptRecordError,
never anything else, never wrong data, and agree with each other on every input.

Batches with a *recomputed* CRC reach the record decoder itself; they model a buggy or
hostile producer rather than a torn write, which the CRC already catches.
"""

from __future__ import annotations

import gc
import importlib
import random
import struct
import tracemalloc

import pytest
from crc32c import crc32c

from streamlog.log import _records_py, records
from streamlog.log.compression import Compression, UnsupportedCompressionError, compress
from streamlog.log.errors import CorruptRecordError, InvalidRecordError
from streamlog.log.records import DecodedBatch, RecordCodec

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
HEADER = struct.Struct(">qiibIhiqqqhii")

ENTRIES = [
    (b"key", b"value", T0, [("h1", b"x"), ("h2", None)]),
    (None, b"v" * 200, T0 + 1000, []),
    (b"k" * 70, None, T0 - 5, [("ü", b"")]),
]


def seal(
    section: bytes,
    count: int,
    *,
    attributes: int = 0,
    base_offset: int = 0,
    base_timestamp: int = T0,
    max_timestamp: int = T0,
) -> bytes:
    """A batch around ``section`` with a correct length and CRC, whatever it contains."""
    buf = bytearray(
        HEADER.pack(
            base_offset,
            HEADER.size - 12 + len(section),
            -1,
            2,
            0,
            attributes,
            max(count - 1, 0),
            base_timestamp,
            max_timestamp,
            -1,
            -1,
            -1,
            count,
        )
        + section
    )
    struct.pack_into(">I", buf, 17, crc32c(bytes(buf[21:])))
    return bytes(buf)


def section_of(codec: RecordCodec, entries: list) -> bytes:
    return codec.encode_batch(entries)[HEADER.size :]


def outcome(codec: RecordCodec, buf: bytes) -> DecodedBatch | type[Exception]:
    """The decoded batch, or the class of the *expected* error; anything else propagates."""
    try:
        return codec.decode_batch(buf)
    except CorruptRecordError:
        return CorruptRecordError


# ------------------------------------------------------------------- torn writes (CRC)


@pytest.mark.parametrize(
    "compression",
    [Compression.NONE, Compression.SNAPPY, Compression.ZSTD],
    ids=lambda c: c.name.lower(),
)
@pytest.mark.parametrize("codec", CODECS)
def test_every_truncation_raises_corrupt(codec: RecordCodec, compression: Compression) -> None:
    batch = codec.encode_batch(ENTRIES, compression=compression)
    for cut in range(len(batch)):
        with pytest.raises(CorruptRecordError):
            codec.decode_batch(batch[:cut])


@pytest.mark.parametrize(
    "compression", [Compression.NONE, Compression.LZ4], ids=lambda c: c.name.lower()
)
@pytest.mark.parametrize("codec", CODECS)
def test_every_bit_flip_is_caught_or_outside_the_crc(
    codec: RecordCodec, compression: Compression
) -> None:
    batch = codec.encode_batch(ENTRIES, base_offset=1000, compression=compression)
    original = codec.decode_batch(batch)
    for i in range(len(batch)):
        for bit in range(8):
            flipped = bytearray(batch)
            flipped[i] ^= 1 << bit
            if i < 8:
                # baseOffset is outside the CRC by design (the log assigns it in place):
                # the batch decodes, with every offset moved by the same amount.
                decoded = codec.decode_batch(flipped)
                shift = decoded.header.base_offset - 1000
                assert shift != 0
                assert decoded.records == [
                    r._replace(offset=r.offset + shift) for r in original.records
                ]
            elif 12 <= i < 16:
                # partitionLeaderEpoch: also outside the CRC, and not part of any record.
                assert codec.decode_batch(flipped).records == original.records
            elif i == 16:
                with pytest.raises(InvalidRecordError):  # magic 2 is no longer 2
                    codec.decode_batch(flipped)
            else:
                with pytest.raises(CorruptRecordError):
                    codec.decode_batch(flipped)


# ----------------------------------------------------- bad structure with a valid CRC


@pytest.mark.parametrize("codec", CODECS)
def test_every_truncation_of_the_records_section_raises(codec: RecordCodec) -> None:
    section = section_of(codec, ENTRIES)
    for cut in range(len(section)):
        with pytest.raises(CorruptRecordError):
            codec.decode_batch(seal(section[:cut], len(ENTRIES)))
    assert len(codec.decode_batch(seal(section, len(ENTRIES))).records) == len(ENTRIES)


@pytest.mark.parametrize("codec", CODECS)
def test_record_count_must_match(codec: RecordCodec) -> None:
    section = section_of(codec, ENTRIES)
    for count in (0, 1, len(ENTRIES) - 1, len(ENTRIES) + 1, 2**31 - 1):
        with pytest.raises(CorruptRecordError):
            codec.decode_batch(seal(section, count))


def record(body: bytes) -> bytes:
    """A record: zigzag length varint (short bodies only) then the body."""
    assert len(body) < 64
    return bytes([len(body) << 1]) + body


MALFORMED = {
    # attributes, ts delta 0, offset delta 0, key -1, value -1, 0 headers, in order:
    "varint-6-bytes": record(b"\x00\x00" + b"\xff" * 5 + b"\x01" + b"\x01\x01\x00"),
    "varint-5th-byte-too-wide": record(b"\x00\x00" + b"\xff\xff\xff\xff\x1f" + b"\x01\x01\x00"),
    "varlong-11-bytes": record(b"\x00" + b"\x80" * 10 + b"\x00" + b"\x00\x01\x01\x00"),
    "key-length-minus-2": record(b"\x00\x00\x00\x03\x01\x00"),
    "value-length-minus-2": record(b"\x00\x00\x00\x01\x03\x00"),
    "key-overruns-record": record(b"\x00\x00\x00\x0a\x01\x00"),
    "negative-header-count": record(b"\x00\x00\x00\x01\x01\x01"),
    "header-count-too-big": record(b"\x00\x00\x00\x01\x01\x7e"),
    "negative-header-key-length": record(b"\x00\x00\x00\x01\x01\x02\x01\x01"),
    "header-key-not-utf8": record(b"\x00\x00\x00\x01\x01\x02\x02\xff\x01"),
    "header-value-minus-2": record(b"\x00\x00\x00\x01\x01\x02\x02h\x03"),
    "fields-shorter-than-length": record(b"\x00\x00\x00\x01\x01\x00\x00"),
    "fields-longer-than-length": bytes([5 << 1]) + b"\x00\x00\x00\x01\x01\x00",
    "empty-record": b"\x00" + b"\x00" * 6,
    "negative-record-length": b"\x01" + b"\x00" * 6,
    "length-past-end": b"\x7e" + b"\x00" * 6,
    "truncated-length-varint": b"\x80\x80\x80\x80\x80\x80\x80",
    "trailing-bytes": record(b"\x00\x00\x00\x01\x01\x00") + b"\x00",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
@pytest.mark.parametrize("codec", CODECS)
def test_malformed_record_raises_corrupt(codec: RecordCodec, name: str) -> None:
    with pytest.raises(CorruptRecordError):
        codec.decode_batch(seal(MALFORMED[name], 1))


@pytest.mark.parametrize("codec", CODECS)
def test_well_formed_handmade_record_decodes(codec: RecordCodec) -> None:
    # Same layout as the malformed cases, made valid: checks that they fail for the
    # reason in their name and not because the template itself is wrong.
    body = b"\x00\x04\x02\x02k\x01\x02\x02h\x00"
    (r,) = codec.decode_batch(seal(record(body), 1, base_offset=10)).records
    assert (r.offset, r.timestamp, r.key, r.value, r.headers) == (
        11,
        T0 + 2,
        b"k",
        None,
        (("h", b""),),
    )


@pytest.mark.parametrize("codec", CODECS)
def test_offsets_and_timestamps_overflowing_int64_are_corrupt(codec: RecordCodec) -> None:
    body = b"\x00\x02\x02\x01\x01\x00"  # ts delta +1, offset delta +1
    with pytest.raises(CorruptRecordError):
        codec.decode_batch(seal(record(body), 1, base_offset=2**63 - 1))
    with pytest.raises(CorruptRecordError):
        codec.decode_batch(seal(record(body), 1, base_timestamp=2**63 - 1))


@pytest.mark.parametrize(
    "compression", [c for c in Compression if c != Compression.NONE], ids=lambda c: c.name.lower()
)
@pytest.mark.parametrize("codec", CODECS)
def test_bad_compressed_payload_raises_corrupt(
    codec: RecordCodec, compression: Compression
) -> None:
    good = compress(compression, section_of(codec, ENTRIES))
    for payload in (b"", b"\x00" * 20, b"garbage" * 5, good[: len(good) // 2], good[:-1]):
        with pytest.raises(CorruptRecordError):
            codec.decode_batch(seal(payload, len(ENTRIES), attributes=compression))
    assert len(codec.decode_batch(seal(good, len(ENTRIES), attributes=compression)).records) == 3


@pytest.mark.parametrize("codec", CODECS)
def test_unknown_compression_is_invalid_not_corrupt(codec: RecordCodec) -> None:
    for attributes in (5, 6, 7):
        with pytest.raises(UnsupportedCompressionError):
            codec.decode_batch(seal(section_of(codec, ENTRIES), 3, attributes=attributes))


# ---------------------------------------------------------------------------- fuzzing


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        i = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(i, len(buf) - 1)] = rng.choice(
                [0x00, 0x01, 0x02, 0x7F, 0x80, 0xFF, rng.randrange(256)]
            )
        elif op == 1:
            buf.insert(i, rng.randrange(256))
        elif op == 2 and buf:
            del buf[min(i, len(buf) - 1)]
        elif op == 3 and buf:
            buf[min(i, len(buf) - 1)] ^= 1 << rng.randrange(8)
        else:
            j = rng.randrange(len(buf) + 1)
            buf[i:i] = buf[min(i, j) : max(i, j)][:16]
    return bytes(buf)


def fuzz_sections(rng: random.Random) -> list[tuple[bytes, int]]:
    """Valid records sections of several shapes, to mutate."""
    shapes = [
        ENTRIES,
        [(None, None, T0, [])],
        [
            (b"k" * i, b"v" * (i * 7), T0 + i * 1_000_000, [("h" * i, b"x")] * (i % 3))
            for i in range(8)
        ],
        [(b"", b"", -1, []), (b"\x00", None, 2**40, [("é", None)])],
    ]
    return [(section_of(records.PYTHON_CODEC, s), len(s)) for s in shapes]


@needs_c
def test_fuzz_mutated_batches_both_kernels_agree() -> None:
    assert records.C_CODEC is not None
    rng = random.Random(20240611)
    sections = fuzz_sections(rng)
    decoded_some = 0
    for _ in range(30000):
        section, count = rng.choice(sections)
        count = count if rng.random() < 0.8 else max(0, count + rng.choice([-1, 1, 5]))
        buf = seal(
            mutate(rng, section),
            count,
            base_offset=rng.choice([0, 2**63 - 10, rng.randrange(2**40)]),
            base_timestamp=rng.choice([T0, 2**63 - 1, -(2**63)]),
        )
        py = outcome(records.PYTHON_CODEC, buf)
        c = outcome(records.C_CODEC, buf)
        assert py == c, buf.hex()
        decoded_some += py is not CorruptRecordError
    assert decoded_some > 50  # the fuzzer also reaches the success path


@needs_c
def test_fuzz_random_bytes_with_valid_crc_only_raise_corrupt() -> None:
    assert records.C_CODEC is not None
    rng = random.Random(7)
    for _ in range(10000):
        section = rng.randbytes(rng.randrange(0, 120))
        count = rng.choice([0, 1, 2, 3, rng.randrange(100), 2**31 - 1])
        buf = seal(section, count)
        py = outcome(records.PYTHON_CODEC, buf)
        c = outcome(records.C_CODEC, buf)
        assert py == c, buf.hex()


@needs_c
def test_fuzz_c_kernel_directly() -> None:
    _records_c = importlib.import_module("streamlog.log._records_c")

    rng = random.Random(99)
    for _ in range(50000):
        data = rng.randbytes(rng.randrange(0, 40))
        count = rng.randrange(0, 6)
        # Surround the span with plausible record bytes: nothing outside it may be read.
        before, after = (
            b"\x0c\x00" * rng.randrange(3),
            b"\x0c\x00\x00\x00\x01\x01\x00" * rng.randrange(3),
        )
        args = (
            before + data + after,
            len(before),
            len(before) + len(data),
            count,
            rng.choice([0, -1, 2**63 - 1, -(2**63)]),
            rng.choice([0, 2**63 - 1, -(2**63)]),
            rng.choice([None, 5]),
        )
        results = []
        for kernel in (_records_c, _records_py):
            try:
                results.append(kernel.decode_records(*args))
            except CorruptRecordError:
                results.append(CorruptRecordError)
        assert results[0] == results[1], args


@needs_c
def test_kernel_rejects_bad_spans_as_caller_errors() -> None:
    _records_c = importlib.import_module("streamlog.log._records_c")

    for kernel in (_records_c, _records_py):
        with pytest.raises(ValueError):
            kernel.decode_records(b"abc", 2, 1, 0, 0, 0, None)
        with pytest.raises(ValueError):
            kernel.decode_records(b"abc", 0, 4, 0, 0, 0, None)
        with pytest.raises(ValueError):
            kernel.decode_records(b"abc", 0, 3, -1, 0, 0, None)


@needs_c
def test_c_error_paths_do_not_leak() -> None:
    assert records.C_CODEC is not None
    codec = records.C_CODEC
    rng = random.Random(3)
    bad_batches = [seal(mutate(rng, section_of(codec, ENTRIES)), 3) for _ in range(200)]
    bad_entries = [(b"k", b"v", T0, [("h", b"x")])] * 20 + [(b"k", b"v", T0, [("h", 1)])]

    def churn() -> None:
        for buf in bad_batches:
            outcome(codec, buf)
        for _ in range(200):
            with pytest.raises(TypeError):
                codec.encode_batch(bad_entries)

    churn()
    gc.collect()
    tracemalloc.start()
    try:
        churn()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(5):
            churn()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # A leak of one small object per call would be ~2,000 objects (>60 KB) here.
    assert after - before < 32_000
