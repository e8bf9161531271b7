"""``app.web`` (Faust's web driver): makes responses, and holds the app's pages and routes
until the worker's web server serves them.

Declaring a page or a route only records it here (nothing listens, aiohttp is not even
imported); the server (``server.py``) registers them when it starts. Responses are
aiohttp's (``aiohttp.web.Response``), made on demand.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from streamlog.dsl.app.web.views import View
from streamlog.dsl.errors import FeatureUnavailableError, ImproperlyConfigured

if TYPE_CHECKING:
    from aiohttp.web import Request, Response, StreamResponse

    from streamlog.dsl.app.app import App

__all__ = ["Web", "Route", "Static", "RouteHandler"]

RouteHandler = Callable[["Request"], Awaitable["StreamResponse"]]

_bytes = bytes  # ``bytes`` is also a method name below


@dataclass(frozen=True, slots=True)
class Route:
    """A declared route: ``method`` is an HTTP method or ``*`` (any)."""

    method: str
    path: str
    handler: Callable[..., Awaitable[Any]]
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Static:
    """Files under ``directory`` served at ``prefix``."""

    prefix: str
    directory: str
    options: Mapping[str, Any] = field(default_factory=dict)


class Web:
    """See the module docstring. ``url`` is this worker's address once its server
    listens (None before)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.views: dict[str, View] = {}
        self.reverse_names: dict[str, str] = {}
        self.routes: list[Route] = []
        self.statics: list[Static] = []
        self.url: str | None = None

    def __repr__(self) -> str:
        return f"<Web of {self.app.conf.id}: {len(self.routes)} route(s)>"

    # ------------------------------------------------------------------ responses

    def text(
        self,
        value: str,
        *,
        content_type: str | None = None,
        status: int = 200,
        reason: str | None = None,
        headers: MutableMapping[str, str] | None = None,
    ) -> Response:
        """A ``text/plain`` response (UTF-8)."""
        from aiohttp import web

        return web.Response(
            text=value, content_type=content_type, status=status, reason=reason, headers=headers
        )

    def html(
        self,
        value: str,
        *,
        content_type: str | None = None,
        status: int = 200,
        reason: str | None = None,
        headers: MutableMapping[str, str] | None = None,
    ) -> Response:
        """A ``text/html`` response (UTF-8)."""
        return self.text(
            value,
            content_type=content_type or "text/html",
            status=status,
            reason=reason,
            headers=headers,
        )

    def json(
        self,
        value: Any,
        *,
        content_type: str | None = None,
        status: int = 200,
        reason: str | None = None,
        headers: MutableMapping[str, str] | None = None,
    ) -> Response:
        """``value`` as JSON with the app's ``json`` codec (Records, datetimes, UUIDs and
        Decimals too), ``application/json; charset=utf-8`` as Faust answers."""
        from aiohttp import web

        body = self.app.codecs.get("json").dumps(value)
        return web.Response(
            body=body,
            content_type=content_type or "application/json",
            charset="utf-8",
            status=status,
            reason=reason,
            headers=headers,
        )

    def bytes(
        self,
        value: _bytes,
        *,
        content_type: str | None = None,
        status: int = 200,
        reason: str | None = None,
        headers: MutableMapping[str, str] | None = None,
    ) -> Response:
        """A response of raw bytes (``application/octet-stream`` unless told)."""
        from aiohttp import web

        return web.Response(
            body=value, content_type=content_type, status=status, reason=reason, headers=headers
        )

    async def read_request_content(self, request: Request) -> _bytes:
        """The request's body (the server bounds its size)."""
        return await request.read()

    # ------------------------------------------------------------------ routes

    def add_view(
        self,
        view_cls: type[View],
        *,
        prefix: str = "",
        cors_options: Mapping[str, Any] | None = None,
    ) -> View:
        """Make the view (once) and serve it at ``prefix + view_cls.view_path``."""
        view = view_cls(self.app, self)
        path = prefix.rstrip("/") + "/" + view.view_path.lstrip("/")
        self.route(path, view, cors_options)
        self.views[path] = view
        self.reverse_names[view.view_name] = path
        return view

    def route(
        self,
        pattern: str,
        handler: Callable[..., Awaitable[Any]],
        cors_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Serve ``handler`` at ``pattern``: a View for the methods it defines, a plain
        ``async def handler(request)`` for every method."""
        if cors_options:
            raise FeatureUnavailableError(
                f"route {pattern}: cors_options are not supported (answer CORS headers "
                "from the view, or put a proxy in front)"
            )
        if isinstance(handler, View):
            for method in sorted(handler.get_methods()):
                self.add_route(method, pattern, handler)
        else:
            self.add_route("*", pattern, handler)

    def add_route(
        self,
        method: str,
        path: str,
        handler: Callable[..., Awaitable[Any]],
        *,
        name: str | None = None,
    ) -> Route:
        """Serve ``handler`` for ``method`` (``*``: any) requests to ``path`` (aiohttp's
        syntax: ``/users/{name}/``); ``ImproperlyConfigured`` if taken."""
        if not path.startswith("/"):
            raise ImproperlyConfigured(f"route paths start with '/': {path!r}")
        method = method.upper()
        for existing in self.routes:
            if existing.path == path and existing.method == method:
                raise ImproperlyConfigured(f"two routes for {method} {path}")
        route = Route(method, path, handler, name)
        self.routes.append(route)
        return route

    def add_static(self, prefix: str, path: str, **kwargs: Any) -> None:
        """Serve the files under directory ``path`` at URL ``prefix``."""
        self.statics.append(Static(prefix, str(path), dict(kwargs)))

    def url_for(self, view_name: str, **kwargs: Any) -> str:
        """The path of the page named ``view_name`` with its parameters filled in
        (``KeyError`` for an unknown name)."""
        try:
            path = self.reverse_names[view_name]
        except KeyError:
            raise KeyError(f"no view named {view_name!r}") from None
        return path.format(**{k: quote(str(v), safe="") for k, v in kwargs.items()})

    @property
    def paths(self) -> list[str]:
        """Every declared path, in declaration order."""
        seen: dict[str, None] = {}
        for route in self.routes:
            seen.setdefault(route.path)
        return list(seen)
