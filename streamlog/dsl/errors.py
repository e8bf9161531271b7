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
    "PartitionNotOwnedError",
    "WindowedTableError",
    "SessionMergeError",
    "CrontabError",
    "WebServerError",
    "JoinError",
    "CoPartitioningError",
    "FeatureUnavailableError",
    "GraphvizNotFoundError",
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


class PartitionNotOwnedError(StreamlogError):
    """A table key whose partition is not assigned to this worker."""


class WindowedTableError(StreamlogError):
    """A windowed table used in a way that cannot work (named in the message)."""


class SessionMergeError(WindowedTableError):
    """Two sessions merged whose values have no default merge (pass ``merge=``)."""


class CrontabError(StreamlogError, ValueError):
    """A crontab expression cannot be parsed or can never fire.

    ``field`` names the offending field ("minute", "hour", "day-of-month", "month",
    "day-of-week"), or is None when the expression as a whole is wrong.
    """

    def __init__(self, expr: str, message: str, field: str | None = None) -> None:
        where = f"{field} field: " if field else ""
        super().__init__(f"crontab {expr!r}: {where}{message}")
        self.expr = expr
        self.field = field


class WebServerError(StreamlogError):
    """The endpoint could not listen (a busy port, an unknown host)."""


class JoinError(StreamlogError):
    """A join that cannot run as declared."""


class CoPartitioningError(JoinError, ImproperlyConfigured):
    """The inputs of a join have different partition counts, so equal keys cannot meet."""


class FeatureUnavailableError(ImproperlyConfigured, NotImplementedError):
    """A DSL feature whose implementing module this build does not have yet."""


class GraphvizNotFoundError(StreamlogError):
    """PNG output asked for where Graphviz's ``dot`` is not installed."""
