"""The mirror's errors: what ``streamlog mirror`` and ``streamlog migrate`` report and stop on."""

from __future__ import annotations

from streamlog.errors import StreamlogError

__all__ = [
    "MirrorRunningError",
    "LeaseLostError",
    "MirrorError",
    "NoTopicsError",
    "TargetDivergedError",
    "TargetTopicError",
    "MirrorStateError",
    "SameLogError",
    "MigrationError",
    "MigrationRefusedError",
    "AppRunningError",
]


class MirrorError(StreamlogError):
    """Base of the mirror's errors."""


class NoTopicsError(MirrorError):
    """The topics asked for are not on the source (an exact name missing, or ``--once``
    with a pattern that matches nothing): copying nothing would look like success."""


class TargetDivergedError(MirrorError):
    """A target partition does not hold what the mirror's checkpoint says it wrote: someone
    else wrote to it, or it was emptied or recreated. Resuming would duplicate or skip
    records, so the mirror stops and leaves both sides as they are."""


class TargetTopicError(MirrorError):
    """A target topic cannot take the source's partitions (fewer of them, and the target
    cannot add partitions)."""


class MirrorStateError(MirrorError):
    """A record of the mirror's own state topics on the target cannot be read."""


class SameLogError(MirrorError):
    """The source and the target are one log reached by two URLs: mirroring it onto itself
    would append every record again, and a continuous mirror would copy its own copies."""


class MigrationError(MirrorError):
    """``streamlog migrate`` failed part way (the message says what was done)."""


class MigrationRefusedError(MigrationError):
    """``streamlog migrate`` refused before changing anything (the message says why and
    what to do): stores in the way, no log at the source, nothing of the app there."""


class AppRunningError(MigrationRefusedError):
    """The app runs: a worker holds its ``file://`` log, or its group has members on the
    source or the target."""


class LeaseLostError(MirrorError):
    """Another mirror of the same name holds the lease now (``lease.py``): this one stops
    writing and waits as a standby."""


class MirrorRunningError(MirrorError):
    """A ``--once`` run while another mirror of the same name runs on the target."""
