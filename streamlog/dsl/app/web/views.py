"""Class-based views (Faust's ``faust.web.View``), and the decorators that read a request
body into a model and answer with one.

A view is made once, when its page is declared (``@app.page``), and serves every request
to its path: state kept on ``self`` lasts as long as the worker. A request calls the
method named after its HTTP method (``get``, ``post``, ``put``, ``patch``, ``delete``,
``head``, ``options``, ``search``) with the request and the path's parameters as keyword
arguments (``/users/{name}/`` calls ``get(request, name=...)``); a method the class does
not define answers 405. A ``WebError`` raised inside (``raise self.NotFound()``) answers
its status with ``{"error": detail}``.

``@app.page`` on a function ``async def view(self, request, **params)`` makes a View whose
``get`` is that function, as Faust does: the first argument is the view, whose ``json``,
``text``, ``html`` and ``bytes`` make responses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from functools import wraps
from typing import TYPE_CHECKING, Any, ClassVar

from streamlog.dsl.app.web import exceptions
from streamlog.dsl.app.web.errors import WebError

if TYPE_CHECKING:
    from aiohttp.web import Request, Response

    from streamlog.dsl.app.app import App
    from streamlog.dsl.app.web.driver import Web

__all__ = ["View", "ViewHandler", "takes_model", "gives_model", "METHODS"]

ViewHandler = Callable[..., Awaitable[Any]]

METHODS = ("head", "get", "post", "put", "patch", "delete", "options", "search")

_bytes = bytes  # ``bytes`` is also a method name below


class View:
    """An HTTP endpoint; see the module docstring."""

    ServerError: ClassVar[type[WebError]] = exceptions.ServerError
    ValidationError: ClassVar[type[WebError]] = exceptions.ValidationError
    ParseError: ClassVar[type[WebError]] = exceptions.ParseError
    NotAuthenticated: ClassVar[type[WebError]] = exceptions.NotAuthenticated
    PermissionDenied: ClassVar[type[WebError]] = exceptions.PermissionDenied
    NotFound: ClassVar[type[WebError]] = exceptions.NotFound
    ServiceUnavailable: ClassVar[type[WebError]] = exceptions.ServiceUnavailable

    view_name: str = ""
    view_path: str = ""

    @classmethod
    def from_handler(cls, fun: ViewHandler) -> type[View]:
        """A subclass whose ``get`` is ``fun`` (``async def fun(view, request, **params)``)."""
        if not callable(fun):
            raise TypeError(f"a view handler must be callable, not {fun!r}")
        return type(
            fun.__name__,
            (cls,),
            {"get": fun, "__doc__": fun.__doc__, "__module__": fun.__module__},
        )

    def __init__(self, app: App, web: Web) -> None:
        self.app = app
        self.web = web
        self.methods: dict[str, ViewHandler] = {name: getattr(self, name) for name in METHODS}
        self.__post_init__()

    def __post_init__(self) -> None:
        """Override to set the view up (it is made once, when its page is declared)."""

    def get_methods(self) -> set[str]:
        """The HTTP methods this view answers: those its class defines, and HEAD."""
        defined = {
            name.upper() for name in METHODS if getattr(type(self), name) is not getattr(View, name)
        }
        return defined | {"HEAD"}

    async def __call__(self, request: Request) -> Any:
        return await self.dispatch(request)

    async def dispatch(self, request: Request) -> Any:
        """Call the method for ``request`` with the path's parameters; a ``WebError`` it
        raises becomes its error response."""
        handler = self.methods.get(request.method.lower())
        if handler is None:
            return self.error(405, f"Method {request.method} not allowed.")
        try:
            return await handler(request, **request.match_info)
        except WebError as exc:
            return await self.on_request_error(request, exc)

    async def on_request_error(self, request: Request, exc: WebError) -> Response:
        """The response for a ``WebError`` raised by a handler (override to change it)."""
        return self.error(exc.code, exc.detail, **exc.extra_context)

    # The handlers: a subclass defines the ones it answers.

    async def head(self, request: Request, **kwargs: Any) -> Any:
        """HEAD: what GET answers (the server leaves the body out)."""
        return await self.get(request, **kwargs)

    async def get(self, request: Request, **kwargs: Any) -> Any:
        raise exceptions.MethodNotAllowed("Method GET not allowed.")

    async def post(self, request: Request, **kwargs: Any) -> Any:
        raise exceptions.MethodNotAllowed("Method POST not allowed.")

    async def put(self, request: Request, **kwargs: Any) -> Any:
        raise exceptions.MethodNotAllowed("Method PUT not allowed.")

    async def patch(self, request: Request, **kwargs: Any) -> Any:
        raise exceptions.MethodNotAllowed("Method PATCH not allowed.")

    async def delete(self, request: Request, **kwargs: Any) -> Any:
        raise exceptions.MethodNotAllowed("Method DELETE not allowed.")

    async def options(self, request: Request, **kwargs: Any) -> Any:
        raise exceptions.MethodNotAllowed("Method OPTIONS not allowed.")

    async def search(self, request: Request, **kwargs: Any) -> Any:
        raise exceptions.MethodNotAllowed("Method SEARCH not allowed.")

    # Responses (``Web``'s, for convenience).

    def text(
        self,
        value: str,
        *,
        content_type: str | None = None,
        status: int = 200,
        reason: str | None = None,
        headers: MutableMapping[str, str] | None = None,
    ) -> Response:
        """A ``text/plain`` response."""
        return self.web.text(
            value, content_type=content_type, status=status, reason=reason, headers=headers
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
        """A ``text/html`` response."""
        return self.web.html(
            value, content_type=content_type, status=status, reason=reason, headers=headers
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
        """An ``application/json`` response of ``value`` (Records, datetimes, ... too)."""
        return self.web.json(
            value, content_type=content_type, status=status, reason=reason, headers=headers
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
        return self.web.bytes(
            value, content_type=content_type, status=status, reason=reason, headers=headers
        )

    def error(
        self,
        status: int,
        reason: str,
        headers: MutableMapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Response:
        """``{"error": reason, **kwargs}`` with ``status``."""
        return self.json({"error": reason, **kwargs}, status=status, headers=headers)

    def notfound(self, reason: str = "Not Found", **kwargs: Any) -> Response:
        """A 404 response (Faust keeps it; ``raise self.NotFound()`` says the same)."""
        return self.error(404, reason, **kwargs)

    async def read_request_content(self, request: Request) -> _bytes:
        """The request body (bounded by the server's request size limit)."""
        return await self.web.read_request_content(request)

    def path_for(self, view_name: str, **kwargs: Any) -> str:
        """The path of the page named ``view_name``, its parameters filled in."""
        return self.web.url_for(view_name, **kwargs)

    def url_for(self, view_name: str, _base_url: str | None = None, **kwargs: Any) -> str:
        """The full URL of the page named ``view_name`` on this worker (or ``_base_url``)."""
        base = str(_base_url if _base_url is not None else self.web.url or "")
        return base.rstrip("/") + "/" + self.path_for(view_name, **kwargs).lstrip("/")

    def route(self, pattern: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Serve ``handler`` (``async def handler(request)``) at ``pattern`` too."""
        self.web.route(pattern, handler)
        return handler


def takes_model(model: Any) -> Callable[[ViewHandler], ViewHandler]:
    """Decorate a view method to get the request body decoded as ``model`` (JSON) as the
    argument after the request; a body that does not decode answers 400."""

    def decorate(fun: ViewHandler) -> ViewHandler:
        @wraps(fun)
        async def with_model(view: View, request: Request, *args: Any, **kwargs: Any) -> Any:
            data = await view.read_request_content(request)
            try:
                obj = model.loads(data, serializer="json")
            except Exception as exc:  # noqa: BLE001 - any decoding failure is the client's
                raise exceptions.ValidationError(f"{model.__name__}: {exc}") from exc
            return await fun(view, request, obj, *args, **kwargs)

        return with_model

    return decorate


def gives_model(model: Any) -> Callable[[ViewHandler], ViewHandler]:
    """Decorate a view method whose result (a ``model`` or anything JSON can hold) is
    answered as JSON."""

    def decorate(fun: ViewHandler) -> ViewHandler:
        @wraps(fun)
        async def as_json(view: View, request: Request, *args: Any, **kwargs: Any) -> Any:
            return view.json(await fun(view, request, *args, **kwargs))

        return as_json

    return decorate
