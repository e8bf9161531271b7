"""kafka-python, confluent-kafka and kcat against ``streamlog broker``'s TLS listener:
SSL with a client certificate, and SASL_SSL with PLAIN and SCRAM-SHA-256.

Each client produces keyed records and reads them back; what comes back must be what was
sent, in order. Certificates come from ``openssl`` (``tests/tlscerts.py``); clients check
the broker's host name (127.0.0.1 is in the certificate).
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from tests.tlscerts import HAVE_OPENSSL, Pki

from .secure_brokers import USERS, mtls_broker, pki, sasl_ssl_broker

__all__ = ["mtls_broker", "pki", "sasl_ssl_broker"]  # fixtures, re-exported for pytest

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not HAVE_OPENSSL, reason="openssl is not installed"),
]

COUNT = 300
SENT = [(f"k{i % 11}".encode(), f"value-{i}".encode()) for i in range(COUNT)]


def _kafka_python_settings(kind: str, pki: Pki, mechanism: str | None) -> dict[str, Any]:
    if kind == "ssl":
        return {
            "security_protocol": "SSL",
            "ssl_cafile": pki.ca,
            "ssl_certfile": pki.client_cert,
            "ssl_keyfile": pki.client_key,
            "ssl_check_hostname": True,
        }
    return {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": pki.ca,
        "ssl_check_hostname": True,
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "bob",
        "sasl_plain_password": USERS["bob"],
    }


def _confluent_settings(kind: str, pki: Pki, mechanism: str | None) -> dict[str, Any]:
    if kind == "ssl":
        return {
            "security.protocol": "SSL",
            "ssl.ca.location": pki.ca,
            "ssl.certificate.location": pki.client_cert,
            "ssl.key.location": pki.client_key,
            "ssl.endpoint.identification.algorithm": "https",
        }
    return {
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": pki.ca,
        "ssl.endpoint.identification.algorithm": "https",
        "sasl.mechanism": mechanism,
        "sasl.username": "bob",
        "sasl.password": USERS["bob"],
    }


CASES = [
    ("ssl", None),
    ("sasl_ssl", "PLAIN"),
    ("sasl_ssl", "SCRAM-SHA-256"),
    ("sasl_ssl", "SCRAM-SHA-512"),
]


def _bootstrap(request: pytest.FixtureRequest, kind: str) -> str:
    broker = request.getfixturevalue("mtls_broker" if kind == "ssl" else "sasl_ssl_broker")
    return str(broker.bootstrap)


@pytest.mark.parametrize(("kind", "mechanism"), CASES)
def test_kafka_python_round_trips_over_tls(
    request: pytest.FixtureRequest, pki: Pki, kind: str, mechanism: str | None
) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    bootstrap = _bootstrap(request, kind)
    settings = _kafka_python_settings(kind, pki, mechanism)
    topic = f"kp-{kind}-{(mechanism or 'cert').lower()}"
    producer = KafkaProducer(bootstrap_servers=bootstrap, **settings)
    try:
        for key, value in SENT:
            producer.send(topic, value, key=key, partition=0)
        producer.flush(60)
    finally:
        producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=10_000, **settings)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        got = []
        for message in consumer:
            got.append((message.offset, message.key, message.value))
            if len(got) == COUNT:
                break
    finally:
        consumer.close()
    assert got == [(i, k, v) for i, (k, v) in enumerate(SENT)]


@pytest.mark.parametrize(("kind", "mechanism"), CASES)
def test_confluent_kafka_round_trips_over_tls(
    request: pytest.FixtureRequest, pki: Pki, kind: str, mechanism: str | None
) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    bootstrap = _bootstrap(request, kind)
    settings = _confluent_settings(kind, pki, mechanism)
    topic = f"ck-{kind}-{(mechanism or 'cert').lower()}"
    errors: list[Any] = []
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, **settings})
    for key, value in SENT:
        producer.produce(
            topic, value, key=key, partition=0, on_delivery=lambda e, m: e and errors.append(e)
        )
    assert producer.flush(60) == 0
    assert errors == []
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **settings,
        }
    )
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
        got: list[tuple[int, bytes, bytes]] = []
        polls = 0
        while len(got) < COUNT and polls < 200:
            polls += 1
            for message in consumer.consume(COUNT, timeout=0.5):
                assert message.error() is None, message.error()
                got.append((message.offset(), message.key(), message.value()))
    finally:
        consumer.close()
    assert got == [(i, k, v) for i, (k, v) in enumerate(SENT)]


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_round_trips_over_sasl_ssl_with_scram(sasl_ssl_broker: Any, pki: Pki) -> None:
    settings = [
        "-X", "security.protocol=SASL_SSL",
        "-X", f"ssl.ca.location={pki.ca}",
        "-X", "sasl.mechanisms=SCRAM-SHA-256",
        "-X", "sasl.username=alice",
        "-X", f"sasl.password={USERS['alice']}",
    ]  # fmt: skip
    base = ["kcat", "-b", sasl_ssl_broker.bootstrap, *settings, "-t", "kcat-sasl-ssl"]
    lines = "".join(f"{k.decode()}:{v.decode()}\n" for k, v in SENT)
    produced = subprocess.run(
        [*base, "-P", "-K", ":"], input=lines, capture_output=True, text=True, timeout=120
    )
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run(
        [*base, "-C", "-o", "beginning", "-e", "-f", "%o %k %s\n"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert consumed.returncode == 0, consumed.stderr
    rows = [line.split() for line in consumed.stdout.splitlines()]
    assert rows == [[str(i), k.decode(), v.decode()] for i, (k, v) in enumerate(SENT)]
