"""What agents, topics, channels, replies and timers need from the app (``App`` fits)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from streamlog.dsl.types import AppCore

if TYPE_CHECKING:
    from streamlog.dsl.agents.replies import ReplyReader
    from streamlog.dsl.agents.topics import Channel, Topic
    from streamlog.dsl.runtime.inbox import Inbox
    from streamlog.serde import Codec

__all__ = ["AgentHost", "TimerHost"]


class AgentHost(AppCore, Protocol):
    """Declaring topics, feeding inboxes, replying."""

    topics: dict[str, Topic]  # declared so far, by name

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
    ) -> Channel: ...

    def attach(self, topic: Topic, inbox: Inbox) -> None:
        """Deliver ``topic``'s records (from the app's consumer) to ``inbox``."""
        ...

    async def ensure_topic(
        self, name: str, partitions: int, configs: Mapping[str, str]
    ) -> bool: ...

    async def replies(self) -> ReplyReader: ...

    async def send_reply(self, reply_to: str, correlation_id: bytes, value: Any) -> None: ...


class TimerHost(AppCore, Protocol):
    """Timers, crontabs and tasks: the clock, and leadership for ``on_leader`` ones."""

    def is_leader(self) -> bool: ...

    async def wait_for_leadership(self) -> None: ...

    def task(self, fun: Callable[..., Any] | None = None, *, on_leader: bool = False) -> Any: ...

    def timer(
        self, interval: float, *, on_leader: bool = False, name: str | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...
