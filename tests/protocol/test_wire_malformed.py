"""Bad request frames end in the codec's own exceptions, never in anything else."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlog.protocol import (
    SUPPORTED_VERSIONS,
    ApiKey,
    MalformedRequestError,
    ProduceRequestView,
    RequestError,
    RequestPayload,
    UnsupportedApiError,
    UnsupportedVersionError,
    build_message,
    decode_request,
    encode_request,
    request_class,
)

from .wire_helpers import api_version_params

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def request_frame(
    request: RequestPayload, correlation_id: int = 42, client_id: str | None = "c"
) -> bytes:
    return encode_request(request, correlation_id=correlation_id, client_id=client_id)[4:]


@pytest.mark.parametrize(("api_key", "version"), api_version_params())
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_truncation_is_malformed(api_key: int, version: int, data: st.DataObject) -> None:
    frame = request_frame(data.draw(st.from_type(request_class(api_key, version))))
    decode_request(frame)  # the whole frame is fine
    for cut in range(len(frame)):
        with pytest.raises(MalformedRequestError) as info:
            decode_request(frame[:cut])
        if cut >= 8:
            assert info.value.correlation_id == 42
            assert info.value.api_key == api_key
            assert info.value.api_version == version
        else:
            assert info.value.correlation_id is None


@pytest.mark.parametrize(("api_key", "version"), api_version_params())
def test_trailing_bytes_are_ignored_as_kafka_does(api_key: int, version: int) -> None:
    request = build_message(request_class(api_key, version))
    decoded = decode_request(request_frame(request) + b"\x01\x02\x03")
    body = decoded.body.to_kio() if isinstance(decoded.body, ProduceRequestView) else decoded.body
    assert body == request


def test_librdkafka_all_topics_metadata_request_with_stray_bytes() -> None:
    # Captured from confluent-kafka 2.16 / librdkafka 2.16 (Producer.list_topics()): the
    # topic count is a 4-byte placeholder never compacted to a varint, so 3 bytes trail
    # the body. Kafka reads the first byte as a null array and ignores the rest.
    frame = (
        b"\x00\x03\x00\x0c\x00\x00\x00\x03\x00\x10golden-confluent\x00\x00\x00\x00\x00\x01\x00\x00"
    )
    decoded = decode_request(frame)
    assert (decoded.api_key, decoded.api_version, decoded.correlation_id) == (3, 12, 3)
    assert decoded.client_id == "golden-confluent"
    assert decoded.body == build_message(
        request_class(ApiKey.METADATA, 12),
        topics=None,
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )


def test_unknown_tagged_field_in_a_body_is_malformed_not_a_key_error() -> None:
    request = build_message(
        request_class(ApiKey.HEARTBEAT, 4), group_id="g", generation_id=1, member_id="m"
    )
    frame = request_frame(request)
    assert frame.endswith(b"\x00")
    tampered = frame[:-1] + b"\x01\x05\x01\x00"  # one tagged field: tag 5, 1 byte
    with pytest.raises(MalformedRequestError, match="tag") as info:
        decode_request(tampered)
    assert info.value.correlation_id == 42
    assert info.value.client_id == "c"


def test_unknown_tagged_field_in_the_request_header_is_skipped() -> None:
    request = build_message(request_class(ApiKey.API_VERSIONS, 3), client_software_name="x")
    frame = request_frame(request, client_id="abc")
    header_end = 8 + 2 + 3
    assert frame[header_end] == 0  # empty header tag section
    tampered = frame[:header_end] + b"\x01\x03\x02hi" + frame[header_end + 1 :]
    decoded = decode_request(tampered)
    assert decoded.body == request
    assert decoded.client_id == "abc"


def test_invalid_utf8_in_a_body_is_malformed() -> None:
    frame = request_frame(build_message(request_class(ApiKey.FIND_COORDINATOR, 0), key="ab"))
    with pytest.raises(MalformedRequestError):
        decode_request(frame.replace(b"\x00\x02ab", b"\x00\x02\xff\xfe"))


def test_negative_client_id_length_is_malformed() -> None:
    frame = struct.pack(">hhih", ApiKey.API_VERSIONS, 0, 7, -2)
    with pytest.raises(MalformedRequestError) as info:
        decode_request(frame)
    assert info.value.correlation_id == 7


def test_frame_shorter_than_a_header_is_malformed() -> None:
    with pytest.raises(MalformedRequestError) as info:
        decode_request(b"\x00\x12\x00")
    assert info.value.api_key is None
    assert info.value.correlation_id is None


@pytest.mark.parametrize("api_key", [21, 60, 1000, -1])
def test_unknown_api_key_carries_the_header(api_key: int) -> None:
    frame = struct.pack(">hhih", api_key, 3, 99, 3) + b"cli" + b"\x00" * 10
    with pytest.raises(UnsupportedApiError) as info:
        decode_request(frame)
    error = info.value
    assert (error.api_key, error.api_version, error.correlation_id, error.client_id) == (
        api_key,
        3,
        99,
        "cli",
    )


@pytest.mark.parametrize(
    ("api_key", "version", "supported"),
    [
        (ApiKey.PRODUCE, 2, (3, 9)),
        (ApiKey.PRODUCE, 10, (3, 9)),
        (ApiKey.FETCH, 3, (4, 12)),
        (ApiKey.FETCH, 13, (4, 12)),
        (ApiKey.API_VERSIONS, 5, (0, 4)),
        (ApiKey.API_VERSIONS, -1, (0, 4)),
    ],
)
def test_unsupported_version_carries_the_header_and_our_range(
    api_key: int, version: int, supported: tuple[int, int]
) -> None:
    # The body is garbage: it must not be looked at.
    frame = struct.pack(">hhih", api_key, version, 1234, -1) + b"\xde\xad"
    with pytest.raises(UnsupportedVersionError) as info:
        decode_request(frame)
    error = info.value
    assert (error.api_key, error.api_version, error.correlation_id) == (api_key, version, 1234)
    assert error.client_id is None
    assert (error.min_version, error.max_version) == supported


@pytest.mark.parametrize(("api_key", "version"), api_version_params())
@FUZZ
@given(data=st.data())
def test_corrupted_requests_raise_only_request_errors(
    api_key: int, version: int, data: st.DataObject
) -> None:
    frame = bytearray(request_frame(data.draw(st.from_type(request_class(api_key, version)))))
    positions = data.draw(st.lists(st.integers(0, len(frame) - 1), min_size=1, max_size=4))
    for position in positions:
        frame[position] = data.draw(st.integers(0, 255))
    try:
        decoded = decode_request(bytes(frame))
    except RequestError:
        return
    assert decoded.api_key == struct.unpack_from(">h", frame)[0]


_SERVED = sorted(
    (key, version) for key, r in SUPPORTED_VERSIONS.items() for version in range(r.min, r.max + 1)
)


@FUZZ
@given(
    served=st.sampled_from(_SERVED),
    client_id=st.binary(max_size=6),
    body=st.binary(max_size=200),
)
def test_random_bodies_raise_only_request_errors(
    served: tuple[int, int], client_id: bytes, body: bytes
) -> None:
    api_key, version = served
    frame = struct.pack(">hhih", api_key, version, 5, len(client_id)) + client_id + body
    try:
        decode_request(frame)
    except RequestError as e:
        assert e.correlation_id == 5


@FUZZ
@given(frame=st.binary(max_size=200))
def test_random_frames_raise_only_request_errors(frame: bytes) -> None:
    try:
        decode_request(frame)
    except RequestError:
        pass
