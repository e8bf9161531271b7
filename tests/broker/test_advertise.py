"""``streamlog broker --advertise HOST:PORT``: what a real broker process tells clients
to connect to, read back with streamlog's own client (Metadata, FindCoordinator) and with
kafka-python's cluster metadata; and never a wildcard address."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from streamlog.broker.config import BrokerConfig
from streamlog.protocol import ApiKey
from streamlog.transport.kafka.connection import Connection
from tests.broker.brokerproc import BrokerProcess
from tests.cli.test_tools_harness import streamlog

pytestmark = pytest.mark.timeout(120)


def advertised(port: int) -> tuple[tuple[str, int], tuple[str, int]]:
    """(Metadata's broker, FindCoordinator's coordinator) as answered over one real
    connection to 127.0.0.1:``port`` (never following the advertised address)."""

    async def ask() -> tuple[tuple[str, int], tuple[str, int]]:
        conn = await Connection("127.0.0.1", port).open()
        try:
            metadata: Any = await conn.request(
                conn.build(ApiKey.METADATA, topics=[], allow_auto_topic_creation=False)
            )
            coordinator: Any = await conn.request(
                conn.build(ApiKey.FIND_COORDINATOR, key="g", key_type=0, coordinator_keys=["g"])
            )
        finally:
            conn.close()
        [broker] = metadata.brokers
        if hasattr(coordinator, "coordinators"):
            [found] = coordinator.coordinators
        else:
            found = coordinator
        return (broker.host, broker.port), (found.host, found.port)

    return asyncio.run(asyncio.wait_for(ask(), 60))


@pytest.fixture
def broker_with(tmp_path) -> Iterator[Any]:
    started: list[BrokerProcess] = []

    def start(*args: str, port: int = 0) -> BrokerProcess:
        broker = BrokerProcess(str(tmp_path / f"data{len(started)}"), extra_args=args, port=port)
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        assert broker.stop() == 0, broker.logs()


def test_advertise_sets_host_and_port_for_every_client(broker_with) -> None:
    broker = broker_with("--advertise", "kafka.example.com:19092")
    metadata, coordinator = advertised(broker.port)
    assert metadata == ("kafka.example.com", 19092)
    assert coordinator == ("kafka.example.com", 19092)
    assert "(advertised kafka.example.com:19092)" in broker.logs()


def test_a_real_client_follows_the_advertised_address(broker_with) -> None:
    # Bootstrap on 127.0.0.1, advertise "localhost": kafka-python reads the advertised
    # address from Metadata and produces through it.
    from kafka import KafkaAdminClient, KafkaProducer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broker = broker_with("--advertise", f"localhost:{port}", port=port)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)
    try:
        brokers = admin.describe_cluster()["brokers"]
    finally:
        admin.close()
    assert [(b["host"], b["port"]) for b in brokers] == [("localhost", port)]
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)
    try:
        sent = producer.send("advertised", b"v").get(timeout=30)
    finally:
        producer.close(5)
    assert (sent.topic, sent.partition, sent.offset) == ("advertised", 0, 0)


def test_advertised_host_alone_keeps_the_bound_port(broker_with) -> None:
    broker = broker_with("--advertised-host", "127.0.0.2")
    assert advertised(broker.port) == (("127.0.0.2", broker.port), ("127.0.0.2", broker.port))


def test_default_is_the_concrete_listen_address(broker_with) -> None:
    broker = broker_with()
    assert advertised(broker.port) == (("127.0.0.1", broker.port), ("127.0.0.1", broker.port))


def test_a_wildcard_listener_advertises_the_host_name() -> None:
    # Not started on 0.0.0.0 here (tests stay on loopback): the address it would give.
    hostname = socket.gethostname()
    for host in ("0.0.0.0", "::", ""):
        assert BrokerConfig(host=host).advertised_address(9093) == (hostname, 9093)
    assert BrokerConfig(host="127.0.0.1").advertised_address(9093) == ("127.0.0.1", 9093)
    assert BrokerConfig(
        host="0.0.0.0", advertised_host="a.example", advertised_port=1
    ).advertised_address(9093) == ("a.example", 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--advertise", "0.0.0.0:9092"), "0.0.0.0 means every interface"),
        (("--advertise", "[::]:9092"), ":: means every interface"),
        (("--advertised-host", "0.0.0.0"), "0.0.0.0 means every interface"),
        (("--advertise", "kafka.example.com"), "expected HOST:PORT"),
        (("--advertise", "h:0"), "expected HOST:PORT with a port in 1..65535"),
        (("--advertise", "h:1", "--advertised-host", "h"), "not both"),
    ],
)
def test_bad_advertise_is_a_usage_error(tmp_path, args: tuple[str, ...], message: str) -> None:
    out = streamlog("broker", "--data-dir", str(tmp_path / "data"), *args, timeout=30)
    assert out.returncode == 2, out
    assert message in out.stderr
    assert not (tmp_path / "data").exists()
