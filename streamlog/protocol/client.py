"""Client side: request objects out as frames, response frames in as objects.

The request header version follows the request's class (v2 for flexible versions, else
v1), and so does the response header's (v1 for flexible versions, except ApiVersions,
always v0). A client keeps ``(api_key, api_version)`` per in-flight correlation id: a
response does not say what it answers, so ``decode_response`` must be told.
"""

from __future__ import annotations

import io
import struct

from kio.serial import entity_reader, entity_writer
from kio.serial.errors import SerialError

from ._guard import check
from ._wire import INT16, INT32, WireError, skip_tagged_fields
from .errors import MalformedResponseError
from .schema import (
    RequestPayload,
    ResponsePayload,
    is_flexible_request_header,
    is_flexible_response_header,
    response_class,
)

__all__ = ["decode_response", "encode_request", "peek_correlation_id"]

_HEADER_PREFIX = struct.Struct(">hhi")
_API_VERSIONS = 18
_UNSUPPORTED_VERSION = 35
_DECODE_ERRORS = (WireError, SerialError, ValueError, KeyError, TypeError, OverflowError)


def encode_request(request: RequestPayload, *, correlation_id: int, client_id: str | None) -> bytes:
    """Encode a kio request object as a complete frame, size prefix included.

    API key and version come from the object's class.
    """
    request_type = type(request)
    buffer = io.BytesIO()
    buffer.write(b"\x00\x00\x00\x00")
    buffer.write(
        _HEADER_PREFIX.pack(request_type.__api_key__, request_type.__version__, correlation_id)
    )
    # client_id is a legacy (int16-length) nullable string in both header versions.
    if client_id is None:
        buffer.write(b"\xff\xff")
    else:
        encoded = client_id.encode()
        if len(encoded) > 0x7FFF:
            raise ValueError("client_id longer than 32767 bytes")
        buffer.write(struct.pack(">h", len(encoded)))
        buffer.write(encoded)
    if is_flexible_request_header(request_type):
        buffer.write(b"\x00")
    entity_writer(request_type)(buffer, request)
    size = buffer.tell() - 4
    with buffer.getbuffer() as view:
        INT32.pack_into(view, 0, size)
    return buffer.getvalue()


def peek_correlation_id(frame: bytes | bytearray | memoryview) -> int:
    """The correlation id of a response frame (size prefix stripped), to find its request.

    :raises MalformedResponseError: the frame is shorter than a correlation id.
    """
    if len(frame) < 4:
        raise MalformedResponseError(f"response frame of {len(frame)} bytes has no header")
    (correlation_id,) = INT32.unpack_from(frame, 0)
    return int(correlation_id)


def decode_response(
    frame: bytes | bytearray | memoryview, api_key: int, api_version: int
) -> tuple[int, ResponsePayload]:
    """Decode a response frame (size prefix stripped) to a request of ``api_key`` v``api_version``.

    :returns: ``(correlation_id, response)``. For ApiVersions the response may be a v0
        object carrying UNSUPPORTED_VERSION whatever version was asked: retry lower.
    :raises MalformedResponseError: the frame does not match the response schema.
        Bytes after the end of the body are ignored, as Kafka's clients do.
    :raises LookupError: kio has no schema for that API key and version.
    """
    correlation_id = peek_correlation_id(frame)
    if (
        api_key == _API_VERSIONS
        and api_version > 0
        and len(frame) >= 6
        and INT16.unpack_from(frame, 4)[0] == _UNSUPPORTED_VERSION
    ):
        # A broker that does not support the ApiVersions version we sent answers with
        # ApiVersions v0 (error code first in every version) and its supported ranges.
        try:
            return correlation_id, _decode_body(frame, _API_VERSIONS, 0)
        except MalformedResponseError:
            pass
    try:
        return correlation_id, _decode_body(frame, api_key, api_version)
    except MalformedResponseError as e:
        raise MalformedResponseError(
            f"response {correlation_id} (API key {api_key} v{api_version}): {e}"
        ) from None


def _decode_body(
    frame: bytes | bytearray | memoryview, api_key: int, api_version: int
) -> ResponsePayload:
    response_type = response_class(api_key, api_version)
    try:
        pos = 4
        if is_flexible_response_header(response_type):
            pos = skip_tagged_fields(frame, pos)
        # kio's reader must never see a hostile array count (see _guard.py).
        check(response_type, frame, pos, len(frame))
        response, _ = entity_reader(response_type)(frame, pos)
    except _DECODE_ERRORS as e:
        raise MalformedResponseError(str(e) or type(e).__name__) from None
    return response
