"""Stored batches the log cannot decode (written before appends were validated): a
decompression bomb or garbage records. Readers get a bounded, specific error; the
cleaner keeps such a batch as it is and compacts the rest; nothing crashes."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from crc32c import crc32c

from streamlog.log.cleaner import LogCleaner
from streamlog.log.clock import ManualClock
from streamlog.log.compression import DEFAULT_DECOMPRESSED_LIMIT, Compression, decompress
from streamlog.log.config import TopicConfig
from streamlog.log.errors import CorruptRecordError, DecompressionLimitError
from streamlog.log.partition_log import PartitionLog
from streamlog.log.records import decode_batch, encode_batch

from .logutil import bomb_batch, zstd_bomb

NOW = 1_700_000_000_000
COMPACT = {
    "cleanup.policy": "compact",
    "segment.bytes": "600",
    "min.cleanable.dirty.ratio": "0.01",
}


def test_a_16_gib_bomb_stops_at_the_bound_without_allocating_it() -> None:
    payload = zstd_bomb(16 << 30)
    assert len(payload) < 600_000
    tracemalloc.start()
    try:
        with pytest.raises(DecompressionLimitError, match="inflates past 1048576"):
            decompress(Compression.ZSTD, payload, 1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # the bound and a step, not gigabytes


def test_decode_batch_of_a_bomb_raises_at_the_default_bound() -> None:
    with pytest.raises(DecompressionLimitError, match=str(DEFAULT_DECOMPRESSED_LIMIT)):
        decode_batch(bomb_batch(16 << 30))


def garbage_records_batch(base_offset: int, timestamp: int) -> bytes:
    """A CRC-valid batch whose one record has a 6-byte varint: what stalled librdkafka
    and failed every maintenance pass of a compacted topic."""
    section = b"\x0c\x00\x00\x00\xff\xff\xff\xff\xff\x01\x01\x00"
    head = struct.pack(
        ">qiibIhiqqqhii",
        base_offset,
        49 + len(section),
        -1,
        2,
        0,
        0,
        0,
        timestamp,
        timestamp,
        -1,
        -1,
        -1,
        1,
    )
    buf = bytearray(head + section)
    struct.pack_into(">I", buf, 17, crc32c(bytes(buf[21:])))
    return bytes(buf)


BAD_BATCHES = {
    "bomb": lambda at: bomb_batch(1 << 30, base_offset=at, timestamp=NOW + 1),
    "garbage-records": lambda at: garbage_records_batch(at, NOW + 1),
}


def seeded_compacted_log(path, clock, bad: str = "bomb") -> tuple[PartitionLog, int]:
    """A compacted log: k0..k4 twice over, a stored undecodable batch between, several
    segments. Returns the log and the bad batch's offset."""
    plog = PartitionLog.open(str(path), TopicConfig.from_map(COMPACT), clock)
    for i in range(5):
        plog.append(encode_batch([(b"k%d" % i, b"old-%d" % i, NOW, ())]))
    bomb_at = plog.log_end_offset
    plog.append_as_is(BAD_BATCHES[bad](bomb_at))
    for i in range(5):
        plog.append(encode_batch([(b"k%d" % i, b"new-%d" % i, NOW + 2, ())]))
    plog.roll()
    return plog, bomb_at


@pytest.mark.parametrize("bad", sorted(BAD_BATCHES))
def test_the_cleaner_keeps_an_undecodable_batch_and_compacts_the_rest(tmp_path, bad) -> None:
    clock = ManualClock(NOW)
    plog, bomb_at = seeded_compacted_log(tmp_path, clock, bad)
    assert len(plog.segments) >= 3  # two or more to clean, and the active one
    cleaner = LogCleaner(clock)
    result = cleaner.clean(plog)
    assert result is not None and result.records_removed == 5
    stored = list(plog.iter_batches())
    # The old values went; the bad batch stayed byte for byte (its keys unknown, nothing
    # of it dropped); the new values are there.
    assert stored[0] == BAD_BATCHES[bad](bomb_at)
    kept = [(r.offset, r.value) for raw in stored[1:] for r in decode_batch(raw).records]
    assert kept == [(bomb_at + 1 + i, b"new-%d" % i) for i in range(5)]
    # A later pass over more appends does not fail on it either.
    for i in range(5):
        plog.append(encode_batch([(b"k%d" % i, b"newer-%d" % i, NOW + 3, ())]))
    plog.roll()
    assert cleaner.clean(plog) is not None
    assert list(plog.iter_batches())[0] == BAD_BATCHES[bad](bomb_at)
    plog.close()


def test_offset_for_timestamp_answers_a_bounded_error_for_a_bomb(tmp_path) -> None:
    clock = ManualClock(NOW)
    plog, bomb_at = seeded_compacted_log(tmp_path, clock)
    assert plog.offset_for_timestamp(NOW) == (0, NOW)  # found before the bomb
    with pytest.raises(CorruptRecordError, match="inflates past"):
        plog.offset_for_timestamp(NOW + 1)
    plog.close()
