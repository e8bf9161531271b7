"""Errors raised by the streams layer (apps, topics, agents, the worker).

Every one derives from ``StreamsError``, the layer's base, which derives from the
package root ``streamlog.errors.StreamlogError`` (re-exported here because the streams
layer's public API has always offered it).
"""

from __future__ import annotations

from streamlog.errors import StreamlogError

__all__ = [
    "StreamlogError",
    "StreamsError",
    "ImproperlyConfigured",
    "AppNotFoundError",
    "AgentError",
    "AskTimeoutError",
    "TopicNotDeclaredError",
    "AppNotRunningError",
    "CommitPostponed",
    "PartitionNotOwnedError",
    "TransactionalIdsInUseError",
    "WindowedTableError",
    "SessionMergeError",
    "CrontabError",
    "WebServerError",
    "JoinError",
    "CoPartitioningError",
    "FeatureUnavailableError",
    "GraphvizNotFoundError",
]


class StreamsError(StreamlogError):
    """Base of the errors the streams layer raises (``except StreamsError`` leaves the
    log's, the transport's and the state layer's own errors to their callers)."""


class ImproperlyConfigured(StreamsError):
    """A setting or declaration that cannot work (named in the message)."""


class AppNotFoundError(StreamsError):
    """``streamlog worker app.py`` found no ``App`` where it looked."""


class AgentError(StreamsError):
    """An agent failed and its error policy says the worker must stop."""


class AskTimeoutError(StreamsError, TimeoutError):
    """``agent.ask`` got no reply in time."""


class TopicNotDeclaredError(StreamsError):
    """A topic used at run time that the app never declared."""


class AppNotRunningError(StreamsError):
    """An operation that needs a started app (sending, asking) before ``app.start()``."""


class CommitPostponed(StreamsError):
    """A commit found events still in processing past its wait; the next one retries."""


class TransactionalIdsInUseError(StreamsError):
    """Every transactional id slot of the data directory is held by a running worker."""


class PartitionNotOwnedError(StreamsError):
    """A table key whose partition is not assigned to this worker."""


class WindowedTableError(StreamsError):
    """A windowed table used in a way that cannot work (named in the message)."""


class SessionMergeError(WindowedTableError):
    """Two sessions merged whose values have no default merge (pass ``merge=``)."""


class CrontabError(StreamsError, ValueError):
    """A crontab expression cannot be parsed or can never fire.

    ``field`` names the offending field ("minute", "hour", "day-of-month", "month",
    "day-of-week"), or is None when the expression as a whole is wrong.
    """

    def __init__(self, expr: str, message: str, field: str | None = None) -> None:
        where = f"{field} field: " if field else ""
        super().__init__(f"crontab {expr!r}: {where}{message}")
        self.expr = expr
        self.field = field


class WebServerError(StreamsError):
    """The endpoint could not listen (a busy port, an unknown host)."""


class JoinError(StreamsError):
    """A join that cannot run as declared."""


class CoPartitioningError(JoinError, ImproperlyConfigured):
    """The inputs of a join have different partition counts, so equal keys cannot meet."""


class FeatureUnavailableError(ImproperlyConfigured, NotImplementedError):
    """A DSL feature whose implementing module this build does not have yet."""


class GraphvizNotFoundError(StreamsError):
    """PNG output asked for where Graphviz's ``dot`` is not installed."""
