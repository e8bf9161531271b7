"""Server side of SASL, sans-IO: one ``SaslServer`` per connection, tokens in, tokens out.

The handlers of SaslHandshake and SaslAuthenticate drive it; nothing here knows about
sockets or Kafka messages. Two mechanisms:

* PLAIN (RFC 4616): one client token ``authzid NUL authcid NUL passwd``, answered with an
  empty token. The authzid must be empty or the authcid, as in Kafka.
* SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677): client-first ``n,,n=<user>,r=<cnonce>`` →
  server-first ``r=<cnonce><snonce>,s=<salt>,i=<iterations>`` → client-final
  ``c=biws,r=<nonce>,p=<proof>`` → server-final ``v=<ServerSignature>``; a failure is
  answered ``e=<server-error-value>``. Channel binding is not offered (no -PLUS), so a
  client asking for it (``p=``) is refused; Kafka's delegation tokens
  (``tokenauth=true``) are not supported.

Credentials come from a ``UserStore``. An unknown user goes through the same steps and
the same work as a known one with a wrong password, and gets the same error.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from streamlog.broker.errors import SaslStateError
from streamlog.broker.users import SCRAM_MECHANISMS, ScramCredential, UserStore

__all__ = [
    "SUPPORTED_MECHANISMS",
    "SaslServer",
    "SaslState",
    "SaslStateError",
    "SaslStep",
]

PLAIN = "PLAIN"
SCRAM_SHA_256 = "SCRAM-SHA-256"
SCRAM_SHA_512 = "SCRAM-SHA-512"
SUPPORTED_MECHANISMS: tuple[str, ...] = (PLAIN, SCRAM_SHA_256, SCRAM_SHA_512)


class SaslState(enum.Enum):
    HANDSHAKE = "handshake"  # no mechanism chosen yet
    AUTHENTICATE = "authenticate"  # mechanism chosen, exchanging tokens
    COMPLETE = "complete"  # authenticated; ``principal`` is set
    FAILED = "failed"  # the connection must be closed once the error is sent


@dataclass(frozen=True, slots=True)
class SaslStep:
    """What to answer one client token with.

    ``challenge`` goes back to the client (SaslAuthenticate's ``auth_bytes``). On success
    of the whole exchange ``done`` is true. On failure ``error`` is the message for the
    client (it never says whether the user exists) and ``reason`` a fuller one for the
    broker's log; ``challenge`` then holds SCRAM's ``e=`` message, or is empty.
    """

    challenge: bytes = b""
    done: bool = False
    error: str | None = None
    reason: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


class _Failure(Exception):
    def __init__(self, error: str, reason: str | None = None, challenge: bytes = b"") -> None:
        super().__init__(error)
        self.error = error
        self.reason = reason or error
        self.challenge = challenge


class _Exchange(Protocol):
    """One mechanism's side of one authentication: ``step`` returns the challenge and
    whether the exchange is complete, or raises ``_Failure``."""

    username: str | None

    def step(self, token: bytes) -> tuple[bytes, bool]: ...


def new_nonce() -> str:
    """A fresh server nonce: 32 random bytes, base64url (printable, no comma)."""
    return secrets.token_urlsafe(32)


class SaslServer:
    """The SASL state of one connection.

    States: HANDSHAKE → (``select``) → AUTHENTICATE → (``step``...) → COMPLETE, or FAILED
    from anywhere before COMPLETE. FAILED and COMPLETE are final; a new connection starts
    a new ``SaslServer`` (Kafka's re-authentication, KIP-368, is not offered: the session
    lifetime sent to clients is 0).

    ``raw_tokens`` is set when the client chose its mechanism with SaslHandshake v0: the
    tokens then come as bare size-prefixed frames instead of SaslAuthenticate requests.
    """

    def __init__(
        self,
        users: UserStore,
        mechanisms: Iterable[str] = SUPPORTED_MECHANISMS,
        *,
        nonce: Callable[[], str] = new_nonce,
    ) -> None:
        self.users = users
        self.mechanisms: tuple[str, ...] = tuple(mechanisms)
        unknown = [m for m in self.mechanisms if m not in SUPPORTED_MECHANISMS]
        if unknown:
            raise ValueError(
                f"unsupported SASL mechanism(s) {unknown}; supported: {list(SUPPORTED_MECHANISMS)}"
            )
        self._nonce = nonce
        self._state = SaslState.HANDSHAKE
        self.mechanism: str | None = None
        self.raw_tokens = False
        self.username: str | None = None
        self.failure: str | None = None
        self._exchange: _Exchange | None = None

    @property
    def state(self) -> SaslState:
        return self._state

    @property
    def principal(self) -> str | None:
        """Kafka's name for the authenticated user, ``User:<name>``; None until COMPLETE."""
        return f"User:{self.username}" if self.username is not None else None

    @property
    def failed(self) -> bool:
        return self.state is SaslState.FAILED

    @property
    def complete(self) -> bool:
        return self.state is SaslState.COMPLETE

    @property
    def expects_raw_token(self) -> bool:
        """The next frame from the client is a bare SASL token (after SaslHandshake v0)."""
        return self.raw_tokens and self.state is SaslState.AUTHENTICATE

    def select(self, mechanism: str, *, raw_tokens: bool = False) -> bool:
        """The client's SaslHandshake: True and AUTHENTICATE if ``mechanism`` is enabled,
        else False and FAILED."""
        if self.state is not SaslState.HANDSHAKE:
            raise SaslStateError(f"mechanism chosen in state {self.state.name}")
        if mechanism not in self.mechanisms:
            self.fail(f"unsupported SASL mechanism {mechanism!r}")
            return False
        self.mechanism = mechanism
        self.raw_tokens = raw_tokens
        if mechanism == PLAIN:
            self._exchange = _PlainExchange(self.users)
        else:
            self._exchange = _ScramExchange(self.users, self._nonce, mechanism)
        self._state = SaslState.AUTHENTICATE
        return True

    def step(self, token: bytes) -> SaslStep:
        """Feed one token from the client; never raises for anything the client sent."""
        if self.state is not SaslState.AUTHENTICATE or self._exchange is None:
            raise SaslStateError(f"token received in state {self.state.name}")
        try:
            challenge, done = self._exchange.step(bytes(token))
        except _Failure as f:
            self.fail(f.reason)
            return SaslStep(challenge=f.challenge, error=f.error, reason=f.reason)
        if done:
            self.username = self._exchange.username
            self._state = SaslState.COMPLETE
        return SaslStep(challenge=challenge, done=done)

    def fail(self, reason: str) -> None:
        """Give up on this connection's authentication (out-of-order requests too)."""
        if self.state is not SaslState.COMPLETE:
            self._state = SaslState.FAILED
            self.failure = reason
            self._exchange = None


# --- PLAIN ---------------------------------------------------------------------------


class _PlainExchange:
    def __init__(self, users: UserStore) -> None:
        self.users = users
        self.username: str | None = None

    def step(self, token: bytes) -> tuple[bytes, bool]:
        parts = token.split(b"\x00")
        if len(parts) != 3:
            raise _Failure(
                "Invalid SASL/PLAIN message: expected authzid NUL authcid NUL password, "
                f"got {len(parts)} field(s)"
            )
        try:
            authzid, username = parts[0].decode("utf-8"), parts[1].decode("utf-8")
        except UnicodeDecodeError:
            raise _Failure("Invalid SASL/PLAIN message: username is not UTF-8") from None
        password = parts[2]
        if not username:
            raise _Failure("Authentication failed: username not specified")
        if not password:
            raise _Failure("Authentication failed: password not specified")
        if authzid and authzid != username:
            raise _Failure(
                "Authentication failed: Client requested an authorization id "
                "that is different from username"
            )
        credential = self.users.get(username)
        # The unknown user costs the same PBKDF2 as a wrong password.
        known = credential is not None
        if credential is None:
            credential = self.users.mock_credential(username)
        if not credential.check_password(password) or not known:
            raise _Failure(
                "Authentication failed: Invalid username or password",
                reason=f"PLAIN: {'wrong password for' if known else 'unknown'} user {username!r}",
            )
        self.username = username
        return b"", True


# --- SCRAM-SHA-256 and SCRAM-SHA-512 ---------------------------------------------------


def _scram_failed(mechanism: str) -> str:
    # Kafka's words, which do not say whether the user exists
    return (
        "Authentication failed during authentication due to invalid credentials "
        f"with SASL mechanism {mechanism}"
    )


def _scram_error(value: str, error: str, reason: str | None = None) -> _Failure:
    """A failure answered with RFC 5802's ``e=<server-error-value>``."""
    return _Failure(f"{error} (e={value})", reason, b"e=" + value.encode("ascii"))


def _malformed(what: str, mechanism: str = SCRAM_SHA_256) -> _Failure:
    return _scram_error("invalid-encoding", f"Invalid {mechanism} message: {what}")


def _is_printable(text: str) -> bool:
    # RFC 5802: printable = %x21-2B / %x2D-7E (visible ASCII but ",")
    return bool(text) and all("\x21" <= c <= "\x7e" and c != "," for c in text)


def _decode_saslname(text: str) -> str:
    """RFC 5802's saslname: "," and "=" are sent as "=2C" and "=3D"; any other "=" is an error."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "=":
            escape = text[i : i + 3]
            if escape == "=2C":
                out.append(",")
            elif escape == "=3D":
                out.append("=")
            else:
                raise _scram_error("invalid-username-encoding", "Invalid SCRAM username encoding")
            i += 3
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def _strict_b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


class _ScramExchange:
    """RFC 5802 server: two client messages, answered with server-first and server-final."""

    def __init__(
        self, users: UserStore, nonce: Callable[[], str], mechanism: str = SCRAM_SHA_256
    ) -> None:
        self.users = users
        self._make_nonce = nonce
        self.mechanism = mechanism
        self._hash = SCRAM_MECHANISMS[mechanism]
        self.username: str | None = None  # set on success only
        self._stage = 0
        self._gs2_header = b""
        self._nonce = ""
        self._known = False
        self._claimed = ""
        self._credential: ScramCredential | None = None
        self._client_first_bare = ""
        self._server_first = ""

    def _attribute(self, part: str, name: str, what: str) -> str:
        if not part.startswith(name + "="):
            raise _malformed(f"expected {name}= in the {what}, got {part[:20]!r}", self.mechanism)
        return part[len(name) + 1 :]

    def step(self, token: bytes) -> tuple[bytes, bool]:
        try:
            message = token.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed("not UTF-8", self.mechanism) from None
        # The SaslServer stops calling after the final message or a failure.
        if self._stage == 0:
            self._stage = 1
            return self._client_first(message), False
        return self._client_final(message), True

    def _client_first(self, message: str) -> bytes:
        # gs2-header = gs2-cbind-flag "," [ authzid ] ","
        flag, sep1, rest = message.partition(",")
        authzid_part, sep2, bare = rest.partition(",")
        if not sep1 or not sep2:
            raise _malformed("client-first-message has no GS2 header", self.mechanism)
        if flag.startswith("p="):
            raise _scram_error(
                "channel-binding-not-supported",
                f"{self.mechanism} channel binding is not supported by this server",
            )
        if flag not in ("n", "y"):
            raise _malformed(f"bad GS2 channel binding flag {flag[:10]!r}", self.mechanism)
        authzid = ""
        if authzid_part:
            authzid = _decode_saslname(self._attribute(authzid_part, "a", "GS2 header"))
        self._gs2_header = f"{flag},{authzid_part},".encode()

        parts = bare.split(",")
        if parts[0].startswith("m="):
            raise _scram_error(
                "extensions-not-supported",
                f"{self.mechanism} mandatory extensions are not supported",
            )
        if len(parts) < 2:
            raise _malformed("client-first-message needs n= and r=", self.mechanism)
        username = _decode_saslname(self._attribute(parts[0], "n", "client-first-message"))
        client_nonce = self._attribute(parts[1], "r", "client-first-message")
        if not username:
            raise _malformed("empty username", self.mechanism)
        if not _is_printable(client_nonce):
            raise _malformed("client nonce is empty or not printable ASCII", self.mechanism)
        extensions = {}
        for part in parts[2:]:
            key, eq, value = part.partition("=")
            if not eq or not key:
                raise _malformed(f"bad extension {part[:20]!r}", self.mechanism)
            extensions[key] = value
        if extensions.get("tokenauth", "").lower() == "true":
            raise _scram_error(
                "other-error",
                f"{self.mechanism} delegation token authentication is not supported",
            )
        if authzid and authzid != username:
            raise _scram_error(
                "other-error",
                "Authentication failed: Client requested an authorization id "
                "that is different from username",
            )

        server_nonce = self._make_nonce()
        if not _is_printable(server_nonce):
            raise ValueError(f"server nonce {server_nonce!r} is not printable ASCII")
        credential = self.users.scram(username, self.mechanism)
        self._known = credential is not None
        if credential is None:
            credential = self.users.mock_credential(username, self.mechanism)
        self._claimed = username
        self._credential = credential
        self._nonce = client_nonce + server_nonce
        self._client_first_bare = bare
        self._server_first = (
            f"r={self._nonce},s={_b64(credential.salt).decode('ascii')},i={credential.iterations}"
        )
        return self._server_first.encode("ascii")

    def _client_final(self, message: str) -> bytes:
        without_proof, sep, proof_text = message.rpartition(",p=")
        if not sep or "," in proof_text:
            raise _malformed("client-final-message has no proof (p=) at its end", self.mechanism)
        parts = without_proof.split(",")
        if len(parts) < 2:
            raise _malformed("client-final-message needs c= and r=", self.mechanism)
        channel_binding = _strict_b64decode(self._attribute(parts[0], "c", "client-final-message"))
        nonce = self._attribute(parts[1], "r", "client-final-message")
        if channel_binding is None:
            raise _malformed("channel binding (c=) is not base64", self.mechanism)
        proof = _strict_b64decode(proof_text)
        if proof is None or len(proof) != hashlib.new(self._hash).digest_size:
            raise _malformed("proof (p=) is not a base64 digest of the right size", self.mechanism)
        if not hmac.compare_digest(channel_binding, self._gs2_header):
            raise _scram_error(
                "channel-bindings-dont-match",
                f"{self.mechanism} channel binding does not match the GS2 header",
            )
        # Kafka's ScramSaslServer accepts a final nonce that ends with the server-first
        # nonce (client nonce + server nonce) rather than only an equal one, and
        # librdkafka 2.0 (kcat 1.7) relies on it: it sends the client nonce twice. The
        # proof covers the nonce as sent, so nothing is accepted without the password.
        if not _is_printable(nonce) or not nonce.endswith(self._nonce):
            raise _scram_error(
                "other-error",
                f"Invalid {self.mechanism} nonce in the client-final-message",
                reason=f"{self.mechanism}: nonce mismatch for user {self._claimed!r} (replay?)",
            )
        credential = self._credential
        if credential is None:
            raise SaslStateError("client-final-message before an accepted client-first-message")
        auth_message = ",".join(
            (self._client_first_bare, self._server_first, without_proof)
        ).encode("utf-8")
        client_signature = hmac.digest(credential.stored_key, auth_message, self._hash)
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        stored_key = hashlib.new(self._hash, client_key).digest()
        if not hmac.compare_digest(stored_key, credential.stored_key) or not self._known:
            raise _scram_error(
                "invalid-proof",
                _scram_failed(self.mechanism),
                reason=(
                    f"{self.mechanism}: {'invalid proof for' if self._known else 'unknown'} "
                    f"user {self._claimed!r}"
                ),
            )
        self.username = self._claimed
        server_signature = hmac.digest(credential.server_key, auth_message, self._hash)
        return b"v=" + _b64(server_signature)
