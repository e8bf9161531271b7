"""Client encode -> server decode and server encode -> client decode, for every API we serve."""

from __future__ import annotations

from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlog.protocol import (
    ApiKey,
    FrameDecoder,
    ProduceRequestView,
    build_message,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    request_class,
    response_class,
)

from .wire_helpers import api_version_params, client_ids

ROUND_TRIP = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Header(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int


def _single_frame(data: bytes) -> bytes:
    frames = FrameDecoder().feed(data)
    assert len(frames) == 1
    return frames[0]


@pytest.mark.parametrize(("api_key", "version"), api_version_params())
@ROUND_TRIP
@given(data=st.data())
def test_request_round_trip(api_key: int, version: int, data: st.DataObject) -> None:
    request = data.draw(st.from_type(request_class(api_key, version)))
    correlation_id = data.draw(st.integers(-(2**31), 2**31 - 1))
    client_id = data.draw(client_ids)

    decoded = decode_request(
        _single_frame(encode_request(request, correlation_id=correlation_id, client_id=client_id))
    )

    assert decoded.api_key == api_key
    assert decoded.api_version == version
    assert decoded.correlation_id == correlation_id
    assert decoded.client_id == client_id
    if api_key == ApiKey.PRODUCE:
        assert isinstance(decoded.body, ProduceRequestView)
        assert decoded.body.to_kio() == request
    else:
        assert decoded.body == request


@pytest.mark.parametrize(("api_key", "version"), api_version_params())
@ROUND_TRIP
@given(data=st.data())
def test_response_round_trip(api_key: int, version: int, data: st.DataObject) -> None:
    response = data.draw(st.from_type(response_class(api_key, version)))
    correlation_id = data.draw(st.integers(-(2**31), 2**31 - 1))

    frame = _single_frame(encode_response(Header(api_key, version, correlation_id), response))

    assert decode_response(frame, api_key, version) == (correlation_id, response)


def test_request_header_v1_layout() -> None:
    request = build_message(request_class(ApiKey.HEARTBEAT, 0), group_id="g", member_id="m")
    frame = encode_request(request, correlation_id=258, client_id="cli")
    assert frame == (
        b"\x00\x00\x00\x17"  # size 23
        b"\x00\x0c\x00\x00\x00\x00\x01\x02"  # api key 12, version 0, correlation id 258
        b"\x00\x03cli"  # client id, int16 length
        b"\x00\x01g\x00\x00\x00\x00\x00\x01m"  # group id, generation 0, member id
    )


def test_request_header_v2_layout_keeps_a_legacy_client_id() -> None:
    request = build_message(
        request_class(ApiKey.HEARTBEAT, 4), group_id="g", generation_id=7, member_id="m"
    )
    frame = encode_request(request, correlation_id=1, client_id=None)
    assert frame == (
        b"\x00\x00\x00\x15"
        b"\x00\x0c\x00\x04\x00\x00\x00\x01"
        b"\xff\xff"  # null client id: still int16 length in header v2
        b"\x00"  # header tagged fields
        b"\x02g\x00\x00\x00\x07\x02m\x00"  # compact strings, null instance id, tags
        b"\x00"
    )
    decoded = decode_request(frame[4:])
    assert decoded.client_id is None
    assert decoded.body == request


def test_response_header_v1_for_flexible_versions() -> None:
    response = build_message(response_class(ApiKey.HEARTBEAT, 4), error_code=27)
    frame = encode_response(Header(ApiKey.HEARTBEAT, 4, 9), response)
    # correlation id, empty header tags, throttle 0, error 27, empty body tags
    assert frame == b"\x00\x00\x00\x0c\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x1b\x00"


def test_response_header_v0_for_non_flexible_versions() -> None:
    response = build_message(response_class(ApiKey.HEARTBEAT, 0), error_code=27)
    frame = encode_response(Header(ApiKey.HEARTBEAT, 0, 9), response)
    assert frame == b"\x00\x00\x00\x06\x00\x00\x00\x09\x00\x1b"


@pytest.mark.parametrize("version", [3, 4])
def test_api_versions_response_uses_header_v0_even_when_flexible(version: int) -> None:
    response = build_message(
        response_class(ApiKey.API_VERSIONS, version),
        api_keys=[{"api_key": 18, "min_version": 0, "max_version": 4}],
    )
    frame = encode_response(Header(ApiKey.API_VERSIONS, version, 5), response)
    # No header tag byte after the correlation id: the body's error code follows at once.
    assert frame[4:14] == b"\x00\x00\x00\x05\x00\x00\x02\x00\x12\x00"
    assert decode_response(frame[4:], ApiKey.API_VERSIONS, version) == (5, response)


def test_encode_response_refuses_a_response_of_another_api_or_version() -> None:
    heartbeat = build_message(response_class(ApiKey.HEARTBEAT, 1))
    with pytest.raises(ValueError):
        encode_response(Header(ApiKey.SYNC_GROUP, 1, 1), heartbeat)
    with pytest.raises(ValueError):
        encode_response(Header(ApiKey.HEARTBEAT, 2, 1), heartbeat)
