"""The worker's web server, on aiohttp, in the worker's event loop.

It serves the app's pages and routes (``app.page``, ``app.router.add_get``, ...) and the
built-in routes, each answering GET and HEAD:

==================== ===================================================================
``/``                the status page, for people (``status.py``)
``/health``          ``200 ok`` while the app runs, ``503 not running`` while starting or
                     stopping (text/plain)
``/stats``           the app's counters as JSON
``/metrics``         the counters in Prometheus' text format (``metrics.py``)
``/tables/{t}/{k}``  key ``k`` of table ``t`` as JSON, from the worker holding it
                     (``queries.py``)
``/connect/``        every connector of the app (``app.source``/``app.sink``): its status as
                     JSON (``streamlog.dsl.app.connectors``)
``/router/``         worker URL -> table changelog -> partitions held (Faust's router page);
                     ``/router/{table}/`` for one table, ``/router/{table}/{key}/`` the URL
                     of the worker holding a key
==================== ===================================================================

A page of the app's with the same path replaces a built-in one. The server binds before
the worker joins its group (the worker starts it as soon as the transport is open), so
the address it advertises (``directory.py``) answers as soon as the group hands the
worker partitions. Port 0 picks a free port; ``url`` and the log line give the bound one.

Errors become answers: a ``WebError`` its status and ``{"error": ...}``, a read of a table
partition this worker does not hold (yet) 503, anything else 500 (logged with its
traceback); a path with no route 404 listing the routes. A request body is bounded by
``MAX_REQUEST_BODY``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from streamlog.dsl.app.lag import ConsumerLag, measure_lag
from streamlog.dsl.app.web.directory import encode_card
from streamlog.dsl.app.web.errors import NotFound, ServiceUnavailable, WebError
from streamlog.dsl.app.web.forwarding import CONNECT_TIMEOUT, FORWARD_TIMEOUT, Forwarder
from streamlog.dsl.app.web.metrics import CONTENT_TYPE, AppCollector, exposition, make_registry
from streamlog.dsl.app.web.queries import TABLES_PATH, answer_table_query
from streamlog.dsl.app.web.status import state_of, stats_body, status_page
from streamlog.dsl.errors import PartitionNotOwnedError, WebServerError

if TYPE_CHECKING:
    from aiohttp import ClientSession
    from aiohttp.web import Application, AppRunner, Request, StreamResponse
    from prometheus_client.registry import CollectorRegistry

    from streamlog.dsl.app.app import App

__all__ = ["WebServer", "WebServerError", "MAX_REQUEST_BODY", "BUILTIN_PATHS"]

log = logging.getLogger(__name__)

MAX_REQUEST_BODY = 1 << 20
SHUTDOWN_TIMEOUT = 5.0  # seconds given to requests in flight when the server stops
BUILTIN_PATHS = (
    "/",
    "/health",
    "/stats",
    "/metrics",
    "/connect/",
    "/router/",
    "/router/{name}/",
    "/router/{name}/{key}/",
    TABLES_PATH,
)

Handler = Callable[["Request"], Awaitable["StreamResponse"]]


class WebServer:
    """See the module docstring. ``worker_id`` tells this run of the server apart in the
    group's directory (a worker restarted on the same address is another run)."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 6066) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.url: str | None = None
        self.worker_id = uuid.uuid4().hex
        self._runner: AppRunner | None = None
        self._session: ClientSession | None = None
        self._registry: tuple[CollectorRegistry, AppCollector] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen, and advertise this worker's URL to its group (``WebServerError`` naming
        the address when it cannot listen)."""
        from aiohttp import ClientSession, ClientTimeout, web

        application = web.Application(
            middlewares=[self._middleware()], client_max_size=MAX_REQUEST_BODY
        )
        self._add_routes(application)
        runner = web.AppRunner(
            application, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise WebServerError(
                f"web endpoint cannot listen on {self.host}:{self.port}: {reason}"
            ) from None
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self.url = url = self._advertised_url()
        self._session = ClientSession(
            timeout=ClientTimeout(total=FORWARD_TIMEOUT, sock_connect=CONNECT_TIMEOUT),
            auto_decompress=False,
        )
        app = self.app
        app.router.forwarder = Forwarder(self._session, url, self.worker_id)
        app.web.url = url
        app.conductor.advertise(encode_card(url, self.worker_id))
        pages = len(app.web.paths)
        log.info(
            "web endpoint on %s (/health, /stats, /metrics%s)",
            url,
            f"; {pages} page(s) of the app" if pages else "",
        )

    async def stop(self) -> None:
        """Stop listening (requests in flight get ``SHUTDOWN_TIMEOUT``) and close the
        forwarding client. The advertised URL stays in the group until the worker leaves
        it: requests forwarded here meanwhile are refused and answered 503 by the sender."""
        runner, self._runner = self._runner, None
        session, self._session = self._session, None
        router = self.app.router
        if router.forwarder is not None and router.forwarder.worker_id == self.worker_id:
            router.forwarder = None
        if session is not None:
            await session.close()
        if runner is not None:
            await runner.cleanup()

    def _advertised_url(self) -> str:
        """Faust's ``canonical_url`` when the app sets one, else ``http://HOST:PORT`` with
        this machine's name for a wildcard bind address."""
        configured = self.app.conf.canonical_url
        if configured:
            return str(configured).rstrip("/")
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    # ------------------------------------------------------------------ routes

    def _add_routes(self, application: Application) -> None:
        declared = self.app.web
        for route in declared.routes:
            application.router.add_route(
                route.method, route.path, _coroutine_handler(route.handler), name=route.name
            )
        for static in declared.statics:
            application.router.add_static(static.prefix, static.directory, **static.options)
        taken = set(declared.paths)
        builtins: dict[str, Handler] = {
            "/": self._status_page,
            "/health": self._health,
            "/stats": self._stats,
            "/metrics": self._metrics,
            "/connect/": self._connect,
            "/router/": self._router_tables,
            "/router/{name}/": self._router_table,
            "/router/{name}/{key}/": self._router_key,
            TABLES_PATH: self._table_query,
        }
        for path, handler in builtins.items():
            if path in taken:
                log.info("the app's page %s replaces the built-in one", path)
                continue
            application.router.add_get(path, handler)

    def _middleware(self) -> Any:
        from aiohttp import web

        app = self.app

        @web.middleware
        async def answer_errors(request: Request, handler: Handler) -> StreamResponse:
            try:
                response = await handler(request)
            except web.HTTPNotFound:
                if request.match_info.http_exception is None:
                    raise  # a view's own 404
                return self._not_found(request)
            except WebError as exc:
                return app.web.json({"error": exc.detail, **exc.extra_context}, status=exc.code)
            except PartitionNotOwnedError as exc:
                return app.web.json({"error": str(exc)}, status=503)
            except web.HTTPException:
                raise
            except Exception:
                log.exception("web request %s %s failed", request.method, request.path)
                return app.web.json({"error": "Internal server error."}, status=500)
            if not isinstance(response, web.StreamResponse):
                log.error(
                    "web request %s %s: the view returned %s, not a response "
                    "(return web.json(...), web.text(...), web.html(...) or web.bytes(...))",
                    request.method,
                    request.path,
                    type(response).__name__,
                )
                return app.web.json(
                    {"error": "Internal server error: the view returned no response."},
                    status=500,
                )
            return response

        return answer_errors

    def _not_found(self, request: Request) -> StreamResponse:
        from aiohttp import web

        paths = [*self.app.web.paths, *(p for p in BUILTIN_PATHS if p not in self.app.web.paths)]
        body = f"404 not found: {request.path}\nroutes: {' '.join(paths)}\n"
        return web.Response(body=body.encode(), status=404, content_type="text/plain")

    # ------------------------------------------------------------------ built-in routes

    async def _health(self, request: Request) -> StreamResponse:
        from aiohttp import web

        running = state_of(self.app) == "running"
        return web.Response(
            body=b"ok\n" if running else b"not running\n",
            status=200 if running else 503,
            content_type="text/plain",
        )

    async def _stats(self, request: Request) -> StreamResponse:
        from aiohttp import web

        lag = await self._lag()
        body = stats_body(self.app, lag, self.url, self.app.router.directory())
        return web.Response(body=body, content_type="application/json")

    async def _metrics(self, request: Request) -> StreamResponse:
        from aiohttp import web

        lag = await self._lag()
        if self._registry is None:
            self._registry = make_registry(self.app)
        registry, collector = self._registry
        return web.Response(
            body=exposition(registry, collector, lag), headers={"Content-Type": CONTENT_TYPE}
        )

    async def _connect(self, request: Request) -> StreamResponse:
        return self.app.web.json(self.app.connectors.status())

    async def _table_query(self, request: Request) -> StreamResponse:
        return await answer_table_query(self.app, self.url, request)

    async def _lag(self) -> ConsumerLag | None:
        """The consumer lag now; None (and a debug line) if it cannot be measured."""
        try:
            return await measure_lag(self.app)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the other counters still answer
            log.debug("lag not measured: %r", exc)
            return None

    async def _status_page(self, request: Request) -> StreamResponse:
        app = self.app
        page = status_page(app, self.url, app.router.directory(), app.web.paths, await self._lag())
        return app.web.html(page)

    async def _router_tables(self, request: Request) -> StreamResponse:
        return self.app.web.json(self.app.router.tables_metadata())

    async def _router_table(self, request: Request) -> StreamResponse:
        name = request.match_info["name"]
        if name not in self.app.tables:
            raise NotFound(f"no table named {name!r}")
        return self.app.web.json(self.app.router.table_metadata(name))

    async def _router_key(self, request: Request) -> StreamResponse:
        name, key = request.match_info["name"], request.match_info["key"]
        if name not in self.app.tables:
            raise NotFound(f"no table named {name!r}")
        try:
            url = self.app.router.key_store(name, key)
        except KeyError as exc:
            raise ServiceUnavailable(str(exc.args[0])) from None
        return self.app.web.json(str(url))


def _coroutine_handler(handler: Callable[..., Awaitable[Any]]) -> Handler:
    """An ``async def`` for aiohttp: a View instance is a callable object, not one."""

    async def handle(request: Request) -> StreamResponse:
        response: StreamResponse = await handler(request)
        return response

    handle.__doc__ = handler.__doc__
    return handle
