"""``RecordCodec.scan_batch``: the record walk the log runs before storing a batch.

Both kernels must accept exactly what ``decode_batch`` accepts (so the broker never
stores a batch its own readers cannot decode), agree with each other, and report the
records that break a rule.
"""

from __future__ import annotations

import importlib
import random

import pytest

from streamlog.log import _records_py, records
from streamlog.log.batch_header import validate_batch
from streamlog.log.compression import Compression, compress
from streamlog.log.errors import CorruptRecordError, DecompressionLimitError
from streamlog.log.records import RecordCodec, RecordProblem, RecordScan

from .test_records_corruption import (
    CODECS,
    ENTRIES,
    MALFORMED,
    T0,
    fuzz_sections,
    mutate,
    needs_c,
    seal,
    section_of,
)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
OPEN = {"need_keys": False, "min_timestamp": INT64_MIN, "max_timestamp": INT64_MAX}


def scan(codec: RecordCodec, buf: bytes, limit: int = 1 << 20, **rules) -> RecordScan:
    options = {**OPEN, **rules}
    return codec.scan_batch(buf, 0, validate_batch(buf), limit=limit, max_problems=100, **options)


def scan_outcome(codec: RecordCodec, buf: bytes) -> RecordScan | type[Exception]:
    try:
        return scan(codec, buf)
    except CorruptRecordError:
        return CorruptRecordError


@pytest.mark.parametrize("codec", CODECS)
def test_scan_reports_max_timestamp_and_nothing_for_good_records(codec: RecordCodec) -> None:
    buf = codec.encode_batch(ENTRIES)
    assert scan(codec, buf) == RecordScan(T0 + 1000, 0, [])


@pytest.mark.parametrize("codec", CODECS)
def test_scan_lists_keyless_records_and_timestamps_out_of_range(codec: RecordCodec) -> None:
    entries = [
        (b"a", b"1", T0, ()),
        (None, b"2", T0, ()),  # no key
        (b"c", b"3", T0 + 10_000, ()),  # too new
        (None, b"4", T0 - 10_000, ()),  # no key and too old: the key is reported
        (b"e", b"5", -1, ()),  # no timestamp: never checked
        (b"f", b"6", T0 - 10_000, ()),  # too old
    ]
    buf = codec.encode_batch(entries)
    result = scan(codec, buf, need_keys=True, min_timestamp=T0 - 5, max_timestamp=T0 + 5)
    assert result == RecordScan(
        T0 + 10_000,
        4,
        [
            (1, RecordProblem.NO_KEY),
            (2, RecordProblem.TIMESTAMP_OUT_OF_RANGE),
            (3, RecordProblem.NO_KEY),
            (5, RecordProblem.TIMESTAMP_OUT_OF_RANGE),
        ],
    )
    # The list is cut at max_problems; the count is not.
    header = validate_batch(buf)
    cut = codec.scan_batch(
        buf,
        0,
        header,
        limit=1 << 20,
        need_keys=True,
        min_timestamp=T0 - 5,
        max_timestamp=T0 + 5,
        max_problems=1,
    )
    assert (cut.problem_count, cut.problems) == (4, [(1, RecordProblem.NO_KEY)])


@pytest.mark.parametrize("codec", CODECS)
def test_scan_refuses_counts_that_are_not_the_records(codec: RecordCodec) -> None:
    section = section_of(codec, ENTRIES)
    for count in (1, len(ENTRIES) - 1, len(ENTRIES) + 1, 2**31 - 1):
        with pytest.raises(CorruptRecordError):
            scan(codec, seal(section, count))


@pytest.mark.parametrize("codec", CODECS)
def test_scan_refuses_offset_deltas_other_than_the_index(codec: RecordCodec) -> None:
    # Records keeping offsets 0, 5, 6 (as compaction writes them) are stored batches,
    # never a producer's.
    gapped = codec.encode_records(
        [records.Record(o, T0, b"k", b"v") for o in (0, 5, 6)], base_offset=0
    )
    assert [r.offset for r in codec.decode_batch(gapped).records] == [0, 5, 6]
    with pytest.raises(CorruptRecordError, match="offset delta 5"):
        scan(codec, gapped)


@pytest.mark.parametrize("name", sorted(MALFORMED))
@pytest.mark.parametrize("codec", CODECS)
def test_scan_refuses_what_decode_refuses(codec: RecordCodec, name: str) -> None:
    with pytest.raises(CorruptRecordError):
        scan(codec, seal(MALFORMED[name], 1))


@pytest.mark.parametrize(
    "compression", [c for c in Compression if c != Compression.NONE], ids=lambda c: c.name.lower()
)
@pytest.mark.parametrize("codec", CODECS)
def test_scan_decompresses_within_the_limit(codec: RecordCodec, compression: Compression) -> None:
    section = section_of(codec, ENTRIES)
    buf = seal(compress(compression, section), len(ENTRIES), attributes=compression)
    assert scan(codec, buf, limit=len(section)).problem_count == 0
    with pytest.raises(DecompressionLimitError):
        scan(codec, buf, limit=len(section) - 1)
    garbage = seal(b"garbage" * 5, len(ENTRIES), attributes=compression)
    with pytest.raises(CorruptRecordError):
        scan(codec, garbage)


@pytest.mark.parametrize("codec", CODECS)
def test_scan_limits_uncompressed_records_too(codec: RecordCodec) -> None:
    section = section_of(codec, ENTRIES)
    buf = seal(section, len(ENTRIES))
    assert scan(codec, buf, limit=len(section)).problem_count == 0
    with pytest.raises(DecompressionLimitError):
        scan(codec, buf, limit=len(section) - 1)


@needs_c
def test_fuzz_scan_accepts_exactly_what_decode_accepts_in_both_kernels() -> None:
    assert records.C_CODEC is not None
    rng = random.Random(20261210)
    sections = fuzz_sections(rng)
    accepted = 0
    for _ in range(30000):
        section, count = rng.choice(sections)
        count = count if rng.random() < 0.8 else max(0, count + rng.choice([-1, 1, 5]))
        buf = seal(
            mutate(rng, section),
            count,
            base_timestamp=rng.choice([T0, 2**63 - 1, -(2**63)]),
        )
        outcomes = [scan_outcome(codec, buf) for codec in (records.PYTHON_CODEC, records.C_CODEC)]
        assert outcomes[0] == outcomes[1], buf.hex()
        try:
            decoded = records.C_CODEC.decode_batch(buf)
        except CorruptRecordError:
            decoded = None
        if outcomes[0] is CorruptRecordError:
            # Refused: decode refuses it too, or its offsets have gaps.
            offsets = None if decoded is None else [r.offset for r in decoded.records]
            assert offsets is None or offsets != list(range(len(offsets))), buf.hex()
        else:
            assert decoded is not None, buf.hex()
            stamps = [r.timestamp for r in decoded.records]
            assert outcomes[0].max_timestamp == max([-1, *stamps])
            accepted += 1
    assert accepted > 50  # the fuzzer also reaches the success path


@needs_c
def test_fuzz_c_scan_kernel_directly() -> None:
    _records_c = importlib.import_module("streamlog.log._records_c")
    rng = random.Random(31)
    for _ in range(50000):
        data = rng.randbytes(rng.randrange(0, 40))
        before, after = (
            b"\x0c\x00" * rng.randrange(3),
            b"\x0c\x00\x00\x00\x01\x01\x00" * rng.randrange(3),
        )
        args = (
            before + data + after,
            len(before),
            len(before) + len(data),
            rng.randrange(0, 6),
            rng.choice([0, -1, 2**63 - 1, -(2**63)]),
            rng.random() < 0.5,
            rng.choice([INT64_MIN, 0, 3]),
            rng.choice([INT64_MAX, 0, 3]),
            rng.choice([0, 1, 10]),
        )
        results = []
        for kernel in (_records_c, _records_py):
            try:
                results.append(kernel.scan_records(*args))
            except CorruptRecordError:
                results.append(CorruptRecordError)
        assert results[0] == results[1], args


@needs_c
def test_scan_kernels_reject_bad_arguments_alike() -> None:
    _records_c = importlib.import_module("streamlog.log._records_c")
    good = section_of(records.PYTHON_CODEC, ENTRIES)
    for args, error in (
        ((good, 0, len(good) + 1, 3, T0, False, 0, 1, 1), ValueError),
        ((good, 0, len(good), -1, T0, False, 0, 1, 1), ValueError),
        ((good, 0, len(good), 3, T0, False, 2**63, 1, 1), ValueError),
        ((good, 0, len(good), 3, T0, False, 0, 1, -1), ValueError),
        ((good, 0, len(good), 3, T0, False, "0", 1, 1), TypeError),
    ):
        for kernel in (_records_c, _records_py):
            with pytest.raises(error):
                kernel.scan_records(*args)
