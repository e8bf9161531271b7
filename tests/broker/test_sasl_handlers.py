"""SaslHandshake and SaslAuthenticate handlers, with requests and responses on the wire."""

from __future__ import annotations

import asyncio
import base64
from typing import Any, cast

import pytest

from streamlog.broker.config import BrokerConfig
from streamlog.broker.context import BrokerContext, Session
from streamlog.broker.handlers.sasl import (
    handle_raw_sasl_token,
    handle_sasl_authenticate,
    handle_sasl_handshake,
)
from streamlog.broker.sasl import SaslServer
from streamlog.broker.users import ScramCredential, UserStore
from streamlog.protocol import (
    ApiKey,
    ErrorCode,
    build_message,
    decode_request,
    decode_response,
    encode_response,
    request_class,
)
from streamlog.protocol.client import encode_request

HANDSHAKE_VERSIONS = [0, 1]
AUTHENTICATE_VERSIONS = [0, 1, 2]
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")

_HANDLERS = {
    ApiKey.SASL_HANDSHAKE: handle_sasl_handshake,
    ApiKey.SASL_AUTHENTICATE: handle_sasl_authenticate,
}


@pytest.fixture(scope="module")
def users() -> UserStore:
    return UserStore(
        {
            "alice": ScramCredential.from_password("alice-secret"),
            "user": ScramCredential.from_password("pencil", salt=RFC_SALT),
        }
    )


def make_ctx(users: UserStore | None, mechanisms: tuple[str, ...] | None = None) -> BrokerContext:
    config = BrokerConfig(users_file=None if users is None else "users.txt")
    if mechanisms is not None:
        config = BrokerConfig(users_file=config.users_file, sasl_mechanisms=mechanisms)
    # The SASL handlers touch nothing of the context but its config and users.
    return BrokerContext(
        config=config,
        log=cast(Any, None),
        clock=cast(Any, None),
        cluster_id="test",
        port=0,
        users=users,
    )


def new_session(ctx: BrokerContext) -> Session:
    # As the connection does: authenticated from the start when authentication is off.
    return Session(peer="127.0.0.1:5555", authenticated=not ctx.config.authentication_required)


def call(ctx: BrokerContext, session: Session, api_key: ApiKey, version: int, **values: Any) -> Any:
    """Encode a request as a client would, decode and handle it, and decode the response."""
    request = build_message(request_class(api_key, version), **values)
    frame = encode_request(request, correlation_id=7, client_id="test-client")[4:]
    decoded = decode_request(frame)
    assert decoded.api_key == api_key and decoded.api_version == version
    response = asyncio.run(_HANDLERS[api_key](ctx, session, decoded))
    correlation_id, answer = decode_response(
        encode_response(decoded, response)[4:], api_key, version
    )
    assert correlation_id == 7
    return answer


def handshake(ctx: BrokerContext, session: Session, mechanism: str, version: int = 1) -> Any:
    return call(ctx, session, ApiKey.SASL_HANDSHAKE, version, mechanism=mechanism)


def authenticate(ctx: BrokerContext, session: Session, token: bytes, version: int = 2) -> Any:
    return call(ctx, session, ApiKey.SASL_AUTHENTICATE, version, auth_bytes=token)


def lifetime_ms(response: Any) -> int:
    lifetime = getattr(response, "session_lifetime", None)
    return 0 if lifetime is None else int(lifetime.total_seconds() * 1000)


@pytest.mark.parametrize("version", AUTHENTICATE_VERSIONS)
def test_plain_login(users: UserStore, version: int) -> None:
    ctx = make_ctx(users)
    session = new_session(ctx)
    response = handshake(ctx, session, "PLAIN")
    assert response.error_code == ErrorCode.NONE
    assert list(response.mechanisms) == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
    assert not session.authenticated

    response = authenticate(ctx, session, b"\x00alice\x00alice-secret", version)
    assert response.error_code == ErrorCode.NONE
    assert response.error_message is None
    assert response.auth_bytes == b""
    assert lifetime_ms(response) == 0
    assert session.authenticated and session.principal == "User:alice"
    assert session.sasl is not None and not session.sasl.failed


@pytest.mark.parametrize("version", AUTHENTICATE_VERSIONS)
def test_scram_login_rfc7677(users: UserStore, version: int) -> None:
    ctx = make_ctx(users)
    session = new_session(ctx)
    # A session's SASL server made beforehand, with RFC 7677's server nonce injected.
    session.sasl = SaslServer(users, nonce=lambda: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    assert handshake(ctx, session, "SCRAM-SHA-256").error_code == ErrorCode.NONE

    first = authenticate(ctx, session, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", version)
    assert first.error_code == ErrorCode.NONE
    assert first.auth_bytes == (
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    assert not session.authenticated
    final = authenticate(
        ctx,
        session,
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        version,
    )
    assert final.error_code == ErrorCode.NONE
    assert final.auth_bytes == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert lifetime_ms(final) == 0
    assert session.authenticated and session.principal == "User:user"


def test_scram_login_with_kafka_python_client(users: UserStore) -> None:
    scram = pytest.importorskip("kafka.net.sasl.scram")
    mechanism = scram.SaslMechanismScram(
        sasl_plain_username="alice",
        sasl_plain_password="alice-secret",
        sasl_mechanism="SCRAM-SHA-256",
    )
    ctx = make_ctx(users)
    session = new_session(ctx)
    handshake(ctx, session, "SCRAM-SHA-256")
    while not mechanism.is_done():
        response = authenticate(ctx, session, mechanism.auth_bytes())
        assert response.error_code == ErrorCode.NONE, response.error_message
        mechanism.receive(response.auth_bytes)
    assert session.authenticated and session.principal == "User:alice"


@pytest.mark.parametrize("version", AUTHENTICATE_VERSIONS)
def test_wrong_password(users: UserStore, version: int) -> None:
    ctx = make_ctx(users)
    session = new_session(ctx)
    handshake(ctx, session, "PLAIN")
    response = authenticate(ctx, session, b"\x00alice\x00nope", version)
    assert response.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
    assert "Invalid username or password" in response.error_message
    assert not session.authenticated and session.principal is None
    assert session.sasl is not None and session.sasl.failed  # the connection closes
    # anything more on this connection is out of order
    again = authenticate(ctx, session, b"\x00alice\x00alice-secret", version)
    assert again.error_code == ErrorCode.ILLEGAL_SASL_STATE
    assert not session.authenticated


def test_scram_failure_carries_the_rfc_error(users: UserStore) -> None:
    ctx = make_ctx(users)
    session = new_session(ctx)
    handshake(ctx, session, "SCRAM-SHA-256")
    response = authenticate(ctx, session, b"n,,n=alice")
    assert response.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
    assert response.auth_bytes == b"e=invalid-encoding"
    assert "Invalid SCRAM-SHA-256 message" in response.error_message
    assert session.sasl is not None and session.sasl.failed


@pytest.mark.parametrize("version", HANDSHAKE_VERSIONS)
def test_unsupported_mechanism(users: UserStore, version: int) -> None:
    ctx = make_ctx(users, ("SCRAM-SHA-256",))
    session = new_session(ctx)
    response = handshake(ctx, session, "PLAIN", version)
    assert response.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM
    assert list(response.mechanisms) == ["SCRAM-SHA-256"]
    assert session.sasl is not None and session.sasl.failed


def test_authenticate_before_handshake(users: UserStore) -> None:
    ctx = make_ctx(users)
    session = new_session(ctx)
    response = authenticate(ctx, session, b"\x00alice\x00alice-secret")
    assert response.error_code == ErrorCode.ILLEGAL_SASL_STATE
    assert "before a successful SaslHandshake" in response.error_message
    assert not session.authenticated
    assert session.sasl is not None and session.sasl.failed


def test_second_handshake_during_authentication(users: UserStore) -> None:
    ctx = make_ctx(users)
    session = new_session(ctx)
    handshake(ctx, session, "SCRAM-SHA-256")
    response = handshake(ctx, session, "PLAIN")
    assert response.error_code == ErrorCode.ILLEGAL_SASL_STATE
    assert list(response.mechanisms) == []
    assert session.sasl is not None and session.sasl.failed


def test_after_authentication_both_are_illegal_but_harmless(users: UserStore) -> None:
    ctx = make_ctx(users)
    session = new_session(ctx)
    handshake(ctx, session, "PLAIN")
    authenticate(ctx, session, b"\x00alice\x00alice-secret")
    response = handshake(ctx, session, "PLAIN")
    assert response.error_code == ErrorCode.ILLEGAL_SASL_STATE
    response = authenticate(ctx, session, b"\x00user\x00pencil")
    assert response.error_code == ErrorCode.ILLEGAL_SASL_STATE
    assert "after successful authentication" in response.error_message
    # still alice, and the connection stays usable
    assert session.authenticated and session.principal == "User:alice"
    assert session.sasl is not None and not session.sasl.failed


@pytest.mark.parametrize("version", HANDSHAKE_VERSIONS)
def test_authentication_disabled_answers_like_a_plaintext_listener(version: int) -> None:
    # Kafka's KafkaApis.handleSaslHandshakeRequest: ILLEGAL_SASL_STATE, no mechanisms.
    ctx = make_ctx(None)
    session = new_session(ctx)
    response = handshake(ctx, session, "PLAIN", version)
    assert response.error_code == ErrorCode.ILLEGAL_SASL_STATE
    assert list(response.mechanisms) == []
    response = authenticate(ctx, session, b"\x00alice\x00alice-secret")
    assert response.error_code == ErrorCode.ILLEGAL_SASL_STATE
    assert session.sasl is None and session.principal is None


def test_handshake_v0_then_raw_tokens(users: UserStore) -> None:
    ctx = make_ctx(users)
    session = new_session(ctx)
    response = handshake(ctx, session, "PLAIN", version=0)
    assert response.error_code == ErrorCode.NONE
    assert session.sasl is not None and session.sasl.expects_raw_token
    # SaslAuthenticate is not how a v0 client goes on
    wrong = make_ctx(users)
    other = new_session(wrong)
    handshake(wrong, other, "PLAIN", version=0)
    assert authenticate(wrong, other, b"\x00a\x00b").error_code == ErrorCode.ILLEGAL_SASL_STATE
    # the bare token, answered by a bare (here empty) token
    assert handle_raw_sasl_token(session, b"\x00alice\x00alice-secret") == b""
    assert session.authenticated and session.principal == "User:alice"
    assert not session.sasl.expects_raw_token


def test_handshake_v0_raw_scram_and_failure(users: UserStore) -> None:
    scram = pytest.importorskip("kafka.net.sasl.scram")
    ctx = make_ctx(users)
    session = new_session(ctx)
    handshake(ctx, session, "SCRAM-SHA-256", version=0)
    mechanism = scram.SaslMechanismScram(
        sasl_plain_username="alice",
        sasl_plain_password="alice-secret",
        sasl_mechanism="SCRAM-SHA-256",
    )
    while not mechanism.is_done():
        reply = handle_raw_sasl_token(session, mechanism.auth_bytes())
        assert reply is not None
        mechanism.receive(reply)
    assert session.authenticated

    session = new_session(ctx)
    handshake(ctx, session, "PLAIN", version=0)
    assert handle_raw_sasl_token(session, b"\x00alice\x00wrong") is None  # close, no answer
    assert session.sasl is not None and session.sasl.failed
    with pytest.raises(ValueError):
        handle_raw_sasl_token(session, b"\x00alice\x00alice-secret")
