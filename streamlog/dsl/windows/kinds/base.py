"""What every window kind is, as a documented contract (``WindowKind``), and the
per-partition state the kinds keep in memory.

A kind knows which stored windows an event at ``ts`` updates and how a window is found
again for a read; the engine (``streamlog.dsl.windows.engine``) owns partitions, stream
time, closing and expiry, and the store layout is ``streamlog.state.window_store``'s. A
kind is handed the key twice: ``raw`` (the serialised table key, for the in-memory
indexes) and ``prefix`` (``window_key_prefix(raw)``, computed once per access), from
which every window key of the access is made with ``window_key_at``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from streamlog.dsl.errors import WindowedTableError
from streamlog.dsl.windows.due import DueQueue
from streamlog.state.windows import Session, WindowRange

if TYPE_CHECKING:
    from streamlog.state.transaction import PartitionTransaction

__all__ = ["Op", "PartitionWindows", "WindowValues", "WindowKind", "stream_time_of"]

Op = Callable[[Any, Any], Any] | None  # None: assignment


@dataclass(slots=True)
class PartitionWindows:
    """What the windowed layer keeps in memory for one table partition.

    ``expiry`` and ``closing`` schedule the partition's window keys by due stream time.
    ``live`` is, for kinds with ``unique_expiry``, the key of every window in the store or
    the open transaction (created, or rebuilt, and not yet expired): a window not in it
    does not exist, so creating one, or reading one that is not there, reads nothing.
    ``txn`` is the partition's transaction as the engine last had it (asked of the table
    again once it is no longer ``open``); ``saved_by`` the transaction that writes
    ``stream_time`` as it is committed (``PartitionTransaction.before_prepare``), so an
    event that moves stream time does not write it.
    """

    number: int
    stream_time: int | None = None
    advanced_at: int = 0  # app clock (ms) when stream time last moved
    expiry: DueQueue = field(default_factory=DueQueue)
    closing: DueQueue = field(default_factory=DueQueue)
    live: set[bytes] = field(default_factory=set)  # unique_expiry kinds: live windows
    txn: PartitionTransaction | None = None
    saved_by: PartitionTransaction | None = None
    sessions: dict[bytes, list[Session]] = field(default_factory=dict)
    times: dict[bytes, list[int]] = field(default_factory=dict)  # sliding: record times


class WindowValues(Protocol):
    """What a kind needs from its table: values and the scheduling of new windows."""

    closing: bool

    def loads(self, data: bytes) -> Any: ...

    def dumps(self, value: Any) -> bytes: ...

    def initial(self, op: Op) -> Any: ...

    def created(
        self, part: PartitionWindows, txn: PartitionTransaction, key: bytes, end: int
    ) -> None:
        """Schedule the expiry (and closing) of a window the kind just created."""
        ...


def stream_time_of(part: PartitionWindows) -> int:
    """``part``'s stream time, which the engine sets before it applies an event."""
    st = part.stream_time
    if st is None:
        raise WindowedTableError(f"partition {part.number}: a window applied before stream time")
    return st


class WindowKind(Protocol):
    """The contract every window kind fulfils (``Aligned``, ``Tumbling``, ``Sliding``,
    ``Sessions``). State lives in ``PartitionWindows`` and the store, never in the kind.

    Attributes: ``window`` (the declaration, from ``streamlog.state.windows``);
    ``header`` (stored values carry an 8-byte time before the payload); ``unique_expiry``
    (each window is scheduled for expiry once and never recreated after, so expiry may
    delete a due bucket without reading it; such a kind keeps ``PartitionWindows.live``,
    adding each window it creates or rebuilds, and expiry removes the bucket's keys);
    ``close_delay`` and ``expire_delay`` (how long after ``window_end`` stream time must
    be for the window to be closed, resp. deleted);
    ``lifetime`` (how long a window lives in the store: the changelog's retention).
    """

    window: Any
    header: bool
    unique_expiry: bool
    close_delay: int
    expire_delay: int
    lifetime: int

    def apply(
        self,
        values: WindowValues,
        part: PartitionWindows,
        txn: PartitionTransaction,
        raw: bytes,
        prefix: bytes,
        ts: int,
        op: Op,
        operand: Any,
    ) -> bool:
        """Update (``op(old, operand)``, or assign when ``op`` is None) every open window
        an event at ``ts`` belongs to, in ``txn``; new windows are announced through
        ``values.created``. False when every such window is closed (the event is late).
        ``part.stream_time`` is set (the engine advances it before calling)."""
        ...

    def range_of(self, at: int, data: bytes) -> WindowRange:
        """The bounds of the window stored under ``at`` with value ``data``."""
        ...

    def window_end(self, at: int, data: bytes) -> int:
        """The end of the window stored under ``at`` (what closing and expiry count from)."""
        ...

    def window_at(self, part: PartitionWindows, raw: bytes, t: int) -> int | None:
        """The ``at`` of the window a read at time ``t`` sees for key ``raw``, if any."""
        ...

    def windows_at(self, part: PartitionWindows, raw: bytes, t: int) -> list[int]:
        """The ``at`` of every window of key ``raw`` that contains ``t``, oldest first
        (some may be missing from the store or expired: the engine checks). Kafka
        Streams forwards each window an event updated; this is how a reader finds them
        all, not only the one ``window_at`` picks."""
        ...

    def rebuild(self, part: PartitionWindows, raw: bytes, at: int, data: bytes) -> WindowRange:
        """Restore ``part``'s in-memory indexes from one stored window (on assignment,
        before ``finish_rebuild``); returns its bounds."""
        ...

    def finish_rebuild(self, part: PartitionWindows) -> None:
        """Every stored window was passed to ``rebuild``: put the indexes in order."""
        ...

    def forget(self, part: PartitionWindows, raw: bytes, window: WindowRange) -> None:
        """A window expired: drop what the indexes keep for it."""
        ...
