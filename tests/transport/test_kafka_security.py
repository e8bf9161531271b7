"""Our Kafka client with SASL and TLS against real ``streamlog broker`` processes.

Brokers: SASL_PLAINTEXT (a users file), SASL_SSL (users file and a certificate), SSL with
required client certificates, and SSL with a certificate for another host name. The
certificates are made by ``openssl`` for the module. Records must round-trip, and every
refusal must say what went wrong (mechanism, broker's message, certificate, host name).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import replace
from typing import Any

import pytest

from streamlog.transport import open_transport
from streamlog.transport.errors import (
    AuthenticationError,
    BrokerUnavailableError,
    SecurityConfigError,
    TlsError,
)
from streamlog.transport.security import ClientSecurity
from streamlog.transport.types import TopicPartition
from tests.broker.brokerproc import BrokerProcess
from tests.broker.secure_brokers import (
    USERS,
    mtls_broker,
    pki,
    sasl_broker,
    sasl_ssl_broker,
    start_broker,
    stop_broker,
)
from tests.tlscerts import HAVE_OPENSSL, Pki

__all__ = ["mtls_broker", "pki", "sasl_broker", "sasl_ssl_broker"]  # fixtures

from .test_kafka_connection import read_records, run

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not HAVE_OPENSSL, reason="openssl is not installed"),
]

BASE_TS = time.time_ns() // 1_000_000 - 3_600_000


async def _round_trip(url: str, security: ClientSecurity, topic: str, count: int = 300) -> None:
    """Create ``topic``, produce ``count`` keyed records, read them back, compare."""
    transport = open_transport(url, security)
    try:
        await transport.start()
        await transport.admin().create_topic(topic, 2)
        producer = transport.producer(linger_ms=5)
        sent = {}
        handles = []
        for i in range(count):
            key, value = b"k%d" % (i % 17), b"value-%d" % i
            handles.append(
                await producer.send(topic, value, key=key, partition=i % 2, timestamp_ms=BASE_TS)
            )
            sent[(i % 2, i // 2)] = (key, value)
        await producer.flush()
        metas = [await h for h in handles]
        assert sorted((m.partition, m.offset) for m in metas) == sorted(sent)
        consumer = transport.consumer()
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        try:
            records = await read_records(consumer, count)
        finally:
            await consumer.close()
        got = {(r.partition, r.offset): (r.key, r.value) for r in records}
        assert got == sent
    finally:
        await transport.close()


def _sasl(mechanism: str, user: str = "alice", password: str | None = None, **tls: Any) -> Any:
    return ClientSecurity(
        sasl_mechanism=mechanism,
        sasl_username=user,
        sasl_password=USERS[user] if password is None else password,
        **tls,
    )


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("user", ["alice", "bob"])
def test_records_round_trip_over_sasl_plaintext(
    sasl_broker: BrokerProcess, mechanism: str, user: str
) -> None:
    topic = f"sasl-{mechanism.lower()}-{user}"
    run(_round_trip(f"kafka://{sasl_broker.bootstrap}", _sasl(mechanism, user), topic))


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_records_round_trip_over_sasl_ssl(
    sasl_ssl_broker: BrokerProcess, pki: Pki, mechanism: str
) -> None:
    security = _sasl(mechanism, ssl_cafile=pki.ca)
    url = f"kafka+ssl://{sasl_ssl_broker.bootstrap}"
    run(_round_trip(url, security, f"sasl-ssl-{mechanism.lower()}"))


def test_records_round_trip_with_a_client_certificate(mtls_broker: BrokerProcess, pki: Pki) -> None:
    security = ClientSecurity(
        ssl_cafile=pki.ca, ssl_certfile=pki.client_cert, ssl_keyfile=pki.client_key
    )
    run(_round_trip(f"kafka+ssl://{mtls_broker.bootstrap}", security, "mtls"))


def test_localhost_matches_the_certificate_name(mtls_broker: BrokerProcess, pki: Pki) -> None:
    security = ClientSecurity(
        ssl_cafile=pki.ca, ssl_certfile=pki.client_cert, ssl_keyfile=pki.client_key
    )
    run(_round_trip(f"kafka+ssl://localhost:{mtls_broker.port}", security, "mtls-localhost", 10))


async def _start_error(url: str, security: ClientSecurity) -> Exception:
    transport = open_transport(url, security)
    try:
        await transport.start()
        await transport.admin().list_topics()
    except Exception as e:
        return e
    finally:
        await transport.close()
    raise AssertionError(f"{url} with {security!r} was accepted")


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_a_wrong_password_names_the_mechanism_and_the_brokers_message(
    sasl_ssl_broker: BrokerProcess, pki: Pki, mechanism: str
) -> None:
    error = run(
        _start_error(
            f"kafka+ssl://{sasl_ssl_broker.bootstrap}",
            _sasl(mechanism, password="not-it", ssl_cafile=pki.ca),
        )
    )
    assert isinstance(error, AuthenticationError)
    text = str(error)
    assert f"SASL {mechanism} login as 'alice' failed" in text
    assert "closed by the broker" not in text
    if mechanism == "PLAIN":
        assert "Invalid username or password" in text
    else:
        assert f"invalid credentials with SASL mechanism {mechanism}" in text
    assert "not-it" not in text


def test_an_unknown_user_is_refused_like_a_wrong_password(sasl_broker: BrokerProcess) -> None:
    error = run(
        _start_error(
            f"kafka://{sasl_broker.bootstrap}",
            ClientSecurity(sasl_mechanism="SCRAM-SHA-256", sasl_username="eve", sasl_password="x"),
        )
    )
    assert isinstance(error, AuthenticationError)
    assert "invalid credentials with SASL mechanism SCRAM-SHA-256" in str(error)


def test_a_mechanism_the_broker_lacks_is_named_with_those_it_offers(tmp_path: Any) -> None:
    # streamlog broker offers every mechanism the client has unless configured otherwise,
    # which only its Python API can do: an in-process broker on loopback, PLAIN only.
    from streamlog.broker.config import BrokerConfig
    from streamlog.broker.server import Broker

    users = tmp_path / "users.txt"
    users.write_text("alice:alice-secret\n")
    config = BrokerConfig(
        port=0, data_dir=str(tmp_path / "data"), users_file=str(users), sasl_mechanisms=("PLAIN",)
    )

    async def body() -> Exception:
        async with Broker(config) as broker:
            return await _start_error(f"kafka://127.0.0.1:{broker.port}", _sasl("SCRAM-SHA-512"))

    error = run(body())
    assert isinstance(error, AuthenticationError)
    assert "does not offer SCRAM-SHA-512 (it offers: PLAIN)" in str(error)


def test_no_login_to_a_sasl_broker_says_it_may_need_one(sasl_broker: BrokerProcess) -> None:
    error = run(_start_error(f"kafka://{sasl_broker.bootstrap}", ClientSecurity()))
    assert isinstance(error, BrokerUnavailableError)
    assert "a broker that requires SASL closes connections that do not log in" in str(error)


def test_sasl_against_a_broker_without_it_is_a_clear_error(tmp_path: Any) -> None:
    proc = BrokerProcess(str(tmp_path / "data")).start()
    try:
        error = run(_start_error(f"kafka://{proc.bootstrap}", _sasl("PLAIN")))
    finally:
        stop_broker(proc)
    assert isinstance(error, AuthenticationError)
    assert "takes no SASL login on this listener" in str(error)


def test_an_untrusted_certificate_is_refused(sasl_ssl_broker: BrokerProcess, pki: Pki) -> None:
    error = run(
        _start_error(
            f"kafka+ssl://{sasl_ssl_broker.bootstrap}", _sasl("PLAIN", ssl_cafile=pki.other_ca)
        )
    )
    assert isinstance(error, TlsError)
    assert "certificate is not accepted (unable to get local issuer certificate)" in str(error)


def test_the_host_name_is_checked_unless_turned_off(
    tmp_path_factory: pytest.TempPathFactory, pki: Pki
) -> None:
    proc = start_broker(
        tmp_path_factory,
        "other-host",
        "--ssl-certfile",
        pki.other_host_cert,
        "--ssl-keyfile",
        pki.other_host_key,
    )
    try:
        url = f"kafka+ssl://{proc.bootstrap}"
        error = run(_start_error(url, ClientSecurity(ssl_cafile=pki.ca)))
        assert isinstance(error, TlsError)
        assert "IP address mismatch" in str(error)
        insecure = ClientSecurity(ssl_cafile=pki.ca, ssl_check_hostname=False)
        run(_round_trip(url, insecure, "no-host-check", 10))
    finally:
        stop_broker(proc)


def test_a_broker_requiring_a_client_certificate_refuses_a_client_without(
    mtls_broker: BrokerProcess, pki: Pki
) -> None:
    error = run(
        _start_error(f"kafka+ssl://{mtls_broker.bootstrap}", ClientSecurity(ssl_cafile=pki.ca))
    )
    assert isinstance(error, BrokerUnavailableError)
    assert "requires a client certificate" in str(error)


def test_plaintext_to_a_tls_listener_says_to_use_kafka_ssl(mtls_broker: BrokerProcess) -> None:
    error = run(_start_error(f"kafka://{mtls_broker.bootstrap}", ClientSecurity()))
    assert isinstance(error, BrokerUnavailableError)
    assert "for TLS use kafka+ssl://HOST:PORT" in str(error)


def test_the_tls_listener_keeps_serving_after_failed_handshakes(
    mtls_broker: BrokerProcess, pki: Pki
) -> None:
    async def garbage() -> None:
        for payload in (b"\x00\x00\x00\x10hello", b"\x16\x03\x01\xff\xff" + b"x" * 64):
            _, writer = await asyncio.open_connection("127.0.0.1", mtls_broker.port)
            writer.write(payload)
            await writer.drain()
            writer.close()

    run(garbage())
    security = ClientSecurity(
        ssl_cafile=pki.ca, ssl_certfile=pki.client_cert, ssl_keyfile=pki.client_key
    )
    run(_round_trip(f"kafka+ssl://{mtls_broker.bootstrap}", security, "after-garbage", 10))


@pytest.mark.parametrize(
    ("url", "security", "message"),
    [
        ("kafka://h:1", ClientSecurity(ssl_cafile="ca.pem"), "use kafka+ssl://"),
        ("kafka://h:1", ClientSecurity(sasl_mechanism="PLAIN"), "needs a username and a password"),
        ("kafka://h:1", ClientSecurity(sasl_username="a", sasl_password="b"), "without a mech"),
        (
            "kafka://h:1",
            ClientSecurity(sasl_mechanism="GSSAPI", sasl_username="a", sasl_password="b"),
            "unsupported SASL mechanism 'GSSAPI'",
        ),
        ("kafka+ssl://h:1", ClientSecurity(ssl_cafile="/nonexistent/ca.pem"), "/nonexistent"),
    ],
)
def test_impossible_settings_fail_before_connecting(
    url: str, security: ClientSecurity, message: str
) -> None:
    with pytest.raises(SecurityConfigError, match=message.replace("+", r"\+")):
        open_transport(url, security)


def test_settings_come_from_the_environment() -> None:
    security = ClientSecurity.from_env(
        {
            "STREAMLOG_SASL_MECHANISM": "scram-sha-512",
            "STREAMLOG_SASL_USERNAME": "alice",
            "STREAMLOG_SASL_PASSWORD": "pw",
            "STREAMLOG_SSL_CAFILE": "ca.pem",
            "STREAMLOG_SSL_CHECK_HOSTNAME": "false",
            "STREAMLOG_SSL_CERTFILE": "",
        }
    )
    checked = security.for_url(tls=True)
    assert checked.sasl_mechanism == "SCRAM-SHA-512"
    assert (checked.sasl_username, checked.sasl_password) == ("alice", "pw")
    assert (checked.ssl_cafile, checked.ssl_certfile, checked.ssl_check_hostname) == (
        "ca.pem",
        None,
        False,
    )
    assert checked.protocol == "SASL_SSL"
    assert "pw" not in repr(checked)
    with pytest.raises(SecurityConfigError, match="STREAMLOG_SSL_CHECK_HOSTNAME"):
        ClientSecurity.from_env({"STREAMLOG_SSL_CHECK_HOSTNAME": "maybe"})


def test_an_encrypted_client_key_needs_its_password(
    mtls_broker: BrokerProcess, pki: Pki, tmp_path: Any
) -> None:
    encrypted = str(tmp_path / "client-encrypted.key")
    subprocess.run(
        ["openssl", "pkey", "-in", pki.client_key, "-aes256", "-passout", "pass:sekret",
         "-out", encrypted],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    with_key = ClientSecurity(
        ssl_cafile=pki.ca, ssl_certfile=pki.client_cert, ssl_keyfile=encrypted
    )
    url = f"kafka+ssl://{mtls_broker.bootstrap}"
    for password, why in ((None, "was not given"), ("wrong", "is wrong")):
        with pytest.raises(SecurityConfigError, match=f"the key is encrypted and .* {why}"):
            open_transport(url, replace(with_key, ssl_key_password=password))
    run(_round_trip(url, replace(with_key, ssl_key_password="sekret"), "encrypted-key", 10))


def test_the_broker_refuses_an_encrypted_or_mismatched_key_at_start(
    pki: Pki, tmp_path: Any
) -> None:
    encrypted = str(tmp_path / "server-encrypted.key")
    subprocess.run(
        ["openssl", "pkey", "-in", pki.server_key, "-aes256", "-passout", "pass:sekret",
         "-out", encrypted],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    for key in (encrypted, pki.client_key):
        proc = BrokerProcess(
            str(tmp_path / "data"),
            extra_args=("--ssl-certfile", pki.server_cert, "--ssl-keyfile", key),
        )
        with pytest.raises(RuntimeError, match="broker exited with 1") as info:
            proc.start()
        assert f"cannot load the TLS certificate {pki.server_cert} with key {key}" in str(
            info.value
        )
