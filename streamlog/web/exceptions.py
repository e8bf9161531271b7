"""HTTP errors a view raises (Faust's ``faust.web.exceptions``); see
``streamlog.dsl.app.web.exceptions``."""

from streamlog.dsl.app.web.exceptions import (
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
    "AuthenticationFailed",
    "GatewayTimeout",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotAuthenticated",
    "NotFound",
    "ParseError",
    "PermissionDenied",
    "ServerError",
    "ServiceUnavailable",
    "Throttled",
    "UnsupportedMediaType",
    "ValidationError",
    "WebError",
]
