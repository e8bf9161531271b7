"""Stored batches the log cannot decode (written before appends were validated): a
decompression bomb or garbage records. Readers get a bounded, specific error; the
cleaner keeps such a batch as it is and compacts the rest; nothing crashes."""

from __future__ import annotations

import tracemalloc

import pytest

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


def seeded_compacted_log(path, clock) -> tuple[PartitionLog, int]:
    """A compacted log: k0..k4 twice over, a stored bomb between, several segments.
    Returns the log and the bomb's offset."""
    plog = PartitionLog.open(str(path), TopicConfig.from_map(COMPACT), clock)
    for i in range(5):
        plog.append(encode_batch([(b"k%d" % i, b"old-%d" % i, NOW, ())]))
    bomb_at = plog.log_end_offset
    plog.append_as_is(bomb_batch(1 << 30, base_offset=bomb_at, timestamp=NOW + 1))
    for i in range(5):
        plog.append(encode_batch([(b"k%d" % i, b"new-%d" % i, NOW + 2, ())]))
    plog.roll()
    return plog, bomb_at


def test_the_cleaner_keeps_an_undecodable_batch_and_compacts_the_rest(tmp_path) -> None:
    clock = ManualClock(NOW)
    plog, bomb_at = seeded_compacted_log(tmp_path, clock)
    assert len(plog.segments) > 3
    result = LogCleaner(clock).clean(plog)
    assert result is not None and result.records_removed == 5
    stored = list(plog.iter_batches())
    # The old values went; the bomb stayed byte for byte (its keys unknown, nothing of
    # it dropped); the new values are there.
    assert stored[0] == bomb_batch(1 << 30, base_offset=bomb_at, timestamp=NOW + 1)
    kept = [(r.offset, r.value) for raw in stored[1:] for r in decode_batch(raw).records]
    assert kept == [(bomb_at + 1 + i, b"new-%d" % i) for i in range(5)]
    plog.close()


def test_offset_for_timestamp_answers_a_bounded_error_for_a_bomb(tmp_path) -> None:
    clock = ManualClock(NOW)
    plog, bomb_at = seeded_compacted_log(tmp_path, clock)
    assert plog.offset_for_timestamp(NOW) == (0, NOW)  # found before the bomb
    with pytest.raises(CorruptRecordError, match="inflates past"):
        plog.offset_for_timestamp(NOW + 1)
    plog.close()
