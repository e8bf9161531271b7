"""Internal topics against a real ``streamlog broker``: written by the broker only.

A client that could produce to ``__consumer_offsets`` could move any group's committed
offsets, or store a batch that no later start can load. Kafka refuses such writes with
INVALID_TOPIC_EXCEPTION; these tests check the refusal through kafka-python,
confluent-kafka and raw requests, and that a damaged offsets segment never stops a start.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

import aiokafka.errors
import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka import KafkaError, Producer
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic
from kafka.errors import InvalidTopicError, TopicAlreadyExistsError

from streamlog.log.group_offsets import OffsetAndMetadata as StoredOffset
from streamlog.log.group_offsets import encode_offset_key, encode_offset_value, java_string_hash
from streamlog.log.records import encode_batch
from streamlog.protocol import ApiKey, ErrorCode, decode_response, encode_request, request_class
from streamlog.protocol.schema import build_message

from ..log.logutil import append_to_segment_file, undecodable_batch
from .brokerproc import BrokerProcess
from .test_broker_process import recv_frame

GROUP_TIMEOUTS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500}
OFFSETS_PARTITIONS = 10  # the broker's default offsets.topic.num.partitions


def offsets_partition(group: str) -> int:
    return (java_string_hash(group) & 0x7FFFFFFF) % OFFSETS_PARTITIONS


def forged_commit(group: str, topic: str, partition: int, offset: int) -> tuple[bytes, bytes]:
    """(key, value) of the record the broker itself writes for an offset commit."""
    value = encode_offset_value(StoredOffset(offset, "", -1, int(time.time() * 1000)))
    return encode_offset_key(group, topic, partition), value


def committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **GROUP_TIMEOUTS
    )
    try:
        return consumer.committed(tp)
    finally:
        consumer.close()


def commit(bootstrap: str, group: str, tp: TopicPartition, offset: int) -> None:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **GROUP_TIMEOUTS
    )
    try:
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})
    finally:
        consumer.close()


def make_topic(bootstrap: str, topic: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(topic, b"x", partition=0).get(10)
    producer.close()


def test_aiokafka_cannot_forge_another_groups_offset(shared_broker) -> None:
    """kafka-python refuses internal topics before sending; aiokafka sends, as the
    probe's forger did, and the broker must refuse."""
    topic, group = "ip-aio-orders", "ip-aio-victim"
    tp = TopicPartition(topic, 0)
    make_topic(shared_broker.bootstrap, topic)
    commit(shared_broker.bootstrap, group, tp, 17)
    key, value = forged_commit(group, topic, 0, 999_999)

    async def forge() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=shared_broker.bootstrap)
        await producer.start()
        try:
            with pytest.raises(aiokafka.errors.InvalidTopicError):
                await producer.send_and_wait(
                    "__consumer_offsets", value, key=key, partition=offsets_partition(group)
                )
        finally:
            await producer.stop()

    asyncio.run(asyncio.wait_for(forge(), 30))
    assert committed(shared_broker.bootstrap, group, tp) == 17


def test_confluent_cannot_forge_another_groups_offset(shared_broker) -> None:
    topic, group = "ip-ck-orders", "ip-ck-victim"
    tp = TopicPartition(topic, 0)
    make_topic(shared_broker.bootstrap, topic)
    commit(shared_broker.bootstrap, group, tp, 23)
    key, value = forged_commit(group, topic, 0, 999_999)
    errors: list[KafkaError | None] = []
    producer = Producer(
        {"bootstrap.servers": shared_broker.bootstrap, "message.timeout.ms": 10_000}
    )
    producer.produce(
        "__consumer_offsets",
        value=value,
        key=key,
        partition=offsets_partition(group),
        on_delivery=lambda err, msg: errors.append(err),
    )
    assert producer.flush(20) == 0
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == KafkaError.TOPIC_EXCEPTION
    assert committed(shared_broker.bootstrap, group, tp) == 23


def test_a_produce_request_is_refused_per_partition(shared_broker) -> None:
    """One request, an internal and an ordinary partition: only the internal one fails."""
    make_topic(shared_broker.bootstrap, "ip-raw")
    batch = encode_batch([(b"k", b"v", int(time.time() * 1000), ())])
    body = build_message(
        request_class(ApiKey.PRODUCE, 9),
        transactional_id=None,
        acks=-1,
        timeout=5000,
        topic_data=[
            {"name": "__consumer_offsets", "partition_data": [{"index": 3, "records": batch}]},
            {"name": "__transaction_state", "partition_data": [{"index": 0, "records": batch}]},
            {"name": "ip-raw", "partition_data": [{"index": 0, "records": batch}]},
        ],
    )
    with socket.create_connection(("127.0.0.1", shared_broker.port), timeout=10) as sock:
        sock.settimeout(10)
        sock.sendall(encode_request(body, correlation_id=7, client_id="forger"))
        correlation, response = decode_response(recv_frame(sock), ApiKey.PRODUCE, 9)
    assert correlation == 7
    codes = {
        (t.name, p.index): (int(p.error_code), p.error_message)
        for t in response.responses
        for p in t.partition_responses
    }
    assert codes[("__consumer_offsets", 3)] == (
        ErrorCode.INVALID_TOPIC_EXCEPTION,
        "Cannot append to internal topic __consumer_offsets",
    )
    assert codes[("__transaction_state", 0)][0] == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert codes[("ip-raw", 0)] == (ErrorCode.NONE, None)


def test_admin_requests_cannot_create_delete_or_grow_internal_topics(shared_broker) -> None:
    admin = KafkaAdminClient(bootstrap_servers=shared_broker.bootstrap)
    try:
        for name in ("__share_group_state", "__cluster_metadata"):
            with pytest.raises(InvalidTopicError):
                admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
            with pytest.raises(InvalidTopicError):
                admin.create_topics(
                    [NewTopic(name, num_partitions=1, replication_factor=1)], validate_only=True
                )
        with pytest.raises(InvalidTopicError):
            admin.create_partitions({"__consumer_offsets": NewPartitions(total_count=20)})
        with pytest.raises(InvalidTopicError):
            admin.create_partitions(
                {"__consumer_offsets": NewPartitions(total_count=20)}, validate_only=True
            )
        with pytest.raises(InvalidTopicError):
            admin.delete_topics(["__consumer_offsets"])
        described = admin.describe_topics(["__consumer_offsets"])
        assert described[0]["is_internal"]
        assert len(described[0]["partitions"]) == OFFSETS_PARTITIONS
        # __transaction_state exists (the transaction coordinator's): as __consumer_offsets
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics(
                [NewTopic("__transaction_state", num_partitions=1, replication_factor=1)]
            )
        with pytest.raises(InvalidTopicError):
            admin.delete_topics(["__transaction_state"])
        with pytest.raises(InvalidTopicError):
            admin.create_partitions({"__transaction_state": NewPartitions(total_count=20)})
        described = admin.describe_topics(["__transaction_state"])
        assert described[0]["is_internal"]
        assert len(described[0]["partitions"]) == 4
    finally:
        admin.close()


def test_a_damaged_offsets_segment_never_stops_a_start(tmp_path) -> None:
    """Garbage written straight into ``__consumer_offsets`` segment files while the broker
    is stopped: a batch whose records do not decode, and bytes that are no batch at all.
    The broker starts, logs what it skipped or cut, and every other commit still loads."""
    proc = BrokerProcess(str(tmp_path / "data")).start()
    topic = "ip-damage"
    tp = TopicPartition(topic, 0)
    victim = "ip-damage-victim"
    partition = offsets_partition(victim)
    neighbour = next(
        g for i in range(200) if offsets_partition(g := f"ip-neighbour-{i}") == partition
    )
    elsewhere = next(
        g for i in range(200) if offsets_partition(g := f"ip-elsewhere-{i}") != partition
    )
    try:
        make_topic(proc.bootstrap, topic)
        commit(proc.bootstrap, victim, tp, 5)
        commit(proc.bootstrap, neighbour, tp, 6)
        commit(proc.bootstrap, elsewhere, tp, 7)
        assert proc.stop() == 0

        data = tmp_path / "data"
        bad_offset = append_to_segment_file(
            str(data / f"__consumer_offsets-{partition}"), undecodable_batch()
        )
        other_dir = data / f"__consumer_offsets-{offsets_partition(elsewhere)}"
        other_log = sorted(n for n in os.listdir(other_dir) if n.endswith(".log"))[-1]
        with open(other_dir / other_log, "ab") as f:
            f.write(b"\x00" * 8 + b"\xff\xff\xff\xf4" + os.urandom(100))  # length -12

        proc.start()
        logs = proc.logs()
        assert f"__consumer_offsets-{partition} offset {bad_offset}: skipped" in logs
        assert "varint" in logs
        assert f"{other_log}: cut 112 bytes" in logs
        assert committed(proc.bootstrap, victim, tp) == 5
        assert committed(proc.bootstrap, neighbour, tp) == 6
        assert committed(proc.bootstrap, elsewhere, tp) == 7

        commit(proc.bootstrap, victim, tp, 8)  # written after the bad batch
        assert proc.stop() == 0
        proc.start()
        assert committed(proc.bootstrap, victim, tp) == 8
        assert committed(proc.bootstrap, neighbour, tp) == 6
    finally:
        assert proc.stop() == 0, proc.logs()
