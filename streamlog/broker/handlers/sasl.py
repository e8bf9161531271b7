"""SaslHandshake and SaslAuthenticate: a client proves who it is before anything else.

The connection's ``session.sasl`` (a ``SaslServer``) holds the exchange; these handlers
only translate between it and Kafka's messages. As in Kafka's SaslServerAuthenticator:

* SaslHandshake names the mechanism: NONE and the enabled list, or
  UNSUPPORTED_SASL_MECHANISM and the enabled list. With v1 the tokens then come in
  SaslAuthenticate requests; with v0 (Kafka 0.10 clients) as bare size-prefixed frames,
  which the connection hands to ``handle_raw_sasl_token``.
* SaslAuthenticate carries one token each way: NONE with the server's token (and a
  session lifetime of 0: no re-authentication), or SASL_AUTHENTICATION_FAILED with a
  message that does not say whether the user exists.
* A request out of order gets ILLEGAL_SASL_STATE.

After any of these errors ``session.sasl.failed`` is true and the connection must be
closed once the response is sent, as Kafka does. Without authentication (no users file)
and after it, both requests get ILLEGAL_SASL_STATE and the connection stays open: that
is what Kafka's request handler answers on a PLAINTEXT listener or an authenticated
connection.
"""

from __future__ import annotations

import logging
from typing import Any

from streamlog.broker.context import BrokerContext, Session
from streamlog.broker.sasl import SaslServer, SaslState
from streamlog.protocol import (
    ApiKey,
    DecodedRequest,
    ErrorCode,
    ResponsePayload,
    build_message,
    response_class,
)

__all__ = ["handle_raw_sasl_token", "handle_sasl_authenticate", "handle_sasl_handshake"]

log = logging.getLogger("streamlog.broker")


def _handshake_response(
    version: int, code: ErrorCode, mechanisms: tuple[str, ...] = ()
) -> ResponsePayload:
    return build_message(
        response_class(ApiKey.SASL_HANDSHAKE, version), error_code=code, mechanisms=mechanisms
    )


def _authenticate_response(
    version: int, code: ErrorCode, message: str | None = None, auth_bytes: bytes = b""
) -> ResponsePayload:
    return build_message(
        response_class(ApiKey.SASL_AUTHENTICATE, version),
        error_code=code,
        error_message=message,
        auth_bytes=auth_bytes,
        session_lifetime=0,
    )


def _sasl_of(ctx: BrokerContext, session: Session) -> SaslServer:
    if session.sasl is None:
        session.sasl = SaslServer(ctx.users, ctx.config.sasl_mechanisms)
    return session.sasl


async def handle_sasl_handshake(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    version = request.api_version
    if ctx.users is None or session.authenticated:
        return _handshake_response(version, ErrorCode.ILLEGAL_SASL_STATE)
    sasl = _sasl_of(ctx, session)
    if sasl.state is not SaslState.HANDSHAKE:
        sasl.fail(f"SaslHandshake received in SASL state {sasl.state.name}")
        return _handshake_response(version, ErrorCode.ILLEGAL_SASL_STATE)
    body: Any = request.body  # a SaslHandshakeRequest of this version
    mechanism: str = body.mechanism
    if not sasl.select(mechanism, raw_tokens=version == 0):
        log.info(
            "SASL from %s (client %s): unsupported mechanism %r",
            session.peer,
            session.client_id,
            mechanism,
        )
        return _handshake_response(version, ErrorCode.UNSUPPORTED_SASL_MECHANISM, sasl.mechanisms)
    return _handshake_response(version, ErrorCode.NONE, sasl.mechanisms)


async def handle_sasl_authenticate(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    version = request.api_version
    if ctx.users is None:
        return _authenticate_response(
            version,
            ErrorCode.ILLEGAL_SASL_STATE,
            "SASL authentication is not enabled on this broker",
        )
    if session.authenticated:
        return _authenticate_response(
            version,
            ErrorCode.ILLEGAL_SASL_STATE,
            "SaslAuthenticate request received after successful authentication",
        )
    sasl = _sasl_of(ctx, session)
    if sasl.state is not SaslState.AUTHENTICATE or sasl.raw_tokens:
        message = (
            "SaslAuthenticate request received before a successful SaslHandshake v1"
            if sasl.state is SaslState.HANDSHAKE or sasl.raw_tokens
            else f"SaslAuthenticate request received in SASL state {sasl.state.name}"
        )
        sasl.fail(message)
        return _authenticate_response(version, ErrorCode.ILLEGAL_SASL_STATE, message)
    body: Any = request.body  # a SaslAuthenticateRequest of this version
    step = sasl.step(body.auth_bytes)
    if step.failed:
        log.info(
            "SASL authentication from %s (client %s) failed: %s",
            session.peer,
            session.client_id,
            step.reason,
        )
        return _authenticate_response(
            version, ErrorCode.SASL_AUTHENTICATION_FAILED, step.error, step.challenge
        )
    if step.done:
        _authenticated(session, sasl)
    return _authenticate_response(version, ErrorCode.NONE, None, step.challenge)


def handle_raw_sasl_token(session: Session, token: bytes) -> bytes | None:
    """A bare SASL token, sent after SaslHandshake v0 (when ``session.sasl.expects_raw_token``).

    Returns the token to send back in a size-prefixed frame (possibly empty, which the
    client still waits for), or None: authentication failed and, as Kafka does for these
    old clients, the connection is to be closed without an answer.
    """
    sasl = session.sasl
    if sasl is None or not sasl.expects_raw_token:
        raise ValueError("no SASL exchange expects a raw token on this connection")
    step = sasl.step(token)
    if step.failed:
        log.info(
            "SASL authentication from %s (client %s) failed: %s",
            session.peer,
            session.client_id,
            step.reason,
        )
        return None
    if step.done:
        _authenticated(session, sasl)
    return step.challenge


def _authenticated(session: Session, sasl: SaslServer) -> None:
    session.authenticated = True
    session.principal = sasl.principal
    log.debug(
        "%s (client %s) authenticated as %s with %s",
        session.peer,
        session.client_id,
        session.principal,
        sasl.mechanism,
    )
