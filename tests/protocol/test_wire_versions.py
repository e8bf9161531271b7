"""Supported versions, negotiation, error codes, and the schemas behind them."""

from __future__ import annotations

import io

import pytest
from kio.schema.errors import ErrorCode as KioErrorCode
from kio.schema.index import api_key_map
from kio.serial import entity_writer

from streamlog.protocol import (
    SUPPORTED_VERSIONS,
    ApiKey,
    ErrorCode,
    VersionRange,
    build_message,
    negotiate,
    negotiate_all,
    request_class,
    response_class,
)
from streamlog.protocol._guard import check


def kio_bytes(entity: object) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    return buffer.getvalue()


BROKER_APIS = {
    "PRODUCE": (3, 9),
    "FETCH": (4, 12),
    "LIST_OFFSETS": (1, 7),
    "METADATA": (0, 12),
    "OFFSET_COMMIT": (2, 8),
    "OFFSET_FETCH": (1, 8),
    "FIND_COORDINATOR": (0, 4),
    "JOIN_GROUP": (0, 9),
    "HEARTBEAT": (0, 4),
    "LEAVE_GROUP": (0, 5),
    "SYNC_GROUP": (0, 5),
    "DESCRIBE_GROUPS": (0, 5),
    "LIST_GROUPS": (0, 4),
    "SASL_HANDSHAKE": (0, 1),
    "API_VERSIONS": (0, 4),
    "CREATE_TOPICS": (2, 7),
    "DELETE_TOPICS": (1, 6),
    "INIT_PRODUCER_ID": (0, 4),
    "ADD_PARTITIONS_TO_TXN": (0, 3),
    "ADD_OFFSETS_TO_TXN": (0, 3),
    "END_TXN": (0, 3),
    "TXN_OFFSET_COMMIT": (0, 3),
    "DESCRIBE_CONFIGS": (1, 4),
    "SASL_AUTHENTICATE": (0, 2),
    "CREATE_PARTITIONS": (0, 3),
    "DESCRIBE_TRANSACTIONS": (0, 0),
    "LIST_TRANSACTIONS": (0, 1),
}


def test_supported_versions_cover_every_api_the_broker_serves() -> None:
    assert {ApiKey(k).name: (r.min, r.max) for k, r in SUPPORTED_VERSIONS.items()} == BROKER_APIS


def test_api_key_names_match_kafkas() -> None:
    for key in ApiKey:
        assert api_key_map[key] == key.name.lower()


@pytest.mark.parametrize("api_key", sorted(SUPPORTED_VERSIONS))
def test_every_supported_version_has_schemas_and_a_guard(api_key: int) -> None:
    versions = SUPPORTED_VERSIONS[api_key]
    for version in range(versions.min, versions.max + 1):
        request_type = request_class(api_key, version)
        response_type = response_class(api_key, version)
        assert request_type.__api_key__ == response_type.__api_key__ == api_key
        assert request_type.__version__ == response_type.__version__ == version
        for message_type in (request_type, response_type):
            # The structural guard compiles for every message and walks it exactly.
            encoded = kio_bytes(build_message(message_type))
            assert check(message_type, encoded, 0, len(encoded)) == len(encoded)


def test_unknown_schema_lookup_raises_lookup_error() -> None:
    with pytest.raises(LookupError):
        request_class(ApiKey.PRODUCE, 2)
    with pytest.raises(LookupError):
        response_class(9999, 0)


def test_flexible_header_threshold_follows_kafka() -> None:
    # Request header v2 / response header v1 from the first flexible version of each API.
    from streamlog.protocol.schema import is_flexible_request_header, is_flexible_response_header

    assert not is_flexible_request_header(request_class(ApiKey.PRODUCE, 8))
    assert is_flexible_request_header(request_class(ApiKey.PRODUCE, 9))
    assert not is_flexible_response_header(response_class(ApiKey.FETCH, 11))
    assert is_flexible_response_header(response_class(ApiKey.FETCH, 12))
    assert is_flexible_request_header(request_class(ApiKey.API_VERSIONS, 3))
    assert not is_flexible_response_header(response_class(ApiKey.API_VERSIONS, 3))


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        (VersionRange(3, 9), VersionRange(0, 11), 9),
        (VersionRange(3, 9), VersionRange(0, 7), 7),
        (VersionRange(3, 9), VersionRange(5, 5), 5),
        (VersionRange(3, 9), VersionRange(0, 2), None),
        (VersionRange(3, 9), VersionRange(10, 13), None),
    ],
)
def test_negotiate_picks_the_highest_common_version(
    ours: VersionRange, theirs: VersionRange, expected: int | None
) -> None:
    assert negotiate(ours, theirs) == expected


def test_negotiate_all_skips_unknown_and_disjoint_apis() -> None:
    theirs = {
        ApiKey.PRODUCE: VersionRange(0, 11),
        ApiKey.FETCH: VersionRange(0, 3),
        ApiKey.METADATA: VersionRange(0, 13),
        68: VersionRange(0, 1),
    }
    assert negotiate_all(theirs) == {ApiKey.PRODUCE: 9, ApiKey.METADATA: 12}


def test_version_range_membership() -> None:
    assert 3 in VersionRange(3, 9)
    assert 9 in VersionRange(3, 9)
    assert 2 not in VersionRange(3, 9)
    assert 10 not in VersionRange(3, 9)


def test_error_codes_match_the_protocol_specification() -> None:
    # kio's enum is generated from Kafka's Errors; ours is written out by hand.
    assert {e.name: int(e) for e in ErrorCode} == {e.name.upper(): int(e) for e in KioErrorCode}
    assert {e.name for e in ErrorCode if e.retriable} == {
        e.name.upper() for e in KioErrorCode if e.retriable
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("UNKNOWN_SERVER_ERROR", -1),
        ("NONE", 0),
        ("OFFSET_OUT_OF_RANGE", 1),
        ("CORRUPT_MESSAGE", 2),
        ("UNKNOWN_TOPIC_OR_PARTITION", 3),
        ("NOT_LEADER_OR_FOLLOWER", 6),
        ("REQUEST_TIMED_OUT", 7),
        ("MESSAGE_TOO_LARGE", 10),
        ("COORDINATOR_NOT_AVAILABLE", 15),
        ("NOT_COORDINATOR", 16),
        ("INVALID_TOPIC_EXCEPTION", 17),
        ("RECORD_LIST_TOO_LARGE", 18),
        ("NOT_ENOUGH_REPLICAS", 19),
        ("INVALID_REQUIRED_ACKS", 21),
        ("ILLEGAL_GENERATION", 22),
        ("INCONSISTENT_GROUP_PROTOCOL", 23),
        ("INVALID_GROUP_ID", 24),
        ("UNKNOWN_MEMBER_ID", 25),
        ("INVALID_SESSION_TIMEOUT", 26),
        ("REBALANCE_IN_PROGRESS", 27),
        ("INVALID_COMMIT_OFFSET_SIZE", 28),
        ("TOPIC_AUTHORIZATION_FAILED", 29),
        ("GROUP_AUTHORIZATION_FAILED", 30),
        ("UNSUPPORTED_SASL_MECHANISM", 33),
        ("ILLEGAL_SASL_STATE", 34),
        ("UNSUPPORTED_VERSION", 35),
        ("TOPIC_ALREADY_EXISTS", 36),
        ("INVALID_PARTITIONS", 37),
        ("INVALID_REPLICATION_FACTOR", 38),
        ("INVALID_CONFIG", 40),
        ("INVALID_REQUEST", 42),
        ("UNSUPPORTED_FOR_MESSAGE_FORMAT", 43),
        ("OUT_OF_ORDER_SEQUENCE_NUMBER", 45),
        ("DUPLICATE_SEQUENCE_NUMBER", 46),
        ("INVALID_PRODUCER_EPOCH", 47),
        ("SASL_AUTHENTICATION_FAILED", 58),
        ("UNKNOWN_PRODUCER_ID", 59),
        ("NON_EMPTY_GROUP", 68),
        ("GROUP_ID_NOT_FOUND", 69),
        ("MEMBER_ID_REQUIRED", 79),
    ],
)
def test_error_codes_the_broker_needs(name: str, value: int) -> None:
    assert ErrorCode[name] == value
