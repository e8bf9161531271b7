"""streamlog.dsl: apps, topics, agents, streams, timers and the worker runner."""

from streamlog.dsl.agent import Agent
from streamlog.dsl.app import App
from streamlog.dsl.clock import AsyncClock, ManualAsyncClock, SystemAsyncClock
from streamlog.dsl.errors import (
    AgentError,
    AppNotFoundError,
    AppNotRunningError,
    AskTimeoutError,
    ImproperlyConfigured,
    StreamlogError,
)
from streamlog.dsl.events import Event, Message
from streamlog.dsl.settings import Settings
from streamlog.dsl.stream import Stream
from streamlog.dsl.topics import Channel, Topic

__all__ = [
    "Agent",
    "AgentError",
    "App",
    "AppNotFoundError",
    "AppNotRunningError",
    "AskTimeoutError",
    "AsyncClock",
    "Channel",
    "Event",
    "ImproperlyConfigured",
    "ManualAsyncClock",
    "Message",
    "Settings",
    "Stream",
    "StreamlogError",
    "SystemAsyncClock",
    "Topic",
]
