"""What every room of ``streamlog.dsl`` may know of the app: small Protocols, not ``App``.

Agents, tables, windows, joins and the topology depend on these instead of the concrete
``App`` (which lives in the top room, ``app/``, and imports them all): each room declares
what it needs from its host as a Protocol extending ``AppCore`` (``agents/host.py``,
``tables/host.py``, ...), so a room can be read, tested and changed knowing exactly what
it relies on. ``App`` satisfies every one of them. See docs/architecture.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from streamlog.dsl.runtime.barrier import ProcessingBarrier
    from streamlog.dsl.runtime.clock import AsyncClock
    from streamlog.dsl.settings import Settings
    from streamlog.serde import CodecRegistry
    from streamlog.transport.base import Producer, Transport

__all__ = ["AppCore"]


class AppCore(Protocol):
    """What any room may read of a running app.

    ``clock`` and ``barrier`` are None before ``start`` (the barrier stays None for apps
    without tables); ``transport`` and ``producer`` raise ``AppNotRunningError`` then.
    ``crash`` stops the worker with the reason (it exits 1 and says why).
    """

    conf: Settings
    clock: AsyncClock | None
    barrier: ProcessingBarrier | None
    codecs: CodecRegistry
    started: bool
    stopping: bool

    @property
    def transport(self) -> Transport:
        """The open transport (``AppNotRunningError`` before the start)."""
        ...

    @property
    def producer(self) -> Producer:
        """The app's producer (``AppNotRunningError`` before the start)."""
        ...

    def crash(self, reason: BaseException) -> None:
        """Stop the worker with ``reason`` (it exits 1 and says why)."""
        ...
