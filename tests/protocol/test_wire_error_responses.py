"""error_response_for answers any request we serve, with the error everywhere it can go."""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlog.protocol import (
    SUPPORTED_VERSIONS,
    ApiKey,
    ErrorCode,
    ProduceRequestView,
    RequestPayload,
    UnsupportedVersionError,
    api_versions_response,
    build_message,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    error_response_for,
    request_class,
    response_class,
)

from .wire_helpers import api_version_params, error_codes_in

ERRORS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Header(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int


@pytest.mark.parametrize(("api_key", "version"), api_version_params())
@ERRORS
@given(data=st.data(), code=st.sampled_from([ErrorCode.UNKNOWN_SERVER_ERROR, ErrorCode.NONE, 87]))
def test_error_response_round_trips_with_the_code_everywhere(
    api_key: int, version: int, data: st.DataObject, code: int
) -> None:
    request = data.draw(st.from_type(request_class(api_key, version)))
    decoded = decode_request(encode_request(request, correlation_id=17, client_id="c")[4:])

    response = error_response_for(decoded, code)

    assert type(response) is response_class(api_key, version)
    correlation_id, parsed = decode_response(
        encode_response(decoded, response)[4:], api_key, version
    )
    assert correlation_id == 17
    assert parsed == response
    codes = list(error_codes_in(parsed))
    assert all(value == code for _, value in codes), codes


def _frame(request: RequestPayload) -> bytes:
    return encode_request(request, correlation_id=1, client_id=None)[4:]


@pytest.mark.parametrize("version", [3, 9])
def test_produce_error_mirrors_every_partition(version: int) -> None:
    request = build_message(
        request_class(ApiKey.PRODUCE, version),
        acks=1,
        topic_data=[
            {"name": "a", "partition_data": [{"index": 0, "records": b"x"}, {"index": 2}]},
            {"name": "b", "partition_data": [{"index": 7, "records": None}]},
        ],
    )
    decoded = decode_request(_frame(request))
    assert isinstance(decoded.body, ProduceRequestView)

    response: Any = error_response_for(decoded, ErrorCode.NOT_LEADER_OR_FOLLOWER)

    seen = [
        (t.name, p.index, int(p.error_code), p.base_offset)
        for t in response.responses
        for p in t.partition_responses
    ]
    assert seen == [("a", 0, 6, -1), ("a", 2, 6, -1), ("b", 7, 6, -1)]


@pytest.mark.parametrize("version", [4, 12])
def test_fetch_error_sets_sentinels_and_empty_records(version: int) -> None:
    request = build_message(
        request_class(ApiKey.FETCH, version),
        topics=[{"topic": "t", "partitions": [{"partition": 3, "fetch_offset": 10}]}],
    )
    response: Any = error_response_for(
        decode_request(_frame(request)), ErrorCode.UNKNOWN_SERVER_ERROR
    )
    (topic,) = response.responses
    (partition,) = topic.partitions
    assert (topic.topic, partition.partition_index) == ("t", 3)
    assert (partition.high_watermark, partition.last_stable_offset) == (-1, -1)
    assert partition.records == b""
    if version >= 7:
        assert response.error_code == ErrorCode.UNKNOWN_SERVER_ERROR


def test_offset_fetch_v8_answers_per_group() -> None:
    request = build_message(
        request_class(ApiKey.OFFSET_FETCH, 8),
        groups=[
            {"group_id": "g1", "topics": [{"name": "t", "partition_indexes": [0, 1]}]},
            {"group_id": "g2", "topics": None},
        ],
    )
    response: Any = error_response_for(decode_request(_frame(request)), ErrorCode.NOT_COORDINATOR)
    groups = response.groups
    assert [(g.group_id, int(g.error_code)) for g in groups] == [("g1", 16), ("g2", 16)]
    assert [p.committed_offset for p in groups[0].topics[0].partitions] == [-1, -1]
    assert groups[1].topics == ()


def test_init_producer_id_error_has_no_producer() -> None:
    request = build_message(request_class(ApiKey.INIT_PRODUCER_ID, 4), transaction_timeout=60_000)
    response: Any = error_response_for(decode_request(_frame(request)), ErrorCode.NOT_COORDINATOR)
    assert (response.producer_id, response.producer_epoch) == (-1, -1)


def test_api_versions_error_lists_versions_only_for_unsupported_version() -> None:
    request = build_message(request_class(ApiKey.API_VERSIONS, 3))
    decoded = decode_request(_frame(request))
    plain: Any = error_response_for(decoded, ErrorCode.INVALID_REQUEST)
    assert plain.api_keys == ()
    listed: Any = error_response_for(decoded, ErrorCode.UNSUPPORTED_VERSION)
    assert len(listed.api_keys) == len(SUPPORTED_VERSIONS)


def test_unsupported_api_versions_version_is_answered_with_v0() -> None:
    frame = struct.pack(">hhih", ApiKey.API_VERSIONS, 9, 555, 2) + b"me" + b"\x00\x07future"
    with pytest.raises(UnsupportedVersionError) as info:
        decode_request(frame)

    response = error_response_for(info.value, ErrorCode.UNSUPPORTED_VERSION)
    encoded = encode_response(info.value, response)

    assert type(response) is response_class(ApiKey.API_VERSIONS, 0)
    # size, correlation id, no header tags (v0), error 35, api key count
    assert encoded[:14] == struct.pack(">iihi", len(encoded) - 4, 555, 35, len(SUPPORTED_VERSIONS))
    _, parsed = decode_response(encoded[4:], ApiKey.API_VERSIONS, 0)
    ranges = {k.api_key: (k.min_version, k.max_version) for k in parsed.api_keys}
    assert ranges == {key: (r.min, r.max) for key, r in SUPPORTED_VERSIONS.items()}


def test_client_reads_the_v0_downgrade_answer_to_a_flexible_api_versions_request() -> None:
    response = api_versions_response(0, error_code=ErrorCode.UNSUPPORTED_VERSION)
    frame = encode_response(Header(ApiKey.API_VERSIONS, 3, 8), response)
    correlation_id, parsed = decode_response(frame[4:], ApiKey.API_VERSIONS, 3)
    assert correlation_id == 8
    assert type(parsed) is response_class(ApiKey.API_VERSIONS, 0)
    assert parsed.error_code == ErrorCode.UNSUPPORTED_VERSION


def test_unsupported_version_of_other_apis_has_no_response() -> None:
    error = UnsupportedVersionError(
        api_key=ApiKey.FETCH,
        api_version=99,
        correlation_id=1,
        client_id=None,
        min_version=4,
        max_version=12,
    )
    with pytest.raises(ValueError, match="close the connection"):
        error_response_for(error, ErrorCode.UNSUPPORTED_VERSION)


@pytest.mark.parametrize("version", [0, 3, 4])
def test_api_versions_response_advertises_supported_versions(version: int) -> None:
    response = api_versions_response(version, throttle_time_ms=5)
    frame = encode_response(Header(ApiKey.API_VERSIONS, version, 2), response)
    _, parsed = decode_response(frame[4:], ApiKey.API_VERSIONS, version)
    assert parsed.error_code == ErrorCode.NONE
    assert [(k.api_key, k.min_version, k.max_version) for k in parsed.api_keys] == [
        (key, r.min, r.max) for key, r in sorted(SUPPORTED_VERSIONS.items())
    ]
