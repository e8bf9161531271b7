"""build_message: one set of plain values builds any version of a message."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from kio.schema.errors import ErrorCode as KioErrorCode

from streamlog.protocol import ApiKey, ErrorCode, build_message, request_class, response_class


def test_fields_a_version_lacks_are_dropped() -> None:
    values: dict[str, Any] = {
        "responses": [
            {
                "topic": "t",
                "partitions": [{"partition_index": 1, "log_start_offset": 5, "records": b"r"}],
            }
        ],
        "session_id": 9,
    }
    v4: Any = build_message(response_class(ApiKey.FETCH, 4), **values)
    v12: Any = build_message(response_class(ApiKey.FETCH, 12), **values)
    assert not hasattr(v4.responses[0].partitions[0], "log_start_offset")
    assert not hasattr(v4, "session_id")
    assert v12.responses[0].partitions[0].log_start_offset == 5
    assert v12.session_id == 9


def test_a_name_no_version_has_is_refused() -> None:
    with pytest.raises(TypeError, match="sesion_id"):
        build_message(response_class(ApiKey.FETCH, 12), sesion_id=1)
    with pytest.raises(TypeError, match="high_water_mark"):
        build_message(
            response_class(ApiKey.FETCH, 12),
            responses=[{"topic": "t", "partitions": [{"high_water_mark": 1}]}],
        )


def test_left_out_fields_take_defaults_then_zero_values() -> None:
    response: Any = build_message(
        response_class(ApiKey.METADATA, 12), topics=[{"name": "t", "partitions": [{}]}]
    )
    assert response.throttle_time == datetime.timedelta(0)
    assert response.brokers == ()
    assert response.cluster_id is None  # nullable
    assert response.controller_id == -1  # schema default
    topic = response.topics[0]
    assert topic.error_code is KioErrorCode.none
    assert topic.topic_id is None  # kio writes a null UUID as the zero UUID
    assert topic.is_internal is False
    assert topic.partitions[0].leader_epoch == -1
    assert topic.partitions[0].replica_nodes == ()


def test_plain_values_are_converted_to_kio_types() -> None:
    response: Any = build_message(
        response_class(ApiKey.PRODUCE, 9),
        throttle_time=250,
        responses=[
            {
                "name": "t",
                "partition_responses": [
                    {"index": 0, "error_code": ErrorCode.NOT_LEADER_OR_FOLLOWER},
                    {"index": 1, "error_code": 0, "log_append_time": 1_700_000_000_123},
                    {"index": 2, "log_append_time": -1},
                ],
            }
        ],
    )
    assert response.throttle_time == datetime.timedelta(milliseconds=250)
    partitions = response.responses[0].partition_responses
    assert partitions[0].error_code is KioErrorCode.not_leader_or_follower
    assert partitions[1].error_code is KioErrorCode.none
    assert partitions[1].log_append_time == datetime.datetime(
        2023, 11, 14, 22, 13, 20, 123000, tzinfo=datetime.UTC
    )
    assert partitions[2].log_append_time is None


def test_entity_instances_pass_through() -> None:
    request_type = request_class(ApiKey.PRODUCE, 9)
    topic = build_message(request_type, topic_data=[{"name": "t"}]).topic_data[0]
    request: Any = build_message(request_type, topic_data=[topic])
    assert request.topic_data[0] is topic
