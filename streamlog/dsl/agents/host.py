"""What agents, topics, channels, replies and timers need from the app (``App`` fits)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from streamlog.dsl.types import AppCore

if TYPE_CHECKING:
    from streamlog.dsl.agents.replies import ReplyReader
    from streamlog.dsl.agents.topics import Channel, Topic
    from streamlog.dsl.runtime.inbox import Inbox
    from streamlog.dsl.runtime.signals import SyncSignal
    from streamlog.serde import Codec

__all__ = ["AgentHost", "TimerHost"]


class AgentHost(AppCore, Protocol):
    """Declaring topics, feeding inboxes, replying."""

    topics: dict[str, Topic]  # declared so far, by name
    on_produce_message: SyncSignal  # told before each record a topic sends (Faust's)
    records_sent: dict[str, dict[str, int]]  # topic -> sending agent (or "") -> records

    def topic(
        self,
        name: str,
        *,
        key_type: Any = None,
        value_type: Any = None,
        key_serializer: str | Codec | None = None,
        value_serializer: str | Codec | None = None,
        partitions: int | None = None,
        retention: Any = None,
        compacting: bool | None = None,
        deleting: bool | None = None,
        config: Mapping[str, Any] | None = None,
        internal: bool = False,
    ) -> Topic:
        """The topic ``name`` (declared now, created at start if missing)."""
        ...

    def channel(
        self,
        *,
        key_type: Any = None,
        value_type: Any = None,
        maxsize: int | None = None,
        name: str | None = None,
    ) -> Channel:
        """A new in-memory channel (Faust's ``app.channel``)."""
        ...

    def attach(self, topic: Topic, inbox: Inbox) -> None:
        """Deliver ``topic``'s records (from the app's consumer) to ``inbox``."""
        ...

    async def ensure_topic(self, name: str, partitions: int, configs: Mapping[str, str]) -> bool:
        """Create ``name`` unless it exists; True if this call created it."""
        ...

    def track_soon(self, task: asyncio.Task[Any]) -> None:
        """A ``send_soon`` in flight: the next commit waits for it."""
        ...

    async def replies(self) -> ReplyReader:
        """The app's reply reader (started on first use): where ``ask`` waits."""
        ...

    async def send_reply(self, reply_to: str, correlation_id: bytes, value: Any) -> None:
        """Send ``value`` to the asker's reply topic, correlated by ``correlation_id``."""
        ...


class TimerHost(AppCore, Protocol):
    """Timers, crontabs and tasks: the clock, and leadership for ``on_leader`` ones."""

    def is_leader(self) -> bool:
        """True on the one worker that leads the app's group."""
        ...

    async def wait_for_leadership(self) -> None:
        """Until this worker is the leader."""
        ...

    def task(self, fun: Callable[..., Any] | None = None, *, on_leader: bool = False) -> Any:
        """Run ``fun`` once the app has started (``@app.task``)."""
        ...

    def timer(
        self, interval: float, *, on_leader: bool = False, name: str | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Run the decorated function every ``interval`` seconds (``@app.timer``)."""
        ...
