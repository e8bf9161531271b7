"""streamlog.dsl: apps, topics, agents, streams, timers and the worker runner."""

from streamlog.dsl.agents.agent import Agent
from streamlog.dsl.agents.stream import Stream
from streamlog.dsl.agents.topics import Channel, Topic
from streamlog.dsl.app.app import App
from streamlog.dsl.errors import (
    AgentError,
    AppNotFoundError,
    AppNotRunningError,
    AskTimeoutError,
    ImproperlyConfigured,
    StreamlogError,
    StreamsError,
)
from streamlog.dsl.runtime.clock import AsyncClock, ManualAsyncClock, SystemAsyncClock
from streamlog.dsl.runtime.events import Event, Message
from streamlog.dsl.settings import Settings

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
    "StreamsError",
    "SystemAsyncClock",
    "Topic",
]
