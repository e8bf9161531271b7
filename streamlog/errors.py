"""The root of every exception streamlog raises on purpose.

Each layer has its own base, in its ``errors`` module (``LogError``, ``ProtocolError``,
``TransportError``, ``BrokerError``, ``SerdeError``, ``StateError``, the streams layer's
and the CLI's), so that a caller can catch one layer's failures without catching another
layer's or its own bugs; every one of those bases derives from ``StreamlogError``, so
``except StreamlogError`` catches whatever the package raises on purpose and nothing
else. This module imports nothing, so that the lowest layer (the log engine) can use it:
it is the bottom layer of the import-linter contract in pyproject.toml.
"""

from __future__ import annotations

__all__ = ["StreamlogError"]


class StreamlogError(Exception):
    """Base of every error streamlog raises on purpose (each layer's base derives from it)."""
