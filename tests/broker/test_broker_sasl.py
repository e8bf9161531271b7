"""``streamlog broker --users-file``: real clients must authenticate with SASL."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from .brokerproc import BrokerProcess


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory):
    root = tmp_path_factory.mktemp("sasl")
    users = root / "users.txt"
    users.write_text("# test users\nalice:wonderland\nbob:builder\n", encoding="utf-8")
    proc = BrokerProcess(str(root / "data"), ("--users-file", str(users))).start()
    try:
        yield proc
    finally:
        assert proc.stop() == 0, proc.logs()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_kafka_python_authenticates_and_round_trips(sasl_broker, mechanism) -> None:
    auth = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "alice",
        "sasl_plain_password": "wonderland",
    }
    topic = f"sasl-kp-{mechanism.lower()}"
    producer = KafkaProducer(bootstrap_servers=sasl_broker.bootstrap, **auth)
    for i in range(20):
        producer.send(topic, value=b"%d" % i)
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=sasl_broker.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        **auth,
    )
    # Stop at the 20th record rather than wait out consumer_timeout_ms (10 s, kept as the
    # bound); the end offsets show there is nothing after it.
    values: list[int] = []
    for message in consumer:
        values.append(int(message.value))
        if len(values) == 20:
            break
    ends = consumer.end_offsets(list(consumer.assignment()))
    consumer.close()
    assert values == list(range(20))
    assert sum(ends.values()) == 20


def test_confluent_kafka_scram_round_trip(sasl_broker) -> None:
    auth = {
        "bootstrap.servers": sasl_broker.bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "bob",
        "sasl.password": "builder",
    }
    producer = Producer(auth)
    for i in range(50):
        producer.produce("sasl-ck", value=b"%d" % i)
    assert producer.flush(30) == 0
    consumer = Consumer({**auth, "group.id": "sasl-ck-g", "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition("sasl-ck", 0, 0)])
    got: list[int] = []
    deadline = time.monotonic() + 30
    while len(got) < 50 and time.monotonic() < deadline:
        for msg in consumer.consume(100, 0.5):
            if msg.error() is None:
                got.append(int(msg.value()))
    consumer.close()
    assert got == list(range(50))


def test_wrong_password_is_refused(sasl_broker) -> None:
    # kafka-python 3 retries a refused bootstrap until bootstrap_timeout_ms (30 s by
    # default; 2.x has no such option and gives up after max_block_ms).
    bootstrap_timeout = (
        {"bootstrap_timeout_ms": 5000}
        if "bootstrap_timeout_ms" in KafkaProducer.DEFAULT_CONFIG
        else {}
    )
    with pytest.raises(KafkaError):
        KafkaProducer(
            bootstrap_servers=sasl_broker.bootstrap,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_plain_username="alice",
            sasl_plain_password="wrong",
            max_block_ms=5000,
            request_timeout_ms=5000,
            **bootstrap_timeout,
        )
    assert "authentication" in sasl_broker.logs().lower()


def test_requests_before_authentication_close_the_connection(sasl_broker) -> None:
    sock = socket.create_connection(("127.0.0.1", sasl_broker.port), timeout=10)
    # Metadata v1 for all topics, with no SASL handshake first.
    body = struct.pack(">hhih", 3, 1, 1, 1) + b"t" + struct.pack(">i", -1)
    sock.sendall(struct.pack(">i", len(body)) + body)
    try:
        assert sock.recv(1) == b""
    except ConnectionResetError:
        pass
    sock.close()
    # A frame bigger than the pre-authentication limit is refused before reading it.
    sock = socket.create_connection(("127.0.0.1", sasl_broker.port), timeout=10)
    sock.sendall(struct.pack(">i", 10 * 1024 * 1024))
    try:
        assert sock.recv(1) == b""
    except ConnectionResetError:
        pass
    sock.close()
    assert "before authentication" in sasl_broker.logs()
