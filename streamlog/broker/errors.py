"""Exceptions of the broker layer (the log engine's own are in ``streamlog.log.errors``)."""

from __future__ import annotations

from streamlog.errors import StreamlogError

__all__ = [
    "BrokerError",
    "BrokerStartError",
    "NoPasswordError",
    "PartitionLimitError",
    "SaslStateError",
    "UsersFileError",
]


class BrokerError(StreamlogError):
    """Base class of every error the broker raises on purpose."""


class BrokerStartError(BrokerError):
    """The broker cannot start with this configuration (the message says why)."""


class UsersFileError(BrokerError, ValueError):
    """A users file that cannot be read or has a bad line; the message names the file and
    the line number (``line`` is None when the problem is the whole file)."""

    def __init__(self, source: str, line: int | None, problem: str) -> None:
        where = source if line is None else f"{source}, line {line}"
        super().__init__(f"users file {where}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem


class NoPasswordError(BrokerError):
    """``python -m streamlog.broker.users hash``: the input ended (Ctrl-D, or stdin
    closed) before a password was given."""


class SaslStateError(BrokerError):
    """A ``SaslServer`` method called in a state that does not allow it (a caller bug:
    callers check ``state`` first and answer ILLEGAL_SASL_STATE themselves)."""


class PartitionLimitError(BrokerError):
    """Creating these partitions would pass a limit of the request or of the broker.

    Answered with POLICY_VIOLATION, as Kafka answers a batch operation that is too large.
    """
