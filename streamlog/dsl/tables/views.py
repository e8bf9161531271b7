"""What a table shares with its windowed views (``streamlog.dsl.windows``): the Protocol
of a windowed table and of a listener to the table's partitions, and the callback types."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from streamlog.state.stores import StorePartition
from streamlog.state.windows import WindowRange

__all__ = ["PartitionListener", "WindowedView", "OnWindowClose", "OnLate"]

OnWindowClose = Callable[[Any, WindowRange, Any], Any]
"""``on_window_close(key, window, value)`` (Faust's ``((key, window), value)`` too)."""
OnLate = Callable[[Any, Any, int], Any]
"""``on_late(key, value, timestamp_ms)``: an event that every window it belongs to closed."""


class PartitionListener(Protocol):
    """Told when this worker's table partitions come and go (a windowed table's engine
    keeps in-memory state per partition)."""

    def partition_ready(self, number: int, store: StorePartition) -> None:
        """Partition ``number`` was recovered into ``store``; events for it follow."""
        ...

    def partition_revoked(self, number: int) -> None:
        """Partition ``number`` went to another worker (its store is closed next)."""
        ...

    def closed(self) -> None:
        """The table is closed (the app stopped)."""
        ...


class WindowedView(Protocol):
    """What ``tumbling``/``hopping``/``sliding``/``session`` return (``streamlog.dsl.windows``
    implements it): the windowed table, which the plain table delegates to once windowed."""

    def __getitem__(self, key: Any) -> Any: ...

    def items(self) -> Iterator[tuple[tuple[Any, WindowRange], Any]]:
        """((key, window), value) of every live window owned here."""
        ...

    def __len__(self) -> int: ...

    def as_ansitable(self, *, title: str | None = None, sort: bool = True, limit: int = 0) -> str:
        """The windows as a text table for people."""
        ...

    def relative_to_now(self) -> WindowedView:
        """A view whose event time is the app clock."""
        ...

    def relative_to_stream(self) -> WindowedView:
        """A view whose event time is the current event's timestamp."""
        ...

    def relative_to_field(self, fld: Any) -> WindowedView:
        """A view whose event time is a field of the current event's value."""
        ...

    def emit_final(self, target: Any) -> WindowedView:
        """Send each window's final value to ``target`` once it closes."""
        ...
