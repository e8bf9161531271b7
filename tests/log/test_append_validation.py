"""What ``PartitionLog.append`` refuses (``validator.py``), and that a refusal leaves the
log exactly as it was: same files, same offsets, the acknowledged records intact after a
restart."""

from __future__ import annotations

import os
import struct

import pytest
from crc32c import crc32c

from streamlog.log.batch_header import parse_header, validate_batch
from streamlog.log.clock import ManualClock
from streamlog.log.compression import Compression, UnsupportedCompressionError, compress
from streamlog.log.config import TopicConfig
from streamlog.log.errors import (
    InvalidRecordError,
    InvalidTimestampError,
    InvalidTxnStateError,
    MalformedRecordError,
    RecordTooLargeError,
    RecordValidationError,
)
from streamlog.log.partition_log import AppendOrigin, PartitionLog
from streamlog.log.records import (
    ControlType,
    decode_batch,
    encode_batch,
    encode_control_batch,
    encode_records,
)

from .logutil import read_all_records

NOW = 1_700_000_000_000
HEADER = struct.Struct(">qiibIhiqqqhii")


def open_log(path, **configs) -> PartitionLog:
    cfg = TopicConfig.from_map({k.replace("_", "."): v for k, v in configs.items()})
    return PartitionLog.open(str(path), cfg, ManualClock(NOW))


def batch(*entries, **options) -> bytes:
    return encode_batch(
        [entry if len(entry) == 4 else (*entry, NOW, ()) for entry in entries], **options
    )


def reseal(buf: bytes, **fields: int) -> bytes:
    """``buf`` with header fields changed (by HEADER's field names) and the CRC redone."""
    names = (
        "base_offset batch_length leader_epoch magic crc attributes last_offset_delta "
        "base_timestamp max_timestamp producer_id producer_epoch base_sequence record_count"
    ).split()
    values = dict(zip(names, HEADER.unpack_from(buf), strict=True))
    values.update(fields)
    out = bytearray(buf)
    HEADER.pack_into(out, 0, *values.values())
    struct.pack_into(">I", out, 17, crc32c(bytes(out[21:])))
    return bytes(out)


def seal_section(section: bytes, count: int, attributes: int = 0) -> bytes:
    """A batch around ``section`` (records, maybe compressed) with a valid length and CRC."""
    head = HEADER.pack(
        0, 49 + len(section), -1, 2, 0, attributes, count - 1, NOW, NOW, -1, -1, -1, count
    )
    return reseal(head + section)


def files_of(path) -> dict[str, bytes]:
    out = {}
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name), "rb") as f:
            out[name] = f.read()
    return out


@pytest.fixture
def acked(tmp_path):
    """A log holding two acknowledged records, flushed: what a refusal must not touch."""
    plog = open_log(tmp_path)
    plog.append(batch((b"a", b"1")))
    plog.append(batch((b"b", b"2")))
    plog.flush()
    yield plog
    if not plog.closed:
        plog.close()


def assert_untouched(plog: PartitionLog, path) -> None:
    """The log still ends at 2 and holds a/1, b/2, before and after a restart."""
    assert plog.log_end_offset == 2
    plog.close()
    reopened = PartitionLog.open(str(path), plog.config, ManualClock(NOW))
    try:
        assert reopened.log_end_offset == 2
        got = [(r.offset, r.key, r.value) for r in read_all_records(reopened)]
        assert got == [(0, b"a", b"1"), (1, b"b", b"2")]
        # and the log goes on from there
        assert reopened.append(batch((b"c", b"3"))).base_offset == 2
    finally:
        reopened.close()


def refuse(
    plog: PartitionLog, path, records: bytes, error: type[Exception], match: str | None = None
):
    before = files_of(path)
    with pytest.raises(error, match=match) as info:
        plog.append(records)
    assert files_of(path) == before  # nothing written, not even an index entry
    return info.value


# ------------------------------------------------------------ counts and framing


def test_a_declared_count_of_2_31_minus_1_holding_one_record_is_refused(acked, tmp_path) -> None:
    one = batch((b"x", b"y"))
    forged = reseal(one, last_offset_delta=2**31 - 2, record_count=2**31 - 1)
    for _ in range(3):  # it used to move the offsets by 2**31 per request
        refuse(acked, tmp_path, forged, MalformedRecordError, "records cannot fit")
    assert_untouched(acked, tmp_path)


@pytest.mark.parametrize("count", [2, 3])
def test_a_count_larger_than_the_records_is_refused(acked, tmp_path, count) -> None:
    forged = reseal(batch((b"x", b"y")), last_offset_delta=count - 1, record_count=count)
    refuse(acked, tmp_path, forged, MalformedRecordError)
    assert_untouched(acked, tmp_path)


def test_a_count_smaller_than_the_records_is_refused(acked, tmp_path) -> None:
    forged = reseal(batch((b"x", b"1"), (b"y", b"2")), last_offset_delta=0, record_count=1)
    refuse(acked, tmp_path, forged, MalformedRecordError, "follow the last")
    assert_untouched(acked, tmp_path)


def test_offset_deltas_must_count_up_from_zero(acked, tmp_path) -> None:
    from streamlog.log.records import Record

    gapped = encode_records(
        [Record(0, NOW, b"k", b"0"), Record(1, NOW, b"k", b"1"), Record(7, NOW, b"k", b"7")],
        base_offset=0,
    )
    forged = reseal(gapped, last_offset_delta=2, record_count=3)
    refuse(acked, tmp_path, forged, MalformedRecordError, "offset delta 7")
    assert_untouched(acked, tmp_path)


@pytest.mark.parametrize(
    "section",
    [
        b"\x0c\x00\x00\x00\xff\xff\xff\xff\xff\x01\x01\x00",  # a 6-byte varint
        b"\x7e\x00\x00\x00\x01\x01\x00",  # record length past the end
        b"\x0c\x00\x00\x00\x01\x01\x00\x00",  # a byte after the last record
        b"\x12\x00\x00\x00\x01\x01\x02\x02\xff\x01",  # header key not UTF-8
    ],
    ids=["long-varint", "overrun", "trailing", "header-not-utf8"],
)
def test_crc_valid_garbage_records_are_refused(acked, tmp_path, section) -> None:
    refuse(acked, tmp_path, seal_section(section, 1), MalformedRecordError)
    assert_untouched(acked, tmp_path)


def test_one_bad_batch_refuses_the_whole_request(acked, tmp_path) -> None:
    good = batch((b"x", b"y"))
    bad = reseal(good, last_offset_delta=1, record_count=2)
    exc = refuse(acked, tmp_path, good + bad, MalformedRecordError)
    assert str(exc).startswith("batch 1: ")
    assert_untouched(acked, tmp_path)


# -------------------------------------------------------------------- compression


@pytest.mark.parametrize("codec", [5, 6, 7])
def test_unknown_codecs_are_unsupported(acked, tmp_path, codec) -> None:
    forged = reseal(batch((b"x", b"y")), attributes=codec)
    refuse(acked, tmp_path, forged, UnsupportedCompressionError, f"compression type {codec}")
    assert_untouched(acked, tmp_path)


@pytest.mark.parametrize("codec", [c for c in Compression if c], ids=lambda c: c.name.lower())
def test_payloads_that_do_not_decompress_are_refused(acked, tmp_path, codec) -> None:
    section = batch((b"x", b"y"))[61:]
    garbage = bytearray(compress(codec, section))
    garbage[len(garbage) // 2 :] = b"\x00" * (len(garbage) - len(garbage) // 2)
    refuse(acked, tmp_path, seal_section(b"garbage gzip" * 3, 1, codec), MalformedRecordError)
    refuse(acked, tmp_path, seal_section(bytes(garbage), 1, codec), MalformedRecordError)
    assert_untouched(acked, tmp_path)


@pytest.mark.parametrize("codec", [c for c in Compression if c], ids=lambda c: c.name.lower())
def test_a_bomb_is_refused_as_too_large(acked, tmp_path, codec) -> None:
    # One well-formed record whose value is 256 MiB of zeros: a few KiB compressed
    # (snappy: ~12 MiB, so the topic's max.message.bytes is raised to let it through
    # the compressed-size check and reach decompression).
    value_size = 256 << 20
    fields = b"\x00\x00\x00\x01" + _varint(value_size)  # attributes, deltas, null key
    section = _varint(len(fields) + value_size + 1) + fields + bytes(value_size) + b"\x00"
    payload = compress(codec, section)
    del section
    config = {"max_message_bytes": max(1_048_588, len(payload) + 100)}
    plog = open_log(tmp_path / "bomb", **config)
    plog.append(batch((b"a", b"1")))
    exc = refuse(
        plog, tmp_path / "bomb", seal_section(payload, 1, codec), RecordTooLargeError, "decompress"
    )
    assert "max.message.bytes" in str(exc)
    assert plog.log_end_offset == 1
    plog.close()


def _varint(value: int) -> bytes:
    z = (value << 1) ^ (value >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def test_the_decompressed_records_are_held_to_max_message_bytes(tmp_path) -> None:
    entries = [(b"k%d" % i, b"v" * 1000, NOW, ()) for i in range(20)]
    plain = encode_batch(entries)
    section = len(plain) - 61
    compressed = encode_batch(entries, compression=Compression.ZSTD)
    assert len(compressed) < 1000 < section
    at_limit = open_log(tmp_path / "fits", max_message_bytes=section)
    assert at_limit.append(compressed).record_count == 20
    at_limit.close()
    below = open_log(tmp_path / "over", max_message_bytes=section - 1)
    with pytest.raises(RecordTooLargeError):
        below.append(compressed)
    assert below.log_end_offset == 0
    below.close()


# ------------------------------------------------------- control and transactions


def test_clients_may_not_write_control_batches(acked, tmp_path) -> None:
    marker = encode_control_batch(
        ControlType.COMMIT, producer_id=7, producer_epoch=0, coordinator_epoch=0, timestamp=NOW
    )
    refuse(acked, tmp_path, marker, InvalidRecordError, "not allowed to write control records")
    assert_untouched(acked, tmp_path)


def test_the_coordinator_may_write_control_batches(acked) -> None:
    marker = encode_control_batch(
        ControlType.ABORT, producer_id=7, producer_epoch=0, coordinator_epoch=0, timestamp=NOW
    )
    assert acked.append(marker, AppendOrigin.COORDINATOR).base_offset == 2


def test_transactional_batches_are_refused_without_a_transaction(acked, tmp_path) -> None:
    txn = batch((b"x", b"y"), producer_id=9, producer_epoch=0, base_sequence=0, transactional=True)
    refuse(acked, tmp_path, txn, InvalidTxnStateError, "not part of an ongoing transaction")
    assert_untouched(acked, tmp_path)


def test_a_producer_id_needs_a_sequence(acked, tmp_path) -> None:
    forged = batch((b"x", b"y"), producer_id=9, producer_epoch=0, base_sequence=-1)
    refuse(acked, tmp_path, forged, InvalidRecordError, "invalid sequence number -1")
    assert_untouched(acked, tmp_path)


# ---------------------------------------------------------------- topic rules


def test_keyless_records_are_refused_in_compacted_topics(tmp_path) -> None:
    plog = open_log(tmp_path, cleanup_policy="compact")
    records = batch((b"a", b"1"), (None, b"2"), (b"c", b"3"), (None, b"4"))
    exc = refuse(plog, tmp_path, records, RecordValidationError, "2 record errors")
    assert not isinstance(exc, InvalidTimestampError)
    assert [i for i, _ in exc.record_errors] == [1, 3]
    assert "without a key" in exc.record_errors[0][1]
    assert plog.append(batch((b"a", b"1"))).base_offset == 0
    plog.close()
    # A tombstone has a key: it is fine. A topic that only deletes takes keyless records.
    plain = open_log(tmp_path / "plain")
    assert plain.append(batch((None, b"2"))).base_offset == 0
    plain.close()


def test_timestamps_outside_the_topic_bounds_are_refused(tmp_path) -> None:
    plog = open_log(
        tmp_path, message_timestamp_before_max_ms=60_000, message_timestamp_after_max_ms=1_000
    )
    records = batch(
        (b"ok", b"", NOW - 60_000, ()),
        (b"old", b"", NOW - 60_001, ()),
        (b"ok", b"", NOW + 1_000, ()),
        (b"new", b"", NOW + 1_001, ()),
        (b"none", b"", -1, ()),
    )
    exc = refuse(plog, tmp_path, records, InvalidTimestampError, "invalid timestamp")
    assert [i for i, _ in exc.record_errors] == [1, 3]
    assert f"[{NOW - 60_000}, {NOW + 1_000}]" in exc.record_errors[0][1]
    fine = batch((b"ok", b"", NOW - 60_000, ()), (b"none", b"", -1, ()))
    assert plog.append(fine).record_count == 2
    plog.close()


def test_a_client_batch_may_not_claim_log_append_time(acked, tmp_path) -> None:
    forged = batch((b"x", b"y"), log_append_time=True)
    refuse(acked, tmp_path, forged, InvalidTimestampError, "LogAppendTime")
    assert_untouched(acked, tmp_path)


def test_a_wrong_max_timestamp_is_replaced_by_the_records_largest(tmp_path) -> None:
    plog = open_log(tmp_path)
    lying = reseal(batch((b"x", b"1", NOW, ()), (b"y", b"2", NOW + 5, ())), max_timestamp=2**62)
    plog.append(lying)
    stored = bytes(plog.read(0).records)
    header = validate_batch(stored)  # the CRC was recomputed
    assert header.max_timestamp == NOW + 5
    assert [r.timestamp for r in decode_batch(stored).records] == [NOW, NOW + 5]
    assert plog.segments[0].max_timestamp == NOW + 5
    plog.close()


# ------------------------------------------------------------ index atomicity


def test_offsets_an_index_cannot_hold_leave_the_segment_untouched(acked, tmp_path) -> None:
    # append_as_is (compaction, replication) keeps a batch's own offsets: one that lands
    # more than 2**31 - 1 past its segment's base is refused before a byte is written.
    far = batch((b"x", b"y"))
    far = far[:0] + struct.pack(">q", 2**31 + 5) + far[8:]
    before = files_of(tmp_path)
    with pytest.raises(InvalidRecordError, match="cannot be indexed"):
        acked.active_segment.append([(2**31 + 5, memoryview(far)[8:])], [parse_header(far)])
    assert files_of(tmp_path) == before
    assert_untouched(acked, tmp_path)


def test_append_as_is_beyond_the_index_range_is_refused_whole(tmp_path) -> None:
    plog = open_log(tmp_path)
    plog.append(batch((b"a", b"1")))
    far = batch((b"x", b"y"), base_offset=2**31 + 5)
    before = files_of(tmp_path)
    with pytest.raises(InvalidRecordError, match="cannot be indexed"):
        plog.append_as_is(far)
    # The roll before it sealed the first segment and made an empty one; no batch and
    # no index entry of it were written.
    after = files_of(tmp_path)
    first = "00000000000000000000.log"
    assert after[first] == before[first]
    assert all(not v for k, v in after.items() if k not in before)
    assert plog.log_end_offset == 1
    plog.close()
    reopened = PartitionLog.open(str(tmp_path), plog.config, ManualClock(NOW))
    assert [(r.offset, r.key) for r in read_all_records(reopened)] == [(0, b"a")]
    reopened.close()
