"""The offset map: source offsets to target offsets, exact across gaps on either side."""

from __future__ import annotations

from streamlog.mirror.offset_map import OffsetMap, PartitionOffsets
from streamlog.transport.types import TopicPartition

TP = TopicPartition("orders", 0)


def copied(pairs: list[tuple[int, int]], start: tuple[int, int] = (0, 0)) -> PartitionOffsets:
    entry = PartitionOffsets(*start)
    for source, target in pairs:
        entry.note(source, target)
    return entry


def test_a_gapless_copy_needs_one_breakpoint():
    entry = copied([(i, i + 100) for i in range(1000)])
    assert list(zip(entry.sources, entry.targets, strict=True)) == [(0, 100)]
    assert [entry.translate(c) for c in (0, 1, 999, 1000)] == [100, 101, 1099, 1100]
    assert entry.translate(1001) is None  # beyond what was copied


def test_gaps_translate_to_the_first_copied_record_at_or_after():
    # source 10, 11 | marker at 12 | 13 | aborted 14-16 | 17: target 0..3
    entry = copied([(10, 0), (11, 1), (13, 2), (17, 3)], start=(10, 0))
    assert list(zip(entry.sources, entry.targets, strict=True)) == [(10, 0), (13, 2), (17, 3)]
    expected = {10: 0, 11: 1, 12: 2, 13: 2, 14: 3, 15: 3, 16: 3, 17: 3, 18: 4}
    assert {c: entry.translate(c) for c in expected} == expected
    # before the first copied record (removed by retention before the mirror started)
    assert entry.translate(3) == 0


def test_a_gap_after_the_last_copied_record_ends_at_the_target_end():
    entry = copied([(0, 0), (1, 1)])
    entry.source_next = 5  # markers at 2..4 read past
    assert [entry.translate(c) for c in (1, 2, 4, 5)] == [1, 2, 2, 2]
    assert entry.translate(6) is None


def test_nothing_copied_yet_translates_to_the_target_end():
    entry = PartitionOffsets(source_next=40, target_next=7)
    assert entry.translate(0) == 7 and entry.translate(40) == 7
    assert entry.translate(41) is None


def test_breakpoints_read_back_and_forgotten_after_a_checkpoint():
    entry = PartitionOffsets(source_next=20, target_next=9)
    for source, target in [(17, 8), (0, 0), (10, 5)]:  # any order
        entry.add_breakpoint(source, target)
    assert list(entry.sources) == [0, 10, 17] and list(entry.targets) == [0, 5, 8]
    entry.forget_from(17)
    assert list(entry.sources) == [0, 10]
    # matched again after the restart: the same breakpoint comes back
    assert entry.note(17, 8) is True and list(entry.sources) == [0, 10, 17]
    assert entry.note(18, 9) is False


def test_the_map_answers_none_for_partitions_it_does_not_mirror():
    offsets = OffsetMap()
    offsets.start(TP, 0, 0).note(0, 0)
    assert TP in offsets and offsets.translate(TP, 1) == 1
    assert offsets.translate(TopicPartition("orders", 1), 0) is None
    assert offsets.partitions() == [TP]
