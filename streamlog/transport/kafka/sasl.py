"""Client side of SASL, sans-IO: the tokens a client sends for PLAIN and SCRAM-SHA-256/512.

``Connection`` drives one ``SaslClient`` after ApiVersions, as Kafka's clients do
(KIP-152): SaslHandshake v1 names the mechanism, then each token goes in a
SaslAuthenticate request and the broker's answer comes back as the next challenge.

* PLAIN (RFC 4616): one token ``NUL username NUL password``; the broker answers with an
  empty token. The password travels in clear: use it over TLS only.
* SCRAM (RFC 5802, RFC 7677; Kafka's SCRAM-SHA-256 and SCRAM-SHA-512): client-first
  ``n,,n=<user>,r=<cnonce>`` -> server-first ``r=<cnonce+snonce>,s=<salt>,i=<iterations>``
  -> client-final ``c=biws,r=<nonce>,p=<proof>`` -> server-final ``v=<signature>``, which
  is checked, so a server that does not know the password is not trusted either.
  The password is not SASLprep-normalised (Kafka's clients and brokers do not do it
  either), and no channel binding is offered.

Everything in a server message is checked before use: a nonce that does not extend ours,
an iteration count outside ``MIN_ITERATIONS..MAX_ITERATIONS`` (the upper bound stops a
hostile server from making the client hash for minutes) or a bad signature raises
``AuthenticationError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Protocol

from streamlog.transport.errors import AuthenticationError

__all__ = ["SaslClient", "PlainClient", "ScramClient", "sasl_client", "MAX_ITERATIONS"]

# Kafka's ScramMechanism: at least 4096 iterations for both hashes.
MIN_ITERATIONS = 4096
# Kafka brokers use at most 16384; other servers may use more, but not this many.
MAX_ITERATIONS = 100_000

_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


class SaslClient(Protocol):
    """One mechanism's side of one login: ``first`` is the first token; ``respond`` takes
    the broker's challenge and returns the next token, or None when the login is complete
    (the broker's last message checked)."""

    mechanism: str

    def first(self) -> bytes: ...

    def respond(self, challenge: bytes) -> bytes | None: ...


def sasl_client(mechanism: str, username: str, password: str) -> SaslClient:
    """The client for ``mechanism`` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)."""
    if mechanism == "PLAIN":
        return PlainClient(username, password)
    if mechanism in _HASHES:
        return ScramClient(mechanism, username, password)
    raise ValueError(f"unsupported SASL mechanism {mechanism!r}")


class PlainClient:
    mechanism = "PLAIN"

    def __init__(self, username: str, password: str) -> None:
        self._token = b"\x00" + username.encode("utf-8") + b"\x00" + password.encode("utf-8")

    def first(self) -> bytes:
        return self._token

    def respond(self, challenge: bytes) -> bytes | None:
        # The broker's answer to PLAIN carries nothing; success is the absence of an error.
        return None


def _saslname(username: str) -> str:
    """RFC 5802: "=" and "," in a username are sent as "=3D" and "=2C"."""
    return username.replace("=", "=3D").replace(",", "=2C")


def _new_nonce() -> str:
    return secrets.token_urlsafe(24)


class ScramClient:
    """RFC 5802's client. States: ``first`` -> ``respond(server-first)`` gives the
    client-final -> ``respond(server-final)`` checks the signature and gives None."""

    def __init__(
        self,
        mechanism: str,
        username: str,
        password: str,
        *,
        nonce: Callable[[], str] = _new_nonce,
    ) -> None:
        if mechanism not in _HASHES:
            raise ValueError(f"not a SCRAM mechanism: {mechanism!r}")
        self.mechanism = mechanism
        self._hash = _HASHES[mechanism]
        self._password = password.encode("utf-8")
        self._nonce = nonce()
        self._first_bare = f"n={_saslname(username)},r={self._nonce}"
        self._stage = 0
        self._server_signature = b""

    def _fail(self, what: str) -> AuthenticationError:
        return AuthenticationError(f"{what} (SASL {self.mechanism})")

    def first(self) -> bytes:
        self._stage = 1
        return ("n,," + self._first_bare).encode("utf-8")

    def respond(self, challenge: bytes) -> bytes | None:
        if self._stage == 1:
            self._stage = 2
            return self._client_final(challenge)
        if self._stage == 2:
            self._stage = 3
            self._check_server_final(challenge)
            return None
        raise self._fail("unexpected SCRAM message after the exchange")

    def _client_final(self, challenge: bytes) -> bytes:
        try:
            server_first = challenge.decode("ascii")
        except UnicodeDecodeError:
            raise self._fail("the server-first message is not ASCII") from None
        attributes: dict[str, str] = {}
        for part in server_first.split(","):
            key, eq, value = part.partition("=")
            if not eq or len(key) != 1:
                raise self._fail(f"malformed server-first message {server_first[:80]!r}")
            attributes.setdefault(key, value)
        if "m" in attributes:
            raise self._fail("the server asks for a SCRAM extension this client does not know")
        if "e" in attributes:
            raise self._fail(f"the server refused the first message: {attributes['e']}")
        nonce = attributes.get("r", "")
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise self._fail("the server's nonce does not extend the client's")
        try:
            salt = base64.b64decode(attributes.get("s", ""), validate=True)
            iterations = int(attributes.get("i", ""))
        except (binascii.Error, ValueError):
            raise self._fail(f"malformed salt or iteration count: {server_first[:80]!r}") from None
        if not salt:
            raise self._fail("the server sent an empty salt")
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
            raise self._fail(
                f"the server asks for {iterations} iterations, outside "
                f"{MIN_ITERATIONS}..{MAX_ITERATIONS}"
            )
        salted = hashlib.pbkdf2_hmac(self._hash, self._password, salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", self._hash)
        stored_key = hashlib.new(self._hash, client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._first_bare},{server_first},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, self._hash)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", self._hash)
        self._server_signature = hmac.digest(server_key, auth_message, self._hash)
        return f"{without_proof},p={base64.b64encode(proof).decode('ascii')}".encode("ascii")

    def _check_server_final(self, challenge: bytes) -> None:
        text = challenge.decode("ascii", errors="replace")
        first = text.split(",", 1)[0]
        if first.startswith("e="):
            raise self._fail(f"the server refused the login: {first[2:]}")
        if not first.startswith("v="):
            raise self._fail(f"malformed server-final message {text[:80]!r}")
        try:
            signature = base64.b64decode(first[2:], validate=True)
        except binascii.Error:
            raise self._fail("the server signature is not base64") from None
        if not hmac.compare_digest(signature, self._server_signature):
            raise self._fail(
                "the server's signature is wrong: it does not know the password "
                "(not the broker it claims to be?)"
            )
