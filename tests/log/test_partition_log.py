"""PartitionLog: appends, reads, offsets, rolling, truncation, retention, timestamps."""

from __future__ import annotations

import os

import pytest

from streamlog.log.batch_header import parse_header
from streamlog.log.clock import ManualClock
from streamlog.log.config import TopicConfig
from streamlog.log.errors import (
    CorruptRecordError,
    InvalidRecordError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
)
from streamlog.log.partition_log import PartitionLog
from streamlog.log.records import decode_batch

from .logutil import make_batch, read_all_records, records_in


def open_log(path, clock=None, **configs) -> PartitionLog:
    cfg = TopicConfig.from_map({k.replace("_", "."): v for k, v in configs.items()})
    return PartitionLog.open(str(path), cfg, clock or ManualClock())


def test_appends_assign_consecutive_offsets_and_reads_return_them(tmp_path) -> None:
    plog = open_log(tmp_path)
    first = plog.append(make_batch(5))
    second = plog.append(make_batch(3, start=5))
    assert (first.base_offset, first.last_offset) == (0, 4)
    assert (second.base_offset, second.last_offset) == (5, 7)
    assert (plog.log_start_offset, plog.log_end_offset, plog.high_watermark) == (0, 8, 8)
    records = read_all_records(plog)
    assert [r.offset for r in records] == list(range(8))
    assert [r.key for r in records] == [f"k{i}".encode() for i in range(8)]
    assert records[6].value.startswith(b"v6.")
    plog.close()


def test_stored_bytes_are_the_produced_bytes_but_for_the_base_offset(tmp_path) -> None:
    plog = open_log(tmp_path)
    plog.append(make_batch(2))
    batch = make_batch(4, start=2)
    plog.append(batch)
    stored = plog.read(2).records
    assert stored[8:] == batch[8:]
    assert int.from_bytes(stored[:8], "big") == 2
    plog.close()


def test_one_request_with_several_batches_gets_one_offset_range(tmp_path) -> None:
    plog = open_log(tmp_path)
    result = plog.append(make_batch(2) + make_batch(3, start=2))
    assert (result.base_offset, result.last_offset, result.record_count) == (0, 4, 5)
    assert [r.offset for r in read_all_records(plog)] == [0, 1, 2, 3, 4]
    plog.close()


def test_read_at_log_end_is_empty_and_outside_the_log_is_out_of_range(tmp_path) -> None:
    plog = open_log(tmp_path)
    plog.append(make_batch(3))
    assert plog.read(3).records == b""
    with pytest.raises(OffsetOutOfRangeError) as info:
        plog.read(4)
    assert (info.value.log_start_offset, info.value.log_end_offset) == (0, 3)
    plog.close()


def test_read_from_the_middle_of_a_batch_returns_the_whole_batch(tmp_path) -> None:
    plog = open_log(tmp_path)
    plog.append(make_batch(10))
    data = plog.read(7).records
    assert parse_header(data).base_offset == 0
    assert len(records_in(data)) == 10
    plog.close()


def test_read_respects_max_bytes_but_returns_at_least_one_batch(tmp_path) -> None:
    plog = open_log(tmp_path)
    for i in range(10):
        plog.append(make_batch(10, start=i * 10))
    two_batches = len(make_batch(10)) + len(make_batch(10, start=10))
    data = plog.read(0, max_bytes=two_batches + 500).records
    assert len(records_in(data)) == 20
    assert len(data) == two_batches
    tiny = plog.read(0, max_bytes=10).records
    assert len(records_in(tiny)) == 10
    plog.close()


def test_segments_roll_by_size_and_reads_cross_them(tmp_path) -> None:
    plog = open_log(tmp_path, segment_bytes=5000)
    for i in range(50):
        plog.append(make_batch(4, start=i * 4))
    assert len(plog.segments) > 5
    names = sorted(os.listdir(tmp_path))
    bases = [s.base_offset for s in plog.segments]
    for base in bases:
        assert f"{base:020d}.log" in names
        assert f"{base:020d}.index" in names
        assert f"{base:020d}.timeindex" in names
    assert all(s.size <= 5000 for s in plog.segments)
    assert [r.offset for r in read_all_records(plog)] == list(range(200))
    plog.close()


def test_segments_roll_by_age(tmp_path) -> None:
    clock = ManualClock()
    plog = open_log(tmp_path, clock, segment_ms=1000)
    plog.append(make_batch(1))
    clock.advance(500)
    plog.append(make_batch(1, start=1))
    assert len(plog.segments) == 1
    clock.advance(600)
    plog.append(make_batch(1, start=2))
    assert [s.base_offset for s in plog.segments] == [0, 2]
    plog.close()


def test_invalid_batches_are_refused_and_nothing_is_appended(tmp_path) -> None:
    plog = open_log(tmp_path, max_message_bytes=2000)
    good = make_batch(2)
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError, match="CRC"):
        plog.append(good + bytes(bad_crc))
    with pytest.raises(CorruptRecordError, match="truncated"):
        plog.append(good[:-3])
    old_magic = bytearray(good)
    old_magic[16] = 1
    with pytest.raises(InvalidRecordError, match="magic"):
        plog.append(bytes(old_magic))
    with pytest.raises(RecordTooLargeError, match="max.message.bytes"):
        plog.append(make_batch(30))
    with pytest.raises(InvalidRecordError):
        plog.append(b"")
    assert plog.log_end_offset == 0 and plog.size_bytes == 0
    plog.append(good)
    assert plog.log_end_offset == 2
    plog.close()


def test_log_append_time_stamps_the_batch(tmp_path) -> None:
    clock = ManualClock(5_000_000)
    plog = open_log(tmp_path, clock, message_timestamp_type="LogAppendTime")
    result = plog.append(make_batch(3, ts=10))
    assert result.log_append_time == 5_000_000
    batch = decode_batch(plog.read(0).records)
    assert batch.header.is_log_append_time
    assert [r.timestamp for r in batch.records] == [5_000_000] * 3
    plog.close()


def test_offset_for_timestamp_finds_the_first_record_at_or_after(tmp_path) -> None:
    plog = open_log(tmp_path, segment_bytes=3000, index_interval_bytes=500)
    for i in range(40):
        plog.append(make_batch(5, start=i * 5, ts=10_000 + i * 100))
    # record at offset o has timestamp 10_000 + (o // 5) * 100 + o % 5
    assert plog.offset_for_timestamp(0) == (0, 10_000)
    assert plog.offset_for_timestamp(10_000 + 17 * 100 + 3) == (17 * 5 + 3, 10_000 + 1703)
    assert plog.offset_for_timestamp(10_000 + 17 * 100 + 5) == (18 * 5, 10_000 + 1800)
    assert plog.offset_for_timestamp(10_000 + 39 * 100 + 5) is None
    plog.close()


def test_offset_for_timestamp_with_out_of_order_timestamps(tmp_path) -> None:
    plog = open_log(tmp_path, index_interval_bytes=1)
    stamps = [50, 10, 70, 20, 90, 30]
    for i, ts in enumerate(stamps):
        plog.append(make_batch(1, start=i, ts=ts))
    assert plog.offset_for_timestamp(60) == (2, 70)
    assert plog.offset_for_timestamp(15) == (0, 50)
    assert plog.offset_for_timestamp(80) == (4, 90)
    plog.close()


def test_truncate_to_removes_the_tail_across_segments(tmp_path) -> None:
    plog = open_log(tmp_path, segment_bytes=3000)
    for i in range(30):
        plog.append(make_batch(2, start=i * 2))
    plog.truncate_to(21)  # the batch 20..21 straddles 21: batches are never split
    assert plog.log_end_offset == 22
    plog.truncate_to(20)
    assert plog.log_end_offset == 20
    assert [r.offset for r in read_all_records(plog)] == list(range(20))
    result = plog.append(make_batch(1, start=99))
    assert result.base_offset == 20
    plog.close()
    reopened = open_log(tmp_path, segment_bytes=3000)
    assert reopened.log_end_offset == 21
    reopened.close()


def test_delete_records_before_moves_the_log_start(tmp_path) -> None:
    plog = open_log(tmp_path, segment_bytes=2000)
    for i in range(30):
        plog.append(make_batch(2, start=i * 2))
    segments = len(plog.segments)
    deleted = plog.delete_records_before(33)
    assert plog.log_start_offset == 33
    assert deleted >= 1 and len(plog.segments) == segments - deleted
    with pytest.raises(OffsetOutOfRangeError):
        plog.read(10)
    assert read_all_records(plog)[0].offset == 33
    plog.close()
    reopened = open_log(tmp_path, segment_bytes=2000)
    assert reopened.log_start_offset == 33
    reopened.close()


def test_retention_by_time_deletes_old_segments_only(tmp_path) -> None:
    clock = ManualClock(1_000_000)
    plog = open_log(tmp_path, clock, segment_bytes=2000, retention_ms=10_000)
    for i in range(10):
        plog.append(make_batch(2, start=i * 2, ts=clock.time_ms()))
    clock.advance(20_000)
    for i in range(10, 20):
        plog.append(make_batch(2, start=i * 2, ts=clock.time_ms()))
    deleted = plog.enforce_retention()
    assert deleted > 0
    # Whole segments only: one that also holds new records stays.
    assert all(s.max_timestamp >= clock.time_ms() - 10_000 for s in plog.segments)
    assert 0 < plog.log_start_offset == plog.segments[0].base_offset <= 20
    remaining = read_all_records(plog)
    assert [r.offset for r in remaining] == list(range(plog.log_start_offset, 40))
    # An idle topic empties out: the expired active segment is rolled and removed.
    clock.advance(60_000)
    plog.enforce_retention()
    assert plog.log_start_offset == plog.log_end_offset == 40
    assert plog.append(make_batch(1, start=40)).base_offset == 40
    plog.close()


def test_retention_by_size_keeps_the_newest_bytes(tmp_path) -> None:
    plog = open_log(tmp_path, segment_bytes=2000, retention_bytes=5000, retention_ms=-1)
    for i in range(40):
        plog.append(make_batch(2, start=i * 2))
    plog.enforce_retention()
    assert plog.size_bytes <= 5000 + 2000
    assert plog.size_bytes - plog.segments[0].size < 5000
    assert read_all_records(plog)[-1].offset == 79
    plog.close()


def test_compact_only_topics_are_not_deleted_by_retention(tmp_path) -> None:
    clock = ManualClock()
    plog = open_log(tmp_path, clock, cleanup_policy="compact", segment_bytes=1000, retention_ms=1)
    for i in range(10):
        plog.append(make_batch(2, start=i * 2))
    clock.advance(1_000_000)
    assert plog.enforce_retention() == 0
    assert plog.log_start_offset == 0
    plog.close()


def test_flush_policy_every_message_advances_the_recovery_point(tmp_path) -> None:
    plog = open_log(tmp_path, flush_messages=1)
    plog.append(make_batch(3))
    assert plog.recovery_point == 3 and plog.unflushed_messages == 0
    plog.close()
    lazy = open_log(tmp_path / "lazy")
    lazy.append(make_batch(3))
    assert lazy.recovery_point == 0 and lazy.unflushed_messages == 3
    lazy.close()


def test_sync_records_leaves_the_recovery_point_and_a_crash_keeps_the_records(
    tmp_path,
) -> None:
    """``sync_records`` fdatasyncs the record files only: the recovery point stays, so
    after a crash the records past it are recovered by the scan, indexes rebuilt."""
    plog = open_log(tmp_path, segment_bytes=300)
    for i in range(6):
        plog.append(make_batch(2, start=2 * i))
    assert len(plog.segments) > 1
    plog.sync_records()
    assert plog.recovery_point == 0 and plog.unflushed_messages == 12
    before = read_all_records(plog)
    plog.close_unclean()
    plog = open_log(tmp_path, segment_bytes=300)
    assert read_all_records(plog) == before and len(before) == 12
    assert plog.offset_for_timestamp(0) is not None  # the rebuilt time index answers
    plog.close()


def test_flush_ms_flushes_on_append_and_on_timer(tmp_path) -> None:
    clock = ManualClock()
    plog = open_log(tmp_path, clock, flush_ms=100)
    plog.append(make_batch(1))
    assert plog.recovery_point == 0
    clock.advance(150)
    assert plog.flush_if_due()
    assert plog.recovery_point == 1
    plog.close()


def test_reopen_after_clean_close_keeps_everything(tmp_path) -> None:
    plog = open_log(tmp_path, segment_bytes=3000)
    for i in range(25):
        plog.append(make_batch(3, start=i * 3))
    before = read_all_records(plog)
    plog.close()
    assert os.path.exists(tmp_path / "clean-shutdown")
    reopened = open_log(tmp_path, segment_bytes=3000)
    assert not os.path.exists(tmp_path / "clean-shutdown")
    assert reopened.recovery_report.clean
    assert reopened.recovery_report.segments_scanned == 0
    assert read_all_records(reopened) == before
    assert reopened.append(make_batch(1, start=75)).base_offset == 75
    reopened.close()
