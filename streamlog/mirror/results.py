"""What a mirror is asked to do (``MirrorOptions``) and what it reports: progress after
each checkpoint (``MirrorProgress``) and the summary of a run (``MirrorSummary``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from streamlog.mirror.topics import MirroredTopic
from streamlog.transport.types import TopicPartition

__all__ = [
    "MirrorOptions",
    "PartitionProgress",
    "MirrorSummary",
    "MirrorProgress",
    "ProgressCallback",
]


@dataclass(frozen=True, slots=True)
class MirrorOptions:
    """What to mirror and how often to record progress.

    ``topics``: a regular expression matched against whole topic names, or exact names;
    ``groups``: likewise for consumer groups whose offsets are translated (None: none);
    ``once``: copy what the source holds when the mirror starts, then return;
    ``name``: keys the mirror's state on the target (one name per source);
    ``retry_for_s``: how long outages in a row are ridden out before ``run`` raises.
    """

    topics: str | Sequence[str] = ".*"
    groups: str | Sequence[str] | None = None
    once: bool = False
    name: str = "default"
    checkpoint_interval_s: float = 1.0
    group_sync_interval_s: float = 5.0
    topic_refresh_interval_s: float = 10.0
    retry_for_s: float = 300.0
    max_pending_records: int = 200_000
    producer_linger_ms: int = 20
    compression: str = "none"


@dataclass(slots=True)
class PartitionProgress:
    source_next: int
    target_next: int
    copied: int = 0
    matched: int = 0  # found on the target already after a restart, not sent again
    lag: int | None = None  # source records not copied yet (end offset - source_next)


@dataclass(slots=True)
class MirrorSummary:
    records: int = 0
    bytes: int = 0
    matched: int = 0
    elapsed_s: float = 0.0
    topics: dict[str, MirroredTopic] = field(default_factory=dict)
    partitions: dict[TopicPartition, PartitionProgress] = field(default_factory=dict)
    groups: dict[str, dict[TopicPartition, tuple[int, int]]] = field(default_factory=dict)

    @property
    def records_per_s(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class MirrorProgress:
    """What a progress display is handed after each checkpoint."""

    records: int
    bytes: int
    elapsed_s: float
    lags: dict[TopicPartition, int]


ProgressCallback = Callable[[MirrorProgress], None]
