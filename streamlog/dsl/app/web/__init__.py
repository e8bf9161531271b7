"""The worker's web server and Faust's web API: pages, class-based views, and routes that
answer a request on the worker holding its key.

- ``server``: the aiohttp server in the worker's loop, with the built-in routes
  (``/``, ``/health``, ``/stats``, ``/metrics``, ``/tables/``, ``/router/``) and the
  app's pages;
- ``views``: ``View`` (``faust.web.View``), ``takes_model``, ``gives_model``;
- ``driver``: ``Web`` (``app.web``): responses, and the declared routes;
- ``routing``: ``Router`` (``app.router``), ``@app.page``, ``@app.table_route``,
  ``@app.topic_route``;
- ``directory``: what a worker advertises to its group, and who holds which partition;
- ``forwarding``: a request sent on to the worker holding its key;
- ``exceptions``: HTTP errors a view raises (``faust.web.exceptions``);
- ``status``: the status page and ``/stats``;
- ``metrics``: ``/metrics`` (a ``prometheus_client`` registry per server);
- ``queries``: ``/tables/{table}/{key}``, interactive queries.

Importing this package does not import aiohttp (a fifth of a second): the server and the
response constructors import it when used, and ``Request``/``Response`` (aiohttp's, as
Faust's aiohttp driver hands them out) on first access.
"""

from __future__ import annotations

from typing import Any

from streamlog.dsl.app.web import exceptions
from streamlog.dsl.app.web.driver import Web
from streamlog.dsl.app.web.errors import SameNode
from streamlog.dsl.app.web.routing import Router
from streamlog.dsl.app.web.server import WebServer, WebServerError
from streamlog.dsl.app.web.views import View, gives_model, takes_model

__all__ = [
    "Request",
    "Response",
    "Router",
    "SameNode",
    "View",
    "Web",
    "WebServer",
    "WebServerError",
    "exceptions",
    "gives_model",
    "takes_model",
]


def __getattr__(name: str) -> Any:
    if name in ("Request", "Response"):
        from aiohttp import web

        return getattr(web, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
