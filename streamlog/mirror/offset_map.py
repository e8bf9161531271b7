"""Which target offset a source offset became: the mirror's offset translation.

A mirrored partition's records keep their order, but not their offsets: the source may
have gaps (transaction markers, aborted records the mirror does not copy, records removed
by compaction or retention) and the target may already hold records. Within a run of
records copied back to back, target - source is constant; the map keeps one breakpoint
``(source offset, target offset)`` wherever that difference changes, which is exact and
small (one entry per gap, none for a gapless log). MirrorMaker 2 instead emits offset
syncs every so often and translates conservatively, which makes a moved consumer group
read some records again; a migrated app must not.
"""

from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass, field

from streamlog.transport.types import TopicPartition

__all__ = ["OffsetMap", "PartitionOffsets"]


@dataclass(slots=True)
class PartitionOffsets:
    """One partition's breakpoints and how far the mirror has copied it.

    ``source_next``: the next source offset to read (everything before it was copied or
    skipped on purpose); ``target_next``: the target offset the next copied record gets.
    """

    source_next: int
    target_next: int
    # breakpoints' source offsets, ascending, and their target offsets: 16 bytes each (a
    # compacted source can have a gap at every record)
    sources: array[int] = field(default_factory=lambda: array("q"))
    targets: array[int] = field(default_factory=lambda: array("q"))

    def note(self, source: int, target: int) -> bool:
        """Record that the record at source offset ``source`` was copied to ``target``
        (offsets ascending on both sides); True when that made a new breakpoint."""
        self.source_next = source + 1
        self.target_next = target + 1
        if self.sources and source - self.sources[-1] == target - self.targets[-1]:
            return False
        self.sources.append(source)
        self.targets.append(target)
        return True

    def add_breakpoint(self, source: int, target: int) -> None:
        """A breakpoint read back from the mirror's offset syncs (any order)."""
        at = bisect.bisect_left(self.sources, source)
        if at < len(self.sources) and self.sources[at] == source:
            self.targets[at] = target
            return
        self.sources.insert(at, source)
        self.targets.insert(at, target)

    def forget_from(self, source: int) -> None:
        """Drop the breakpoints at or after ``source`` (written after the checkpoint the
        mirror resumes from: they are made again as the records are matched)."""
        at = bisect.bisect_left(self.sources, source)
        del self.sources[at:]
        del self.targets[at:]

    def translate(self, offset: int) -> int | None:
        """The target offset of the first copied record at or after source ``offset``
        (``target_next`` when there is none yet); None beyond what was copied."""
        if offset > self.source_next:
            return None
        at = bisect.bisect_right(self.sources, offset) - 1
        if at < 0:
            return self.targets[0] if self.targets else self.target_next
        candidate = self.targets[at] + (offset - self.sources[at])
        bound = self.targets[at + 1] if at + 1 < len(self.targets) else self.target_next
        return min(candidate, bound)


class OffsetMap:
    """Per mirrored partition, its ``PartitionOffsets``."""

    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, PartitionOffsets] = {}

    def __contains__(self, tp: object) -> bool:
        return tp in self._partitions

    def __getitem__(self, tp: TopicPartition) -> PartitionOffsets:
        return self._partitions[tp]

    def start(self, tp: TopicPartition, source_next: int, target_next: int) -> PartitionOffsets:
        """The partition's entry, made at the given position when it has none."""
        entry = self._partitions.get(tp)
        if entry is None:
            entry = self._partitions[tp] = PartitionOffsets(source_next, target_next)
        return entry

    def partitions(self) -> list[TopicPartition]:
        return sorted(self._partitions)

    def translate(self, tp: TopicPartition, offset: int) -> int | None:
        """The target offset for source ``offset`` of ``tp`` (``PartitionOffsets.translate``);
        None when the partition is not mirrored or ``offset`` is beyond what was copied."""
        entry = self._partitions.get(TopicPartition(*tp))
        return None if entry is None else entry.translate(offset)
