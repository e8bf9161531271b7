"""Kafka wire protocol codec, sans-IO: bytes in, requests and responses out, and back.

Nothing here touches a socket. A server feeds received bytes to a ``FrameDecoder``, passes
each frame to ``decode_request``, and sends what ``encode_response`` returns; a client
does the mirror image with ``encode_request`` and ``decode_response``. Message types are
kio's (Aiven's classes generated from Kafka's JSON schemas; ``build_message`` builds any
version from plain values); record sets stay opaque bytes. Produce request decoding and
Fetch response encoding are hand-written for speed and checked byte for byte against kio.
"""

from .client import decode_response, encode_request, peek_correlation_id
from .error_responses import api_versions_response, error_response_for
from .errors import (
    ErrorCode,
    FrameTooLargeError,
    MalformedRequestError,
    MalformedResponseError,
    ProtocolError,
    RequestError,
    UnsupportedApiError,
    UnsupportedVersionError,
)
from .fetch import encode_fetch_response
from .framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, encode_frame
from .produce import (
    ProducePartitionView,
    ProduceRequestView,
    ProduceTopicView,
    decode_produce_request,
)
from .requests import (
    DecodedRequest,
    RequestBody,
    RequestHeaderLike,
    decode_request,
    encode_response,
)
from .schema import (
    RequestPayload,
    ResponsePayload,
    build_message,
    request_class,
    response_class,
)
from .versions import SUPPORTED_VERSIONS, ApiKey, VersionRange, negotiate, negotiate_all

__all__ = [
    # framing
    "DEFAULT_MAX_FRAME_SIZE",
    "FrameDecoder",
    "encode_frame",
    # server side
    "DecodedRequest",
    "RequestBody",
    "RequestHeaderLike",
    "decode_request",
    "encode_response",
    "error_response_for",
    "api_versions_response",
    # client side
    "encode_request",
    "decode_response",
    "peek_correlation_id",
    # hot paths
    "ProduceRequestView",
    "ProduceTopicView",
    "ProducePartitionView",
    "decode_produce_request",
    "encode_fetch_response",
    # schemas
    "RequestPayload",
    "ResponsePayload",
    "build_message",
    "request_class",
    "response_class",
    # versions
    "ApiKey",
    "VersionRange",
    "SUPPORTED_VERSIONS",
    "negotiate",
    "negotiate_all",
    # errors
    "ErrorCode",
    "ProtocolError",
    "FrameTooLargeError",
    "RequestError",
    "UnsupportedApiError",
    "UnsupportedVersionError",
    "MalformedRequestError",
    "MalformedResponseError",
]
