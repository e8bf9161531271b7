"""The connectors' errors."""

from __future__ import annotations

from typing import Any

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
    never drops it silently.

    ``record``: the ``SinkRecord`` that cannot be written, when the sink took the records
    before it in the same ``write`` call (and none after it): the runner dead-letters it
    and hands the sink the rest. None: the sink took nothing of the call, and the runner
    writes its records one at a time to find the bad one.
    """

    def __init__(self, message: str, record: Any = None) -> None:
        super().__init__(message)
        self.record = record
