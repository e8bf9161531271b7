"""The connectors' errors."""

from __future__ import annotations

from streamlog.errors import StreamlogError

__all__ = [
    "ConnectError",
    "ConnectorConfigError",
    "SourceError",
    "SinkError",
    "SinkUnavailableError",
    "BadRecordError",
]


class ConnectError(StreamlogError):
    """Base of the connectors' errors."""


class ConnectorConfigError(ConnectError, ValueError):
    """A connector's settings cannot work (a missing path, an unknown format, a bad URL)."""


class SourceError(ConnectError):
    """A source cannot go on reading its system."""


class SinkError(ConnectError):
    """A sink cannot write to its system."""


class SinkUnavailableError(SinkError):
    """The outside system is unreachable or refused a write for a reason that may pass (a
    database restarting, an HTTP 503): the runner retries the flush with backoff, up to the
    sink's retry time, before it stops the worker (nothing is lost: the offsets of the
    records not written were not committed)."""


class BadRecordError(ConnectError, ValueError):
    """One record a sink cannot write whatever happens (a value that is not an object for
    a table sink): the runner hands it to the app's error policy (the dead-letter topic),
    never drops it silently."""
