"""The ``streamlog broker`` process: start, logs, clean stop, refusals, bad input."""

from __future__ import annotations

import os
import socket
import struct
import subprocess

import pytest

from streamlog.protocol import ApiKey, decode_response, encode_request, request_class
from streamlog.protocol.schema import build_message

from ..waiting import until_sync
from .brokerproc import STREAMLOG, BrokerProcess


def connect(broker: BrokerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
    sock.settimeout(10)
    return sock


def recv_frame(sock: socket.socket) -> bytes:
    head = _recv_exactly(sock, 4)
    (size,) = struct.unpack(">i", head)
    return _recv_exactly(sock, size)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def api_versions(sock: socket.socket, version: int = 3, correlation_id: int = 1):
    body = build_message(
        request_class(ApiKey.API_VERSIONS, version),
        client_software_name="streamlog-test",
        client_software_version="1",
    )
    sock.sendall(encode_request(body, correlation_id=correlation_id, client_id="t"))
    return decode_response(recv_frame(sock), ApiKey.API_VERSIONS, version)


def is_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_start_logs_and_clean_stop(broker) -> None:
    sock = connect(broker)
    correlation, response = api_versions(sock)
    assert correlation == 1 and response.error_code == 0
    keys = {k.api_key for k in response.api_keys}
    assert {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18, 19, 20, 22, 32, 37} <= keys
    sock.close()
    logs = broker.logs()
    assert f"listening on 127.0.0.1:{broker.port}" in logs
    assert "data directory" in logs
    data_dir = broker.data_dir
    assert broker.stop() == 0
    assert "stopped; logs flushed and closed cleanly" in broker.logs()
    assert os.path.exists(os.path.join(data_dir, "__consumer_offsets-0", "clean-shutdown"))


def test_bad_input_closes_only_that_connection(broker) -> None:
    good = connect(broker)
    assert api_versions(good)[0] == 1

    http = connect(broker)
    http.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert is_closed(http)

    garbage = connect(broker)
    garbage.sendall(b"\xff\xff\xff\xfe" + b"x" * 10)  # negative length
    assert is_closed(garbage)

    huge = connect(broker)
    huge.sendall(struct.pack(">i", 200 * 1024 * 1024))  # over the frame limit
    assert is_closed(huge)

    unknown = connect(broker)
    unknown.sendall(struct.pack(">ihhih", 10, 9999, 0, 7, -1))  # API key 9999
    assert is_closed(unknown)

    truncated = connect(broker)
    frame = encode_request(
        build_message(
            request_class(ApiKey.METADATA, 9),
            topics=[{"name": "abc"}],
            allow_auto_topic_creation=False,
        ),
        correlation_id=5,
        client_id="t",
    )
    cut = frame[4:-3]
    truncated.sendall(struct.pack(">i", len(cut)) + cut)
    assert is_closed(truncated)

    old_version = connect(broker)
    correlation, response = api_versions(old_version, version=3, correlation_id=9)
    assert correlation == 9
    # An ApiVersions version above ours gets a v0 answer with UNSUPPORTED_VERSION.
    too_new = connect(broker)
    too_new.sendall(struct.pack(">ihhih", 10, 18, 99, 11, -1))
    frame = recv_frame(too_new)
    assert struct.unpack(">ih", frame[:6]) == (11, 35)

    # The well-behaved client is still served after all of that.
    assert api_versions(good, correlation_id=2)[0] == 2
    for s in (good, http, garbage, huge, unknown, truncated, old_version, too_new):
        s.close()
    logs = broker.logs()
    assert logs.count("closing connection from") >= 5
    assert "Traceback" not in logs


def test_idle_connections_are_closed(tmp_path) -> None:
    proc = BrokerProcess(str(tmp_path / "d"), ("--idle-timeout-ms", "300")).start()
    try:
        sock = connect(proc)
        # recv blocks until the broker closes the idle connection (within the socket's
        # 10 s timeout): the close itself is what is waited for.
        assert is_closed(sock)
        sock.close()
        until_sync(lambda: "idle for 300 ms" in proc.logs(), "the idle close is logged")
    finally:
        assert proc.stop() == 0


def test_connection_limit_refuses_extra_clients(tmp_path) -> None:
    proc = BrokerProcess(str(tmp_path / "d"), ("--max-connections", "2")).start()
    try:
        a, b = connect(proc), connect(proc)
        assert api_versions(a)[0] == 1 and api_versions(b)[0] == 1
        c = connect(proc)
        assert is_closed(c)
        assert "max.connections" in proc.logs()
        for s in (a, b, c):
            s.close()
    finally:
        assert proc.stop() == 0


def test_refuses_remote_listener_without_auth(tmp_path) -> None:
    out = subprocess.run(
        [STREAMLOG, "broker", "--data-dir", str(tmp_path / "d"), "--listen", "0.0.0.0:0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "not a loopback address" in out.stderr and "--allow-remote" in out.stderr


def test_second_broker_on_the_same_data_dir_gets_a_clear_error(broker) -> None:
    out = subprocess.run(
        [STREAMLOG, "broker", "--data-dir", broker.data_dir, "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "in use by another process" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signals_stop_the_broker_with_exit_code_0(tmp_path, sig) -> None:
    import signal

    proc = BrokerProcess(str(tmp_path / "d")).start()
    assert proc.process is not None
    proc.process.send_signal(getattr(signal, sig))
    assert proc.process.wait(20) == 0
    assert "stopped; logs flushed" in proc.logs()


def test_a_client_that_stops_reading_holds_no_slot_and_does_not_block_a_stop(tmp_path) -> None:
    """A client asks for big fetches and never reads the answers: the broker closes it (at
    a deadline), frees its connection slot though the answers are still unsent (the limit
    is LIMIT: LIMIT clients after it are served), and SIGTERM still stops the broker at
    once with exit code 0 (a socket close that waited to flush those answers held the
    slot, and kept the process alive after "stopped", for ever)."""
    import signal

    LIMIT = 8  # noqa: N806 - the connection limit, a constant of this test

    proc = BrokerProcess(
        str(tmp_path / "d"), ("--max-connections", str(LIMIT), "--frame-timeout-ms", "1000")
    ).start()
    try:
        # 3 MB to fetch again and again (a client that is gone after: it holds no slot)
        lines = "".join("x" * 1000 + "\n" for _ in range(3000))
        made = subprocess.run(
            [STREAMLOG, "produce", "big", "--create", "--broker", f"kafka://{proc.bootstrap}"],
            input=lines,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(("127.0.0.1", proc.port))
        fetch = build_message(
            request_class(ApiKey.FETCH, 4),
            replica_id=-1,
            max_wait=0,
            min_bytes=1,
            max_bytes=10 << 20,
            isolation_level=0,
            topics=[
                {
                    "topic": "big",
                    "partitions": [
                        {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 10 << 20}
                    ],
                }
            ],
        )
        # ~30 MB of answers asked for, none read
        stuck.sendall(
            b"".join(encode_request(fetch, correlation_id=n, client_id="t") for n in range(10))
        )
        until_sync(lambda: "closing connection from" in proc.logs(), "the stuck client closed")

        def all_served() -> bool:
            socks = []
            try:
                for _ in range(LIMIT):
                    socks.append(connect(proc))
                return all(api_versions(s)[0] == 1 for s in socks)
            except ConnectionError:
                return False  # a slot still held: not yet
            finally:
                for s in socks:
                    s.close()

        # within the close deadline (1 s) the stuck socket is aborted: both slots free
        until_sync(all_served, f"{LIMIT} clients served, the stuck one's slot free", 10)
        stuck.close()
        assert proc.process is not None
        proc.process.send_signal(signal.SIGTERM)
        assert proc.process.wait(20) == 0
        assert "stopped; logs flushed" in proc.logs()
    finally:
        proc.stop()
