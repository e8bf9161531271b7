"""Server side: request frames in, response frames out.

A request frame (the bytes after the size prefix) is a request header then the body::

    api_key int16 | api_version int16 | correlation_id int32 | client_id nullable string
    [ tagged fields ]   <- request header v2, used by flexible versions only
    body                <- the schema of (api_key, api_version)

The header's fixed prefix is read by hand, so that an unknown API key or version can be
reported with its correlation id. The body goes to kio's reader after a structural
pre-check (``_guard.py``: kio aborts the process on a hostile array count, and reads a
null array the schema does not allow as ``None``; both are refused there), except
Produce, which has a zero-copy decoder of its own (``produce.py``). Responses are a
correlation id (plus an empty tagged-field section for response header v1) then the body,
behind a size prefix; Fetch response bodies come from a hand-written encoder
(``fetch.py``), everything else from kio's writer.
"""

from __future__ import annotations

import io
import struct
from typing import NamedTuple, Protocol

from kio.serial import entity_reader, entity_writer
from kio.serial.errors import SerialError

from ._guard import check
from ._wire import INT32, WireError, read_nullable_string, skip_tagged_fields
from .errors import MalformedRequestError, UnsupportedApiError, UnsupportedVersionError
from .fetch import FETCH_FAST_VERSIONS, fetch_response_parts
from .produce import ProduceRequestView, decode_produce_request
from .schema import (
    RequestPayload,
    ResponsePayload,
    is_flexible_request_header,
    is_flexible_response_header,
    request_class,
)
from .versions import SUPPORTED_VERSIONS, ApiKey

__all__ = [
    "DecodedRequest",
    "RequestBody",
    "RequestHeaderLike",
    "decode_request",
    "encode_response",
]

RequestBody = RequestPayload | ProduceRequestView
"""A decoded request body: kio's request object, or a ``ProduceRequestView`` for Produce."""

_HEADER_PREFIX = struct.Struct(">hhi")
_API_KEYS = {int(key): key for key in ApiKey}

# What kio's native reader raises on bytes that do not fit a schema: its own SerialError
# family (truncation, bad UTF-8, unexpected null), ValueError (negative lengths, varints
# too long, booleans other than 0/1) and KeyError (a tagged field it has no slot for).
_KIO_DECODE_ERRORS = (SerialError, ValueError, KeyError, TypeError, OverflowError)


class DecodedRequest(NamedTuple):
    """A request as the server sees it: the header fields and the decoded body.

    ``body`` is kio's request object for ``(api_key, api_version)``, except for Produce,
    where it is a ``ProduceRequestView`` whose record sets are slices of the frame.
    (A NamedTuple rather than a frozen dataclass: one is built per request, and a frozen
    dataclass costs five times as much to construct.)
    """

    api_key: ApiKey
    api_version: int
    correlation_id: int
    client_id: str | None
    body: RequestBody


class RequestHeaderLike(Protocol):
    """What ``encode_response`` needs to know of the request it answers."""

    @property
    def api_key(self) -> int: ...

    @property
    def api_version(self) -> int: ...

    @property
    def correlation_id(self) -> int: ...


def decode_request(frame: bytes | bytearray | memoryview) -> DecodedRequest:
    """Decode one request frame (size prefix already stripped).

    :raises UnsupportedApiError: the API key is not in ``SUPPORTED_VERSIONS``.
    :raises UnsupportedVersionError: the key is known, the version out of range.
    :raises MalformedRequestError: anything else that does not match the schema,
        including tagged fields kio does not know.

    Bytes after the end of the body are ignored, as Kafka does: librdkafka 2.x sends
    three stray bytes after an all-topics Metadata v9+ request (an unfinalised 4-byte
    array-count placeholder) and real brokers accept it.
    """
    size = len(frame)
    if size < _HEADER_PREFIX.size:
        raise MalformedRequestError(f"request frame of {size} bytes is shorter than a header")
    api_key, api_version, correlation_id = _HEADER_PREFIX.unpack_from(frame, 0)
    try:
        client_id, pos = read_nullable_string(frame, _HEADER_PREFIX.size)
    except WireError as e:
        raise MalformedRequestError(
            f"request header: {e}",
            api_key=api_key,
            api_version=api_version,
            correlation_id=correlation_id,
        ) from None

    supported = SUPPORTED_VERSIONS.get(api_key)
    if supported is None:
        raise UnsupportedApiError(
            api_key=api_key,
            api_version=api_version,
            correlation_id=correlation_id,
            client_id=client_id,
        )
    if api_version not in supported:
        raise UnsupportedVersionError(
            api_key=api_key,
            api_version=api_version,
            correlation_id=correlation_id,
            client_id=client_id,
            min_version=supported.min,
            max_version=supported.max,
        )

    request_type = request_class(api_key, api_version)
    body: RequestBody
    try:
        if is_flexible_request_header(request_type):
            pos = skip_tagged_fields(frame, pos)
        if api_key == ApiKey.PRODUCE:
            body, _ = decode_produce_request(frame, pos, api_version)
        else:
            # Structural pre-check first: kio's reader must never see a hostile array
            # count (it aborts the process on a failed allocation, see _guard.py).
            check(request_type, frame, pos, size, strict_nulls=True)
            body, _ = entity_reader(request_type)(frame, pos)
    except (WireError, *_KIO_DECODE_ERRORS) as e:
        raise MalformedRequestError(
            f"{_API_KEYS[api_key].name} v{api_version} request: {_describe(e)}",
            api_key=api_key,
            api_version=api_version,
            correlation_id=correlation_id,
            client_id=client_id,
        ) from None
    return tuple.__new__(
        DecodedRequest, (_API_KEYS[api_key], api_version, correlation_id, client_id, body)
    )


def _describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        # kio: "Unknown tagged field tag: N"; the protocol lets readers skip unknown tags,
        # kio cannot, so such a request is refused rather than misread.
        return str(error.args[0]) if error.args else "unknown tagged field"
    return str(error) or type(error).__name__


def encode_response(request: RequestHeaderLike, response: ResponsePayload) -> bytes:
    """Encode ``response`` to ``request`` as a complete frame, size prefix included.

    The response must be of the request's API key and version, with one exception: an
    ApiVersions v0 response answering an ApiVersions request of any version (what Kafka
    sends when it does not support the requested version).

    :raises ValueError: the response does not belong to the request.
    """
    api_key = response.__api_key__
    version = response.__version__
    if api_key != request.api_key or (
        version != request.api_version and not (api_key == ApiKey.API_VERSIONS and version == 0)
    ):
        raise ValueError(
            f"{type(response).__qualname__} v{version} (API key {api_key}) cannot answer "
            f"API key {request.api_key} v{request.api_version}"
        )
    response_type = type(response)
    header = INT32.pack(request.correlation_id)
    if is_flexible_response_header(response_type):
        header += b"\x00"
    if api_key == ApiKey.FETCH and version in FETCH_FAST_VERSIONS:
        parts = fetch_response_parts(response)
        size = len(header) + sum(len(part) for part in parts)
        return b"".join((INT32.pack(size), header, *parts))
    buffer = io.BytesIO()
    buffer.write(b"\x00\x00\x00\x00")
    buffer.write(header)
    entity_writer(response_type)(buffer, response)
    size = buffer.tell() - 4
    with buffer.getbuffer() as view:
        INT32.pack_into(view, 0, size)
    return buffer.getvalue()
