"""Faust's module name for the web errors (``faust.web.exceptions``): they live in
``streamlog.dsl.app.web.errors``, this layer's errors module."""

from streamlog.dsl.app.web.errors import (
    AuthenticationFailed,
    GatewayTimeout,
    MethodNotAllowed,
    NotAcceptable,
    NotAuthenticated,
    NotFound,
    ParseError,
    PermissionDenied,
    ServerError,
    ServiceUnavailable,
    Throttled,
    UnsupportedMediaType,
    ValidationError,
    WebError,
)

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
]
