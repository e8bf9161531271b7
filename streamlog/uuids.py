"""Faust's ``faust.uuid()``, for programs that call it as ``faust.uuid()`` whichever way
they import ``faust`` (``import streamlog as faust`` or the ``streamlog.faust`` names)."""

from __future__ import annotations

import uuid as _uuid

__all__ = ["uuid"]


def uuid() -> str:
    """A random UUID as text: ``str(uuid.uuid4())``, as Faust's."""
    return str(_uuid.uuid4())
