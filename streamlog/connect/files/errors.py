"""The file connectors' own error (the others are ``streamlog.connect.errors``')."""

from __future__ import annotations

from streamlog.connect.errors import ConnectError

__all__ = ["MalformedRecord"]


class MalformedRecord(ConnectError, ValueError):
    """A line the format cannot read; the message says why. The source adds where, and
    counts, logs and skips the line, or stops on it with a ``SourceError``."""
