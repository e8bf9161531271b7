"""Copy topics, their records and consumer groups' offsets from one log to another.

``Mirror`` (``mirror.py``) is the engine of ``streamlog mirror`` and ``streamlog migrate``;
``OffsetMap`` (``offset_map.py``) says which target offset a source offset became.
"""

from streamlog.mirror.errors import (
    MirrorError,
    MirrorStateError,
    NoTopicsError,
    SameLogError,
    TargetDivergedError,
    TargetTopicError,
)
from streamlog.mirror.mirror import Mirror
from streamlog.mirror.offset_map import OffsetMap, PartitionOffsets
from streamlog.mirror.results import (
    MirrorOptions,
    MirrorProgress,
    MirrorSummary,
    PartitionProgress,
)

__all__ = [
    "Mirror",
    "MirrorOptions",
    "MirrorProgress",
    "MirrorSummary",
    "PartitionProgress",
    "OffsetMap",
    "PartitionOffsets",
    "MirrorError",
    "MirrorStateError",
    "NoTopicsError",
    "TargetDivergedError",
    "SameLogError",
    "TargetTopicError",
]
