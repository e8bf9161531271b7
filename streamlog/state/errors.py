"""Errors raised by table state: stores, transactions, checkpoints, changelogs, recovery.

Everything here derives from ``StateError``, so the streams core can tell a state failure
from a transport failure (``streamlog.transport.TransportError``), which state code lets
through unchanged or chains as the cause.
"""

from __future__ import annotations

from streamlog.errors import StreamlogError

__all__ = [
    "StateError",
    "StoreError",
    "StoreClosedError",
    "StoreLockedError",
    "TransactionStateError",
    "CheckpointError",
    "CheckpointClosedError",
    "OffsetsNotCommittedError",
    "ChangelogError",
    "ChangelogPartitionsError",
    "RecoveryError",
    "RecoveryStalledError",
    "WindowConfigError",
    "WindowKeyError",
]


class StateError(StreamlogError):
    """Base of every error table state raises on purpose."""


class StoreError(StateError):
    """A store partition could not be opened, read or written."""


class StoreClosedError(StoreError):
    """The store partition was closed (or destroyed)."""


class StoreLockedError(StoreError):
    """Another process, or another handle in this one, has the RocksDB directory open.

    Never treated as corruption: wiping a database another worker is using would lose
    its state, so opening fails instead.
    """


class TransactionStateError(StateError):
    """A transaction was used out of order (a write after ``prepare``, a flush before the
    changelog was acknowledged, anything after a failure)."""


class CheckpointError(StateError):
    """A commit failed at ``step`` (1-4 of ``checkpoint.py``); source offsets are not
    committed, the cause is chained. The checkpoint is closed afterwards."""

    def __init__(self, step: int, message: str) -> None:
        super().__init__(f"commit failed at step {step}: {message}")
        self.step = step


class OffsetsNotCommittedError(CheckpointError):
    """Step 4 failed: everything the events caused is durable (outputs and changelogs
    acknowledged, stores written) but the group refused or missed their source offsets
    (a rebalance, an outage). The checkpoint stays usable: a later commit covers those
    offsets, or the partitions' next owner processes those events again."""

    def __init__(self, message: str) -> None:
        super().__init__(4, message)


class ExactlyOnceError(StateError):
    """An exactly-once transaction could not commit and was aborted (or the producer can
    no longer transact: fenced by a newer instance, the coordinator unreachable): the
    events since the last commit must be processed again from the committed offsets."""


class TransactionAbortedError(CheckpointError):
    """Exactly-once: the commit's transaction was aborted (the group refused its offsets:
    a rebalance, a generation this worker no longer has) but the producer goes on. Nothing
    of the events since the last commit is visible and no store was written: the worker
    processes them again from the committed offsets, with the tables as committed."""

    def __init__(self, message: str) -> None:
        super().__init__(4, message)


class CheckpointClosedError(StateError):
    """The checkpoint failed earlier (or was discarded): make a new one after the tables
    are recovered and the sources are positioned at their committed offsets."""


class ChangelogError(StateError):
    """A changelog topic name or topic is not usable."""


class ChangelogPartitionsError(ChangelogError):
    """The changelog topic exists with a partition count other than the table's."""


class RecoveryError(StateError):
    """A changelog partition could not be replayed into its store partition."""


class RecoveryStalledError(RecoveryError):
    """No changelog records arrived within the idle bound while records were still due."""


class WindowConfigError(StateError, ValueError):
    """A window was declared with sizes that cannot work (zero size, step > size, ...)."""


class WindowKeyError(StateError, ValueError):
    """Bytes handed to ``split_window_key`` are not a window key, or a start is out of range."""
