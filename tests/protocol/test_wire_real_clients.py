"""Golden bytes from real Kafka clients, captured live on a local socket.

Each test points a real client (kafka-python, confluent-kafka/librdkafka, aiokafka) at a
listening socket served by a minimal responder built on this codec: it answers
ApiVersions with our supported versions and Metadata with a one-broker cluster (itself),
and records every request frame. The test then checks the client's first frame byte for
byte against what the protocol says it must be, decodes it and the next request with our
codec, and checks that the client accepted our responses (its bootstrap completes).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest as ApiVersionsRequestV3
from kio.schema.api_versions.v4.request import ApiVersionsRequest as ApiVersionsRequestV4

from streamlog.protocol import (
    SUPPORTED_VERSIONS,
    ApiKey,
    DecodedRequest,
    ErrorCode,
    FrameDecoder,
    VersionRange,
    api_versions_response,
    build_message,
    decode_request,
    encode_response,
    response_class,
)
from streamlog.protocol._wire import uvarint

pytestmark = pytest.mark.timeout(90)

IO_TIMEOUT = 10.0
CLUSTER_ID = "streamlog-golden"


@dataclass
class Responder:
    """A tiny Kafka-protocol responder: one thread per connection, sockets time out."""

    # Pretend to support ApiVersions only up to this version (to test the downgrade).
    api_versions_max: int = SUPPORTED_VERSIONS[ApiKey.API_VERSIONS].max
    server: socket.socket = field(default_factory=lambda: socket.create_server(("127.0.0.1", 0)))
    frames: list[list[bytes]] = field(default_factory=list)  # raw request frames per conn
    errors: list[BaseException] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _connections: list[socket.socket] = field(default_factory=list)
    _closed: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _first_two: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        return int(self.server.getsockname()[1])

    def start(self) -> None:
        self.server.settimeout(0.2)
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        self._threads.append(thread)

    def wait_for_first_two_frames(self) -> list[bytes]:
        assert self._first_two.wait(IO_TIMEOUT), "client sent fewer than two requests"
        with self._lock:
            return list(self.frames[0][:2])

    def close(self) -> None:
        self._closed.set()
        self.server.close()
        with self._lock:
            for conn in self._connections:
                conn.close()
        for thread in self._threads:
            thread.join(IO_TIMEOUT)
            assert not thread.is_alive()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(0.2)
            with self._lock:
                self._connections.append(conn)
                self.frames.append([])
                index = len(self.frames) - 1
            thread = threading.Thread(target=self._serve, args=(conn, index), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket, index: int) -> None:
        decoder = FrameDecoder()
        while not self._closed.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            for frame in decoder.feed(data):
                with self._lock:
                    self.frames[index].append(frame)
                    if index == 0 and len(self.frames[0]) == 2:
                        self._first_two.set()
                try:
                    reply = self._answer(decode_request(frame))
                except Exception as e:  # reported by run_against_responder
                    self.errors.append(e)
                    return
                if reply is None:
                    return  # anything beyond bootstrap: hang up
                try:
                    conn.sendall(reply)
                except OSError:
                    return

    def _answer(self, request: DecodedRequest) -> bytes | None:
        if request.api_key == ApiKey.API_VERSIONS:
            supported = {
                **SUPPORTED_VERSIONS,
                ApiKey.API_VERSIONS: VersionRange(0, self.api_versions_max),
            }
            if request.api_version > self.api_versions_max:
                # What Kafka answers: ApiVersions v0, UNSUPPORTED_VERSION, its ranges.
                response = api_versions_response(
                    0, error_code=ErrorCode.UNSUPPORTED_VERSION, supported=supported
                )
            else:
                response = api_versions_response(request.api_version, supported=supported)
            return encode_response(request, response)
        if request.api_key == ApiKey.METADATA:
            response = build_message(
                response_class(ApiKey.METADATA, request.api_version),
                brokers=[{"node_id": 1, "host": "127.0.0.1", "port": self.port}],
                cluster_id=CLUSTER_ID,
                controller_id=1,
                topics=[],
            )
            return encode_response(request, response)
        return None


@dataclass
class ClientRun:
    """A client driven from its own thread; ``result`` is what the client reported."""

    target: Callable[[ClientRun], None]
    bootstrapped: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.target(self)
        except BaseException as e:  # reported to the test thread
            self.error = e
        finally:
            self.bootstrapped.set()  # never leave the test thread waiting

    def finish(self) -> None:
        self.done.set()
        assert self.thread is not None
        self.thread.join(IO_TIMEOUT * 3)
        assert not self.thread.is_alive(), "client thread did not stop"


def compact_string(value: str) -> bytes:
    encoded = value.encode()
    return uvarint(len(encoded) + 1) + encoded


def api_versions_frame(version: int, correlation_id: int, client_id: str, *tail: bytes) -> bytes:
    """An ApiVersions request frame as the protocol defines it, written out by hand."""
    header = struct.pack(">hhih", 18, version, correlation_id, len(client_id)) + client_id.encode()
    if version >= 3:
        return header + b"\x00" + b"".join(tail) + b"\x00"
    return header


def run_against_responder(
    client: ClientRun, responder: Responder | None = None
) -> tuple[Responder, list[bytes]]:
    responder = responder or Responder()
    responder.start()
    client.result["port"] = responder.port
    client.start()
    try:
        frames = responder.wait_for_first_two_frames()
        assert client.bootstrapped.wait(IO_TIMEOUT * 2), "client did not bootstrap"
    finally:
        client.finish()
        responder.close()
    assert responder.errors == []
    return responder, frames


def all_requests(responder: Responder) -> list[DecodedRequest]:
    return [decode_request(frame) for frames in responder.frames for frame in frames]


def check_metadata_request(frame: bytes, client_id: str) -> DecodedRequest:
    request = decode_request(frame)
    assert request.api_key == ApiKey.METADATA
    assert request.api_version in SUPPORTED_VERSIONS[ApiKey.METADATA]
    assert request.client_id == client_id
    return request


def test_kafka_python_consumer() -> None:
    kafka = pytest.importorskip("kafka")
    client_id = "golden-kafka-python"

    def run(run: ClientRun) -> None:
        consumer = kafka.KafkaConsumer(
            bootstrap_servers=f"127.0.0.1:{run.result['port']}",
            client_id=client_id,
            request_timeout_ms=5000,
            bootstrap_timeout_ms=8000,
            reconnect_backoff_ms=100,
        )
        try:
            run.result["bootstrapped"] = True
            run.bootstrapped.set()
            run.done.wait(IO_TIMEOUT)
        finally:
            consumer.close(timeout_ms=2000)

    client = ClientRun(run)
    _, (first, second) = run_against_responder(client)

    assert client.error is None, client.error
    assert client.result.get("bootstrapped") is True
    version = struct.unpack_from(">h", first, 2)[0]
    assert version == 4
    correlation_id = struct.unpack_from(">i", first, 4)[0]
    assert first == api_versions_frame(
        4,
        correlation_id,
        client_id,
        compact_string("kafka-python"),
        compact_string(kafka.__version__),
    )
    request = decode_request(first)
    assert (request.api_key, request.api_version, request.client_id) == (18, 4, client_id)
    assert isinstance(request.body, ApiVersionsRequestV4)
    assert request.body.client_software_name == "kafka-python"
    assert request.body.client_software_version == kafka.__version__
    metadata = check_metadata_request(second, client_id)
    assert metadata.correlation_id == correlation_id + 1
    assert metadata.api_version == 12


def test_confluent_kafka_producer() -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    client_id = "golden-confluent"

    def run(run: ClientRun) -> None:
        producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": f"127.0.0.1:{run.result['port']}",
                "client.id": client_id,
                "socket.timeout.ms": 5000,
                "log_level": 0,
            }
        )
        try:
            metadata = producer.list_topics(timeout=IO_TIMEOUT)
            run.result["cluster_id"] = metadata.cluster_id
            run.result["brokers"] = {b.id: (b.host, b.port) for b in metadata.brokers.values()}
            run.result["bootstrapped"] = True
            run.bootstrapped.set()
            run.done.wait(IO_TIMEOUT)
        finally:
            producer.flush(1)

    client = ClientRun(run)
    _, (first, second) = run_against_responder(client)

    assert client.error is None, client.error
    assert client.result["cluster_id"] == CLUSTER_ID
    assert client.result["brokers"] == {1: ("127.0.0.1", client.result["port"])}
    software_version = f"{confluent_kafka.__version__}-rdkafka-{confluent_kafka.libversion()[0]}"
    correlation_id = struct.unpack_from(">i", first, 4)[0]
    assert first == api_versions_frame(
        3,
        correlation_id,
        client_id,
        compact_string("confluent-kafka-python"),
        compact_string(software_version),
    )
    request = decode_request(first)
    assert (request.api_key, request.api_version, request.client_id) == (18, 3, client_id)
    assert isinstance(request.body, ApiVersionsRequestV3)
    assert request.body.client_software_name == "confluent-kafka-python"
    assert request.body.client_software_version == software_version
    check_metadata_request(second, client_id)


def test_aiokafka_producer() -> None:
    aiokafka = pytest.importorskip("aiokafka")
    client_id = "golden-aiokafka"

    def run(run: ClientRun) -> None:
        async def main() -> None:
            producer = aiokafka.AIOKafkaProducer(
                bootstrap_servers=f"127.0.0.1:{run.result['port']}",
                client_id=client_id,
                request_timeout_ms=5000,
            )
            try:
                await asyncio.wait_for(producer.start(), IO_TIMEOUT)
                run.result["bootstrapped"] = True
                run.bootstrapped.set()
                await asyncio.get_running_loop().run_in_executor(None, run.done.wait, IO_TIMEOUT)
            finally:
                await asyncio.wait_for(producer.stop(), IO_TIMEOUT)

        asyncio.run(main())

    client = ClientRun(run)
    _, (first, second) = run_against_responder(client)

    assert client.error is None, client.error
    assert client.result.get("bootstrapped") is True
    correlation_id = struct.unpack_from(">i", first, 4)[0]
    # aiokafka opens with ApiVersions v0: header v1 and an empty body.
    assert first == api_versions_frame(0, correlation_id, client_id)
    request = decode_request(first)
    assert (request.api_key, request.api_version, request.client_id) == (18, 0, client_id)
    metadata = check_metadata_request(second, client_id)
    assert metadata.correlation_id == correlation_id + 1


def kafka_python_consumer(client_id: str) -> Callable[[ClientRun], None]:
    kafka = pytest.importorskip("kafka")

    def run(run: ClientRun) -> None:
        consumer = kafka.KafkaConsumer(
            bootstrap_servers=f"127.0.0.1:{run.result['port']}",
            client_id=client_id,
            request_timeout_ms=5000,
            bootstrap_timeout_ms=8000,
            reconnect_backoff_ms=100,
        )
        try:
            run.bootstrapped.set()
            run.done.wait(IO_TIMEOUT)
        finally:
            consumer.close(timeout_ms=2000)

    return run


def confluent_producer(client_id: str) -> Callable[[ClientRun], None]:
    confluent_kafka = pytest.importorskip("confluent_kafka")

    def run(run: ClientRun) -> None:
        producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": f"127.0.0.1:{run.result['port']}",
                "client.id": client_id,
                "socket.timeout.ms": 5000,
                "log_level": 0,
            }
        )
        try:
            run.result["cluster_id"] = producer.list_topics(timeout=IO_TIMEOUT).cluster_id
            run.bootstrapped.set()
            run.done.wait(IO_TIMEOUT)
        finally:
            producer.flush(1)

    return run


@pytest.mark.parametrize("make_client", [kafka_python_consumer, confluent_producer])
def test_clients_downgrade_after_our_unsupported_version_answer(
    make_client: Callable[[str], Callable[[ClientRun], None]],
) -> None:
    client = ClientRun(make_client("golden-downgrade"))
    responder = Responder(api_versions_max=2)
    run_against_responder(client, responder)

    assert client.error is None, client.error
    requests = all_requests(responder)
    api_versions = [r.api_version for r in requests if r.api_key == ApiKey.API_VERSIONS]
    # First at the client's own maximum (answered with v0 + UNSUPPORTED_VERSION), then
    # again at a version within the range our answer advertised.
    assert api_versions[0] > 2
    assert api_versions[1] <= 2
    assert ApiKey.METADATA in {r.api_key for r in requests}
