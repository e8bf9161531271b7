"""Errors raised by the streams layer (apps, topics, agents, the worker)."""

from __future__ import annotations

__all__ = [
    "StreamlogError",
    "ImproperlyConfigured",
    "AppNotFoundError",
    "AgentError",
    "AskTimeoutError",
    "TopicNotDeclaredError",
    "AppNotRunningError",
    "CommitPostponed",
]


class StreamlogError(Exception):
    """Base of the errors the streams layer raises."""


class ImproperlyConfigured(StreamlogError):
    """A setting or declaration that cannot work (named in the message)."""


class AppNotFoundError(StreamlogError):
    """``streamlog worker app.py`` found no ``App`` where it looked."""


class AgentError(StreamlogError):
    """An agent failed and its error policy says the worker must stop."""


class AskTimeoutError(StreamlogError, TimeoutError):
    """``agent.ask`` got no reply in time."""


class TopicNotDeclaredError(StreamlogError):
    """A topic used at run time that the app never declared."""


class AppNotRunningError(StreamlogError):
    """An operation that needs a started app (sending, asking) before ``app.start()``."""


class CommitPostponed(StreamlogError):
    """A commit found events still in processing past its wait; the next one retries."""
