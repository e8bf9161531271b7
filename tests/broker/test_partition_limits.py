"""Partition limits per request and per broker, and many partitions under a low ulimit -n."""

from __future__ import annotations

import datetime
import os
import resource
import socket
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from streamlog.protocol import ApiKey, ErrorCode, build_message, decode_response, request_class
from streamlog.protocol import encode_request as _encode

from .brokerproc import BrokerProcess
from .test_broker_process import connect, recv_frame


def call(sock: socket.socket, api_key: ApiKey, version: int, **fields):
    body = build_message(request_class(api_key, version), **fields)
    sock.sendall(_encode(body, correlation_id=1, client_id="partitions"))
    return decode_response(recv_frame(sock), api_key, version)[1]


def create_topics(sock: socket.socket, *topics: tuple[str, int], validate_only: bool = False):
    response = call(
        sock,
        ApiKey.CREATE_TOPICS,
        5,
        topics=[{"name": n, "num_partitions": p, "replication_factor": 1} for n, p in topics],
        timeout=datetime.timedelta(seconds=30),
        validate_only=validate_only,
    )
    return [(t.name, t.error_code, t.error_message) for t in response.topics]


def create_partitions(sock: socket.socket, topic: str, count: int):
    response = call(
        sock,
        ApiKey.CREATE_PARTITIONS,
        3,
        topics=[{"name": topic, "count": count, "assignments": None}],
        timeout=datetime.timedelta(seconds=30),
        validate_only=False,
    )
    [result] = response.results
    return result.error_code, result.error_message


def partition_dirs(broker: BrokerProcess, topic: str) -> list[str]:
    return [e for e in os.listdir(broker.data_dir) if e.rpartition("-")[0] == topic]


def topic_error(sock: socket.socket, topic: str) -> int:
    response = call(
        sock, ApiKey.METADATA, 9, topics=[{"name": topic}], allow_auto_topic_creation=True
    )
    [entry] = response.topics
    return entry.error_code


def test_a_request_for_too_many_partitions_creates_nothing(broker) -> None:
    sock = connect(broker)
    [(name, code, message)] = create_topics(sock, ("huge", 10_000))
    assert (name, code) == ("huge", ErrorCode.POLICY_VIOLATION)
    assert "would create 10000 partitions" in message and "at most 1000" in message
    assert partition_dirs(broker, "huge") == []
    # The limit is on the request's sum: two topics of 600 are refused together ...
    results = create_topics(sock, ("left", 600), ("right", 600))
    assert [(n, c) for n, c, _ in results] == [
        ("left", ErrorCode.POLICY_VIOLATION),
        ("right", ErrorCode.POLICY_VIOLATION),
    ]
    assert partition_dirs(broker, "left") == partition_dirs(broker, "right") == []
    # ... and either alone is fine, as is growing it within the limit per request.
    assert create_topics(sock, ("left", 600)) == [("left", ErrorCode.NONE, None)]
    assert len(partition_dirs(broker, "left")) == 600
    code, message = create_partitions(sock, "left", 1700)
    assert code == ErrorCode.POLICY_VIOLATION and "would create 1100 partitions" in message
    assert create_partitions(sock, "left", 1600) == (ErrorCode.NONE, None)
    assert len(partition_dirs(broker, "left")) == 1600
    sock.close()
    assert "Traceback" not in broker.logs()


def test_the_broker_limit_covers_every_way_to_create_partitions(tmp_path) -> None:
    proc = BrokerProcess(str(tmp_path / "d"), ("--max-partitions", "100")).start()
    try:
        sock = connect(proc)
        # __consumer_offsets holds 10 of the 100, __transaction_state 4.
        assert create_topics(sock, ("a", 60)) == [("a", ErrorCode.NONE, None)]
        [(_, code, message)] = create_topics(sock, ("b", 40))
        assert code == ErrorCode.POLICY_VIOLATION
        assert "holds 74 partitions; 40 more would pass its limit of 100" in message
        [(_, code, _)] = create_topics(sock, ("b", 40), validate_only=True)
        assert code == ErrorCode.POLICY_VIOLATION
        assert create_topics(sock, ("b", 26)) == [("b", ErrorCode.NONE, None)]
        assert create_partitions(sock, "a", 61)[0] == ErrorCode.POLICY_VIOLATION
        # Auto-creation (Metadata here, Produce alike) is refused like an unknown topic.
        assert topic_error(sock, "auto") == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert partition_dirs(proc, "auto") == []
        response = call(
            sock,
            ApiKey.DELETE_TOPICS,
            4,
            topic_names=["b"],
            timeout=datetime.timedelta(seconds=30),
        )
        assert response.responses[0].error_code == ErrorCode.NONE
        assert topic_error(sock, "auto") == ErrorCode.NONE  # room again
        sock.close()
        assert "Traceback" not in proc.logs()
    finally:
        assert proc.stop() == 0


def _low_descriptor_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


@pytest.mark.slow
def test_three_thousand_partitions_under_ulimit_256_are_served(tmp_path) -> None:
    """Before segment files were opened lazily, a 1,000-partition topic needed 3,000
    descriptors: the create failed half-way with EMFILE and the broker stopped answering."""
    proc = BrokerProcess(str(tmp_path / "d"), preexec_fn=_low_descriptor_limit).start()
    try:
        admin = KafkaAdminClient(bootstrap_servers=proc.bootstrap, request_timeout_ms=60_000)
        for t in range(3):
            admin.create_topics([NewTopic(f"wide{t}", 1000, 1)])
        admin.close()
        producer = Producer({"bootstrap.servers": proc.bootstrap, "linger.ms": 50})
        for t in range(3):
            for p in range(1000):
                producer.produce(f"wide{t}", value=b"%d" % p, partition=p)
        assert producer.flush(60) == 0
        consumer = Consumer(
            {
                "bootstrap.servers": proc.bootstrap,
                "group.id": "wide-reader",
                "fetch.queue.backoff.ms": 10,
            }
        )
        consumer.assign([TopicPartition(f"wide{t}", p, 0) for t in range(3) for p in range(1000)])
        seen: set[tuple[str, int]] = set()
        deadline = time.monotonic() + 90
        while len(seen) < 3000 and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is None:
                    assert int(msg.value()) == msg.partition()
                    seen.add((msg.topic(), msg.partition()))
        consumer.close()
        assert len(seen) == 3000
        logs = proc.logs()
        assert "Too many open files" not in logs and "Traceback" not in logs
    finally:
        assert proc.stop() == 0
