"""The hand-written Produce decoder and Fetch encoder agree byte for byte with kio."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.serial import entity_reader, entity_writer

from streamlog.protocol import (
    ApiKey,
    build_message,
    decode_produce_request,
    encode_fetch_response,
    request_class,
    response_class,
)
from streamlog.protocol._wire import WireError

from .wire_helpers import all_version_params

AGREEMENT = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def kio_bytes(entity: object) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    return buffer.getvalue()


@pytest.mark.parametrize(("api_key", "version"), all_version_params(ApiKey.FETCH, range(4, 13)))
@AGREEMENT
@given(data=st.data())
def test_fetch_encoder_matches_kio_writer(api_key: int, version: int, data: st.DataObject) -> None:
    response = data.draw(st.from_type(response_class(api_key, version)))
    assert encode_fetch_response(response) == kio_bytes(response)


@pytest.mark.parametrize("version", range(4, 13))
def test_fetch_encoder_on_a_realistic_response(version: int) -> None:
    batch = bytes(range(256)) * 64
    response = build_message(
        response_class(ApiKey.FETCH, version),
        throttle_time=3,
        session_id=77,
        responses=[
            {
                "topic": "orders",
                "partitions": [
                    {
                        "partition_index": i,
                        "high_watermark": 1000 + i,
                        "last_stable_offset": 1000 + i,
                        "log_start_offset": 5,
                        "aborted_transactions": [] if i % 2 else None,
                        "records": batch if i != 2 else None,
                        "current_leader": {"leader_id": 1, "leader_epoch": 4},
                        "diverging_epoch": {"epoch": 3, "end_offset": 900} if i == 1 else {},
                        "snapshot_id": {"end_offset": 10, "epoch": 2} if i == 3 else {},
                    }
                    for i in range(4)
                ],
            },
            {"topic": "payments", "partitions": []},
        ],
    )
    encoded = encode_fetch_response(response)
    assert encoded == kio_bytes(response)
    decoded, size = entity_reader(type(response))(encoded, 0)
    assert size == len(encoded)
    assert decoded == response


def test_fetch_encoder_takes_memoryview_record_sets() -> None:
    stored = b"\x00" * 10 + b"batch-bytes" + b"\x00" * 10
    for version in (4, 12):
        with_bytes = build_message(
            response_class(ApiKey.FETCH, version),
            responses=[{"topic": "t", "partitions": [{"records": stored[10:21]}]}],
        )
        with_view = build_message(
            response_class(ApiKey.FETCH, version),
            responses=[{"topic": "t", "partitions": [{"records": memoryview(stored)[10:21]}]}],
        )
        assert encode_fetch_response(with_view) == encode_fetch_response(with_bytes)


def test_fetch_encoder_refuses_other_versions_and_apis() -> None:
    with pytest.raises(ValueError):
        encode_fetch_response(build_message(response_class(ApiKey.FETCH, 13)))
    with pytest.raises(ValueError):
        encode_fetch_response(build_message(response_class(ApiKey.HEARTBEAT, 0)))


@pytest.mark.parametrize(("api_key", "version"), all_version_params(ApiKey.PRODUCE, range(3, 10)))
@AGREEMENT
@given(data=st.data(), prefix=st.binary(max_size=8))
def test_produce_decoder_matches_kio_reader(
    api_key: int, version: int, data: st.DataObject, prefix: bytes
) -> None:
    request_type = request_class(api_key, version)
    request = data.draw(st.from_type(request_type))
    frame = prefix + kio_bytes(request)

    view, end = decode_produce_request(frame, len(prefix), version)

    expected, size = entity_reader(request_type)(frame, len(prefix))
    assert end == len(prefix) + size == len(frame)
    assert view.to_kio() == expected == request
    assert view.version == version
    for topic in view.topics:
        for partition in topic.partitions:
            if partition.records is not None:
                # A slice of the frame, not a copy.
                assert partition.records.obj is frame


def test_produce_decoder_returns_slices_at_the_right_offsets() -> None:
    batch_a, batch_b = b"A" * 70, b"B" * 300
    request = build_message(
        request_class(ApiKey.PRODUCE, 9),
        transactional_id="tx-1",
        acks=-1,
        timeout=30_000,
        topic_data=[
            {"name": "orders", "partition_data": [{"index": 0, "records": batch_a}]},
            {
                "name": "payments",
                "partition_data": [
                    {"index": 4, "records": batch_b},
                    {"index": 5, "records": None},
                ],
            },
        ],
    )
    frame = kio_bytes(request)
    view, end = decode_produce_request(frame, 0, 9)
    assert end == len(frame)
    assert (view.transactional_id, view.acks, view.timeout_ms) == ("tx-1", -1, 30_000)
    assert [t.name for t in view.topics] == ["orders", "payments"]
    orders, payments = view.topics
    assert orders.partitions[0].partition_index == 0
    assert bytes(orders.partitions[0].records or b"") == batch_a
    assert [p.partition_index for p in payments.partitions] == [4, 5]
    assert bytes(payments.partitions[0].records or b"") == batch_b
    assert payments.partitions[1].records is None


def test_produce_decoder_skips_unknown_tagged_fields() -> None:
    # The protocol lets a reader skip tags it does not know; kio raises KeyError instead.
    frame = (
        b"\x00"  # null transactional id
        b"\x00\x01\x00\x00\x03\xe8"  # acks 1, timeout 1000
        b"\x02"  # one topic
        b"\x02t"  # name "t"
        b"\x02"  # one partition
        b"\x00\x00\x00\x07"  # index 7
        b"\x04abc"  # records
        b"\x01\x05\x02zz"  # partition tags: tag 5, 2 bytes
        b"\x02\x00\x00\x09\x01x"  # topic tags: tag 0 (empty), tag 9 (1 byte)
        b"\x01\x7f\x00"  # request tags: tag 127, empty
    )
    view, end = decode_produce_request(frame, 0, 9)
    assert end == len(frame)
    assert view.topics[0].name == "t"
    assert view.topics[0].partitions[0].partition_index == 7
    assert bytes(view.topics[0].partitions[0].records or b"") == b"abc"
    with pytest.raises(KeyError):
        entity_reader(request_class(ApiKey.PRODUCE, 9))(frame, 0)


@pytest.mark.parametrize("version", [2, 10])
def test_produce_decoder_refuses_versions_outside_3_to_9(version: int) -> None:
    with pytest.raises(ValueError):
        decode_produce_request(b"", 0, version)


@pytest.mark.parametrize("version", [3, 9])
def test_produce_decoder_raises_wire_error_on_every_truncation(version: int) -> None:
    request = build_message(
        request_class(ApiKey.PRODUCE, version),
        transactional_id="t",
        topic_data=[{"name": "n", "partition_data": [{"index": 1, "records": b"xyz"}]}],
    )
    frame = kio_bytes(request)
    for cut in range(len(frame)):
        with pytest.raises(WireError):
            decode_produce_request(frame[:cut], 0, version)
