"""Web views for streamlog apps, named as Faust's ``faust.web``: ``View``, ``Request``,
``Response``, ``Web``, ``takes_model``, ``gives_model`` and ``exceptions``.

``from streamlog.web import View`` (or ``faust.web.View`` in a program ported with
``import streamlog as faust``). The implementation is ``streamlog.dsl.app.web``;
``Request`` and ``Response`` are aiohttp's, imported on first access.
"""

from __future__ import annotations

from typing import Any

from streamlog.dsl.app.web import Web, exceptions
from streamlog.dsl.app.web.views import View, gives_model, takes_model

__all__ = ["Request", "Response", "View", "Web", "exceptions", "gives_model", "takes_model"]


def __getattr__(name: str) -> Any:
    if name in ("Request", "Response"):
        from aiohttp import web

        return getattr(web, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
