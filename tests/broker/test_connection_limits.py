"""Connection limits, deadlines and the failed-authentication delay, against a real broker.

Every client here runs on loopback, so "many addresses" are made the way Linux allows:
the whole of 127.0.0.0/8 reaches the loopback interface, and a socket bound to
127.0.0.N before connecting is seen by the broker as coming from 127.0.0.N.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streamlog.protocol import ApiKey, ErrorCode, build_message, decode_response, request_class
from streamlog.protocol import encode_request as _encode

from .brokerproc import BrokerProcess
from .test_broker_process import api_versions, is_closed, recv_frame

USERS = "alice:wonderland\n"


def connect_from(broker: BrokerProcess, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", broker.port), 10, source_address=(source, 0))
    sock.settimeout(10)
    return sock


def request(sock: socket.socket, api_key: ApiKey, version: int, correlation_id: int, **fields):
    body = build_message(request_class(api_key, version), **fields)
    sock.sendall(_encode(body, correlation_id=correlation_id, client_id="limits"))
    got_id, response = decode_response(recv_frame(sock), api_key, version)
    assert got_id == correlation_id
    return response


def sasl_plain(sock: socket.socket, user: str, password: str):
    """SaslHandshake v1 + SaslAuthenticate v2 (PLAIN); returns the authenticate response."""
    handshake = request(sock, ApiKey.SASL_HANDSHAKE, 1, 1, mechanism="PLAIN")
    assert handshake.error_code == ErrorCode.NONE
    token = b"\0" + user.encode() + b"\0" + password.encode()
    return request(sock, ApiKey.SASL_AUTHENTICATE, 2, 2, auth_bytes=token)


def authenticated_socket(broker: BrokerProcess) -> socket.socket:
    sock = connect_from(broker)
    assert sasl_plain(sock, "alice", "wonderland").error_code == ErrorCode.NONE
    return sock


def wait_until_closed(socks: list[socket.socket], at_least: int, timeout: float = 60) -> int:
    """Wait until the broker has closed ``at_least`` of ``socks``; return how many it did.

    The broker sends these sockets nothing, so a socket turning readable means EOF."""
    pending = {s.fileno(): s for s in socks}
    closed = 0
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while closed < at_least and time.monotonic() < deadline:
        for fd, _ in poller.poll(200):
            poller.unregister(fd)
            if is_closed(pending.pop(fd)):
                closed += 1
    return closed


@pytest.fixture
def sasl_broker(tmp_path) -> Iterator[BrokerProcess]:
    users = tmp_path / "users.txt"
    users.write_text(USERS, encoding="utf-8")
    proc = BrokerProcess(str(tmp_path / "data"), ("--users-file", str(users))).start()
    try:
        yield proc
    finally:
        assert proc.stop() == 0, proc.logs()


def open_idle_sockets(broker: BrokerProcess, sources: list[str], count: int) -> list[socket.socket]:
    return [connect_from(broker, sources[i % len(sources)]) for i in range(count)]


def produce_and_consume_with_scram(broker: BrokerProcess, topic: str, n: int) -> list[int]:
    auth = {
        "bootstrap.servers": broker.bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "alice",
        "sasl.password": "wonderland",
    }
    producer = Producer(auth)
    for i in range(n):
        producer.produce(topic, value=b"%d" % i)
    assert producer.flush(30) == 0
    consumer = Consumer({**auth, "group.id": f"{topic}-g", "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got: list[int] = []
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        for msg in consumer.consume(100, 0.5):
            if msg.error() is None:
                got.append(int(msg.value()))
    consumer.close()
    return got


@pytest.mark.parametrize(
    ("sources", "kept_at_most"),
    [
        # One address, the clients' own: it keeps its 250 newest waiting sockets.
        (["127.0.0.1"], 250),
        # Ten addresses of 100 each: under the per-address limit, so the 500 slots for
        # connections still authenticating are what is left to them.
        ([f"127.0.0.{i}" for i in range(2, 12)], 500),
    ],
    ids=["one-address", "ten-addresses"],
)
def test_a_thousand_idle_unauthenticated_sockets_do_not_lock_clients_out(
    sasl_broker, sources, kept_at_most
) -> None:
    """Default limits: 1,000 connections, 250 per address, 500 still authenticating."""
    veteran = authenticated_socket(sasl_broker)  # authenticated before the flood
    idle = open_idle_sockets(sasl_broker, sources, 1000)
    closed = wait_until_closed(idle, at_least=1000 - kept_at_most)
    assert closed >= 1000 - kept_at_most
    # The authenticated connection was not closed to make room, and is served.
    assert api_versions(veteran, correlation_id=3)[0] == 3
    # A client with credentials gets in (taking a waiting socket's place) and works.
    assert produce_and_consume_with_scram(sasl_broker, "after-flood", 20) == list(range(20))
    veteran.close()
    for s in idle:
        s.close()
    logs = sasl_broker.logs()
    assert "closed a connection that had not authenticated, to make room" in logs
    assert "Traceback" not in logs
    # Throttled: a flood does not write a line per connection.
    assert logs.count("to make room") < 20


def test_an_address_at_its_limit_is_refused_others_are_not(tmp_path) -> None:
    proc = BrokerProcess(str(tmp_path / "d"), ("--max-connections-per-ip", "3")).start()
    try:
        mine = [connect_from(proc, "127.0.0.2") for _ in range(3)]
        for i, sock in enumerate(mine):
            assert api_versions(sock, correlation_id=i + 1)[0] == i + 1
        extra = connect_from(proc, "127.0.0.2")
        assert is_closed(extra)
        other = connect_from(proc, "127.0.0.3")
        assert api_versions(other, correlation_id=9)[0] == 9
        assert api_versions(mine[0], correlation_id=10)[0] == 10  # not closed for room
        for s in (*mine, extra, other):
            s.close()
        assert "max.connections.per.ip=3" in proc.logs()
    finally:
        assert proc.stop() == 0


def test_a_frame_trickled_byte_by_byte_is_closed_at_the_frame_deadline(tmp_path) -> None:
    """One byte every 100 ms never completes a 200-byte frame before the 1 s deadline,
    though every byte comes well within the idle timeout (which it no longer resets)."""
    proc = BrokerProcess(
        str(tmp_path / "d"), ("--frame-timeout-ms", "1000", "--idle-timeout-ms", "60000")
    ).start()
    try:
        healthy = connect_from(proc)
        slow = connect_from(proc)
        frame = struct.pack(">i", 200) + b"\x00" * 200
        sent = 0
        with pytest.raises(OSError):  # EPIPE or ECONNRESET once the broker has closed it
            for byte in frame:
                slow.sendall(bytes([byte]))
                sent += 1
                time.sleep(0.1)  # the trickle itself, not a wait for the broker
        assert sent < len(frame)
        assert is_closed(slow)
        assert api_versions(healthy)[0] == 1  # everyone else is served meanwhile
        healthy.close()
        slow.close()
        assert "a request frame was not complete after 1000 ms" in proc.logs()
    finally:
        assert proc.stop() == 0


def test_a_connection_that_does_not_authenticate_is_closed_at_the_deadline(tmp_path) -> None:
    users = tmp_path / "users.txt"
    users.write_text(USERS, encoding="utf-8")
    proc = BrokerProcess(
        str(tmp_path / "d"),
        ("--users-file", str(users), "--authentication-timeout-ms", "800"),
    ).start()
    try:
        member = authenticated_socket(proc)
        lingering = connect_from(proc)
        # Busy but never authenticating: ApiVersions is allowed before SASL, and its
        # answers do not move the deadline.
        with pytest.raises((ConnectionError, OSError)):
            for i in range(1, 200):
                assert api_versions(lingering, correlation_id=i)[0] == i
                time.sleep(0.05)
        assert is_closed(lingering)
        # The authenticated connection outlived the deadline and is still served.
        assert api_versions(member, correlation_id=5)[0] == 5
        member.close()
        lingering.close()
        assert "not authenticated after 800 ms" in proc.logs()
    finally:
        assert proc.stop() == 0


def test_a_failed_login_is_answered_late_without_holding_up_others(tmp_path) -> None:
    users = tmp_path / "users.txt"
    users.write_text(USERS, encoding="utf-8")
    proc = BrokerProcess(
        str(tmp_path / "d"),
        ("--users-file", str(users), "--failed-authentication-delay-ms", "3000"),
    ).start()
    try:
        other = authenticated_socket(proc)
        guesser = connect_from(proc)
        assert request(guesser, ApiKey.SASL_HANDSHAKE, 1, 1, mechanism="PLAIN").error_code == 0
        token = b"\0alice\0guess"
        body = build_message(request_class(ApiKey.SASL_AUTHENTICATE, 2), auth_bytes=token)
        sent_at = time.monotonic()
        guesser.sendall(_encode(body, correlation_id=2, client_id="guesser"))
        # While the guess waits for its answer, another client is served.
        assert api_versions(other, correlation_id=7)[0] == 7
        readable, _, _ = select.select([guesser], [], [], 0)
        assert readable == []  # no answer yet to the guess
        got_id, answer = decode_response(recv_frame(guesser), ApiKey.SASL_AUTHENTICATE, 2)
        waited = time.monotonic() - sent_at
        assert (got_id, answer.error_code) == (2, ErrorCode.SASL_AUTHENTICATION_FAILED)
        assert waited >= 3.0  # the configured delay is a lower bound, never a speed claim
        assert is_closed(guesser)
        other.close()
        guesser.close()
    finally:
        assert proc.stop() == 0
