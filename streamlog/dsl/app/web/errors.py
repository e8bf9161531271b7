"""HTTP errors a view raises to answer with a status (Faust's ``faust.web.exceptions``, which
``streamlog.dsl.app.web.exceptions`` re-exports under that name).

``raise self.NotFound("no such user")`` in a view answers ``404`` with the JSON body
``{"error": "no such user"}``; keyword arguments given to the error join that body. The
worker's web server answers the same for a plain route (``app.router.add_get``).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from streamlog.dsl.errors import StreamsError

__all__ = [
    "WebError",
    "ServerError",
    "ValidationError",
    "ParseError",
    "AuthenticationFailed",
    "NotAuthenticated",
    "PermissionDenied",
    "NotFound",
    "MethodNotAllowed",
    "NotAcceptable",
    "UnsupportedMediaType",
    "Throttled",
    "ServiceUnavailable",
    "GatewayTimeout",
    "BadGateway",
    "SameNode",
]


class WebError(StreamsError):
    """An answer with an HTTP error status: ``code``, a ``detail`` for people, and
    ``extra_context`` that goes into the JSON body beside ``error``."""

    code: int = HTTPStatus.INTERNAL_SERVER_ERROR
    detail: str = "Internal server error."

    def __init__(self, detail: str | None = None, *, code: int | None = None, **extra: Any):
        if detail:
            self.detail = detail
        if code:
            self.code = code
        self.extra_context: dict[str, Any] = extra
        super().__init__(self.detail)


class ServerError(WebError):
    """500: the view failed."""

    code = HTTPStatus.INTERNAL_SERVER_ERROR
    detail = "Internal server error."


class ValidationError(WebError):
    """400: the request's data is not valid."""

    code = HTTPStatus.BAD_REQUEST
    detail = "Invalid input."


class ParseError(WebError):
    """400: the request cannot be read."""

    code = HTTPStatus.BAD_REQUEST
    detail = "Malformed request."


class AuthenticationFailed(WebError):
    """401: wrong credentials."""

    code = HTTPStatus.UNAUTHORIZED
    detail = "Incorrect authentication credentials"


class NotAuthenticated(WebError):
    """401: no credentials."""

    code = HTTPStatus.UNAUTHORIZED
    detail = "Authentication credentials were not provided."


class PermissionDenied(WebError):
    """403."""

    code = HTTPStatus.FORBIDDEN
    detail = "You do not have permission to perform this action."


class NotFound(WebError):
    """404."""

    code = HTTPStatus.NOT_FOUND
    detail = "Not found."


class MethodNotAllowed(WebError):
    """405: the view has no handler for the request's method."""

    code = HTTPStatus.METHOD_NOT_ALLOWED
    detail = "Method not allowed."


class NotAcceptable(WebError):
    """406."""

    code = HTTPStatus.NOT_ACCEPTABLE
    detail = "Could not satisfy the request Accept header."


class UnsupportedMediaType(WebError):
    """415."""

    code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    detail = "Unsupported media type in request."


class Throttled(WebError):
    """429."""

    code = HTTPStatus.TOO_MANY_REQUESTS
    detail = "Request was throttled."


class ServiceUnavailable(WebError):
    """503: the worker cannot answer now (the key's owner is unknown or unreachable,
    its partition is being recovered): try again later."""

    code = HTTPStatus.SERVICE_UNAVAILABLE
    detail = "Service unavailable. Try again later."


class GatewayTimeout(WebError):
    """504: the worker a request was forwarded to did not answer in time."""

    code = HTTPStatus.GATEWAY_TIMEOUT
    detail = "The worker holding the data did not answer in time."


class BadGateway(WebError):
    """502: the worker holding the data gave an answer that cannot be passed on."""

    code = HTTPStatus.BAD_GATEWAY
    detail = "The worker holding the data gave an answer that cannot be passed on."


class SameNode(StreamsError):
    """The key is held by this worker: answer the request here (Faust's ``SameNode``, raised
    by ``app.router.route_req``-style code; not an HTTP answer)."""
