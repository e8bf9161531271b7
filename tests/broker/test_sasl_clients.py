"""Real Kafka clients log in over a socket through the SASL handlers.

A minimal in-process server stands in for the broker's connection loop: it answers
ApiVersions, routes SaslHandshake/SaslAuthenticate (and, after SaslHandshake v0, bare
tokens) to the SASL handlers, closes the connection when ``session.sasl.failed``, and
serves Metadata (a one-broker cluster, no topics) only once the session is authenticated.
Each client must then finish its bootstrap, or report an authentication error.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest

from streamlog.broker.config import BrokerConfig
from streamlog.broker.context import BrokerContext, Session
from streamlog.broker.handlers.sasl import (
    handle_raw_sasl_token,
    handle_sasl_authenticate,
    handle_sasl_handshake,
)
from streamlog.broker.users import UserStore
from streamlog.protocol import (
    ApiKey,
    ErrorCode,
    FrameDecoder,
    UnsupportedVersionError,
    api_versions_response,
    build_message,
    decode_request,
    encode_frame,
    encode_response,
    error_response_for,
    response_class,
)

pytestmark = pytest.mark.timeout(120)

USERS = {"alice": "alice-secret", "bob": "p@ss,w=rd"}


class SaslBroker:
    """Just enough of a broker to log in and bootstrap; runs its loop in a thread."""

    def __init__(self, users: UserStore) -> None:
        self.ctx = BrokerContext(
            config=BrokerConfig(users_file="users.txt"),
            log=cast(Any, None),
            clock=cast(Any, None),
            cluster_id="sasl-test",
            port=0,
            users=users,
        )
        self.principals: list[str | None] = []
        self.failures: int = 0
        self.refused: list[str] = []
        self.handshake_versions: list[int] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ctx.port}"

    def start(self) -> SaslBroker:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        assert not self._thread.is_alive()

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.ctx.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        self._server.close()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(peer="test", authenticated=False)
        decoder = FrameDecoder(max_frame_size=self.ctx.config.max_preauth_frame_bytes)
        try:
            while data := await reader.read(65536):
                for frame in decoder.feed(data):
                    if not await self._answer(session, frame, writer):
                        return
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _answer(self, session: Session, frame: bytes, writer: asyncio.StreamWriter) -> bool:
        """Write the answer to ``frame``; False when the connection is to be closed."""
        if session.sasl is not None and session.sasl.expects_raw_token:
            token = handle_raw_sasl_token(session, frame)
            if token is None:
                self.failures += 1
                return False
            self._note(session)  # before answering, for the same reason as below
            writer.write(encode_frame(token))
            return True
        try:
            request = decode_request(frame)
        except UnsupportedVersionError as exc:
            if exc.api_key != ApiKey.API_VERSIONS:
                return False
            writer.write(
                encode_response(exc, error_response_for(exc, ErrorCode.UNSUPPORTED_VERSION))
            )
            return True
        if request.api_key == ApiKey.API_VERSIONS:
            response = api_versions_response(request.api_version)
        elif request.api_key == ApiKey.SASL_HANDSHAKE:
            self.handshake_versions.append(request.api_version)
            response = await handle_sasl_handshake(self.ctx, session, request)
        elif request.api_key == ApiKey.SASL_AUTHENTICATE:
            response = await handle_sasl_authenticate(self.ctx, session, request)
        elif request.api_key == ApiKey.METADATA and session.authenticated:
            response = build_message(
                response_class(ApiKey.METADATA, request.api_version),
                brokers=[{"node_id": 0, "host": "127.0.0.1", "port": self.ctx.port}],
                cluster_id=self.ctx.cluster_id,
                controller_id=0,
                topics=[],
            )
        else:
            self.refused.append(request.api_key.name)
            return False
        failed = session.sasl is not None and session.sasl.failed
        if failed:
            # Count before answering: the client (another thread) checks this as soon as
            # it has the answer.
            self.failures += 1
        else:
            self._note(session)
        writer.write(encode_response(request, response))
        if failed:
            await writer.drain()
            return False
        return True

    def _note(self, session: Session) -> None:
        if session.authenticated and session.principal not in self.principals:
            self.principals.append(session.principal)


@pytest.fixture(scope="module")
def users() -> UserStore:
    return UserStore.from_passwords(USERS)


@pytest.fixture
def broker(users: UserStore) -> Iterator[SaslBroker]:
    broker = SaslBroker(users).start()
    try:
        yield broker
    finally:
        broker.stop()


MECHANISMS = ["PLAIN", "SCRAM-SHA-256"]


# --- confluent-kafka (librdkafka) ------------------------------------------------------


def _librdkafka(broker: SaslBroker, mechanism: str, user: str, password: str) -> Any:
    admin_mod = pytest.importorskip("confluent_kafka.admin")
    errors: list[Any] = []
    admin = admin_mod.AdminClient(
        {
            "bootstrap.servers": broker.bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism,
            "sasl.username": user,
            "sasl.password": password,
            "error_cb": errors.append,
            "reconnect.backoff.max.ms": 1000,
        }
    )
    return admin, errors


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("user", sorted(USERS))
def test_confluent_kafka_logs_in(broker: SaslBroker, mechanism: str, user: str) -> None:
    admin, errors = _librdkafka(broker, mechanism, user, USERS[user])
    metadata = admin.list_topics(timeout=15)
    assert metadata.cluster_id == "sasl-test"
    assert f"User:{user}" in broker.principals
    assert broker.failures == 0 and broker.refused == []


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_kafka_wrong_password(broker: SaslBroker, mechanism: str) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    admin, errors = _librdkafka(broker, mechanism, "alice", "wrong")
    with pytest.raises(confluent_kafka.KafkaException):
        admin.list_topics(timeout=2)
    admin.poll(0.5)  # deliver error callbacks
    assert any(e.code() == confluent_kafka.KafkaError._AUTHENTICATION for e in errors), errors
    assert broker.principals == [] and broker.failures >= 1


# --- kafka-python ------------------------------------------------------------------------


def _kafka_python_consumer(
    broker: SaslBroker, mechanism: str, user: str, password: str, **extra: Any
) -> Any:
    kafka = pytest.importorskip("kafka")
    return kafka.KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_plain_username=user,
        sasl_plain_password=password,
        request_timeout_ms=5000,
        reconnect_backoff_ms=100,
        bootstrap_timeout_ms=2000,  # it retries a failed login until this runs out
        **extra,
    )


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python_logs_in(broker: SaslBroker, mechanism: str) -> None:
    consumer = _kafka_python_consumer(broker, mechanism, "bob", USERS["bob"])
    try:
        assert consumer.topics() == set()
    finally:
        consumer.close()
    assert broker.principals == ["User:bob"]
    assert broker.failures == 0 and broker.refused == []
    assert set(broker.handshake_versions) == {1}


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python_as_a_kafka_0_10_0_client_sends_bare_tokens(
    broker: SaslBroker, mechanism: str
) -> None:
    # Told the broker is 0.10.0, kafka-python uses SaslHandshake v0 and then sends the
    # SASL tokens as bare size-prefixed frames, as Kafka 0.10.0 clients did.
    consumer = _kafka_python_consumer(
        broker, mechanism, "bob", USERS["bob"], api_version=(0, 10, 0)
    )
    try:
        assert consumer.topics() == set()
    finally:
        consumer.close()
    assert set(broker.handshake_versions) == {0}
    assert broker.principals == ["User:bob"]
    assert broker.failures == 0 and broker.refused == []


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python_wrong_password(broker: SaslBroker, mechanism: str) -> None:
    kafka_errors = pytest.importorskip("kafka.errors")
    with pytest.raises(kafka_errors.KafkaError):
        consumer = _kafka_python_consumer(broker, mechanism, "alice", "wrong")
        try:
            consumer.topics()
        finally:
            consumer.close()
    assert broker.principals == [] and broker.failures >= 1


# --- aiokafka ----------------------------------------------------------------------------


async def _aiokafka_bootstrap(broker: SaslBroker, mechanism: str, user: str, password: str) -> None:
    aiokafka = pytest.importorskip("aiokafka")
    client = aiokafka.AIOKafkaClient(
        bootstrap_servers=broker.bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_plain_username=user,
        sasl_plain_password=password,
        request_timeout_ms=5000,
    )
    try:
        await client.bootstrap()
    finally:
        await client.close()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_aiokafka_logs_in(broker: SaslBroker, mechanism: str) -> None:
    asyncio.run(_aiokafka_bootstrap(broker, mechanism, "bob", USERS["bob"]))
    assert broker.principals == ["User:bob"]
    assert broker.failures == 0 and broker.refused == []


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_aiokafka_wrong_password(broker: SaslBroker, mechanism: str) -> None:
    errors = pytest.importorskip("aiokafka.errors")
    with pytest.raises(errors.KafkaError):
        asyncio.run(_aiokafka_bootstrap(broker, mechanism, "alice", "wrong"))
    assert broker.principals == [] and broker.failures >= 1
