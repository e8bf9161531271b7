"""The SASL state machine: RFC test vectors, real clients' SCRAM code, and bad input."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlog.broker.sasl import SaslServer, SaslState, SaslStateError, SaslStep
from streamlog.broker.users import ScramCredential, UserStore

# RFC 7677 §3
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


@pytest.fixture(scope="module")
def rfc_users() -> UserStore:
    return UserStore({"user": ScramCredential.from_password("pencil", salt=RFC_SALT)})


@pytest.fixture(scope="module")
def users() -> UserStore:
    return UserStore.from_passwords({"alice": "alice-secret", "a,b=c": "odd name", "bob": "pw"})


def scram_server(users: UserStore, nonce: str | None = None) -> SaslServer:
    server = SaslServer(users) if nonce is None else SaslServer(users, nonce=lambda: nonce)
    assert server.select("SCRAM-SHA-256")
    return server


def scram_login(
    server: SaslServer,
    username: str,
    password: str,
    gs2: str = "n,,",
    final_nonce: Callable[[str], str] = lambda nonce: nonce,
) -> SaslStep:
    """A client written from RFC 5802 alone, so that the GS2 header can vary, and the
    nonce it sends back (``final_nonce`` of the server-first one)."""
    bare = f"n={username},r=clientnonce"
    server_first = server.step(f"{gs2}{bare}".encode()).challenge.decode()
    attrs = dict(p.split("=", 1) for p in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
    )
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    without_proof = f"c={base64.b64encode(gs2.encode()).decode()},r={final_nonce(attrs['r'])}"
    auth_message = f"{bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    return server.step(f"{without_proof},p={base64.b64encode(proof).decode()}".encode())


def plain_server(users: UserStore) -> SaslServer:
    server = SaslServer(users)
    assert server.select("PLAIN")
    return server


# --- SCRAM-SHA-256 ---------------------------------------------------------------------


def test_rfc7677_test_vector(rfc_users: UserStore) -> None:
    server = scram_server(rfc_users, RFC_SERVER_NONCE)
    first = server.step(RFC_CLIENT_FIRST)
    assert first.challenge == RFC_SERVER_FIRST
    assert not first.done and not first.failed
    assert server.state is SaslState.AUTHENTICATE
    final = server.step(RFC_CLIENT_FINAL)
    assert final.challenge == RFC_SERVER_FINAL
    assert final.done and not final.failed
    assert server.state is SaslState.COMPLETE
    assert server.username == "user"
    assert server.principal == "User:user"


def test_rfc7677_vector_from_a_verifier_line() -> None:
    # The same credentials given pre-computed, as a users file may hold them.
    credential = ScramCredential.from_password("pencil", salt=RFC_SALT)
    store = UserStore({"user": ScramCredential.from_verifier(credential.verifier())})
    server = scram_server(store, RFC_SERVER_NONCE)
    assert server.step(RFC_CLIENT_FIRST).challenge == RFC_SERVER_FIRST
    assert server.step(RFC_CLIENT_FINAL).challenge == RFC_SERVER_FINAL


def test_rfc7677_vector_with_wrong_password_fails() -> None:
    store = UserStore({"user": ScramCredential.from_password("pencil2", salt=RFC_SALT)})
    server = scram_server(store, RFC_SERVER_NONCE)
    assert server.step(RFC_CLIENT_FIRST).challenge == RFC_SERVER_FIRST
    final = server.step(RFC_CLIENT_FINAL)
    assert final.failed and not final.done
    assert final.challenge == b"e=invalid-proof"
    assert server.state is SaslState.FAILED
    assert server.principal is None


def test_tampered_proof_fails(rfc_users: UserStore) -> None:
    server = scram_server(rfc_users, RFC_SERVER_NONCE)
    server.step(RFC_CLIENT_FIRST)
    proof = bytearray(base64.b64decode(RFC_CLIENT_FINAL.rsplit(b",p=", 1)[1]))
    proof[0] ^= 1
    tampered = RFC_CLIENT_FINAL.rsplit(b",p=", 1)[0] + b",p=" + base64.b64encode(bytes(proof))
    step = server.step(tampered)
    assert step.failed and step.challenge == b"e=invalid-proof"


def test_tampered_client_first_breaks_the_proof(rfc_users: UserStore) -> None:
    # The proof signs the whole exchange: a different client nonce (same length) fails.
    server = scram_server(rfc_users, RFC_SERVER_NONCE)
    server.step(b"n,,n=user,r=xOprNGfwEbeRWgbNEkqO")
    forged = RFC_CLIENT_FINAL.replace(b"r=rOpr", b"r=xOpr")
    step = server.step(forged)
    assert step.failed and step.challenge == b"e=invalid-proof"


def test_replayed_final_message_fails_with_a_fresh_server_nonce(rfc_users: UserStore) -> None:
    # A recorded exchange, replayed: the server's nonce differs, so the old final is refused.
    server = scram_server(rfc_users)  # random server nonce
    first = server.step(RFC_CLIENT_FIRST)
    assert first.challenge.startswith(b"r=rOprNGfwEbeRWgbNEkqO")
    assert first.challenge != RFC_SERVER_FIRST
    step = server.step(RFC_CLIENT_FINAL)
    assert step.failed
    assert step.challenge == b"e=other-error"
    assert "nonce" in (step.reason or "")


def test_librdkafka_2_0s_doubled_client_nonce_is_accepted_as_kafka_does(
    users: UserStore,
) -> None:
    # librdkafka 2.0 (kcat 1.7) sends client nonce + client nonce + server nonce; Kafka's
    # ScramSaslServer checks only that the final nonce ends with the server-first nonce.
    server = scram_server(users, "srvnonce")
    step = scram_login(server, "alice", "alice-secret", final_nonce=lambda r: "clientnonce" + r)
    assert step.done and not step.failed
    assert server.username == "alice"
    assert step.challenge.startswith(b"v=")


@pytest.mark.parametrize(
    "final_nonce",
    [
        lambda r: r[len("clientnonce") :],  # the server's nonce alone
        lambda r: r + "x",  # something after it
        lambda r: r[:-1],  # cut short
        lambda r: "clientnonce" + r[len("clientnonce") + 1 :],  # not the server's
        lambda r: "a b" + r,  # a prefix Kafka's printable pattern refuses
        lambda r: "é" + r,
    ],
)
def test_a_final_nonce_not_ending_with_the_server_first_one_is_refused(
    users: UserStore, final_nonce: Callable[[str], str]
) -> None:
    server = scram_server(users, "srvnonce")
    step = scram_login(server, "alice", "alice-secret", final_nonce=final_nonce)
    assert step.failed and not step.done
    assert step.challenge == b"e=other-error"
    assert "nonce" in (step.reason or "")
    assert server.state is SaslState.FAILED


def test_a_doubled_nonce_still_needs_the_password(users: UserStore) -> None:
    server = scram_server(users, "srvnonce")
    step = scram_login(server, "alice", "wrong", final_nonce=lambda r: "clientnonce" + r)
    assert step.failed and step.challenge == b"e=invalid-proof"


def test_server_nonces_differ_between_connections(users: UserStore) -> None:
    nonces = set()
    for _ in range(20):
        server = scram_server(users)
        nonces.add(server.step(b"n,,n=alice,r=abc").challenge.split(b",")[0])
    assert len(nonces) == 20


def test_no_token_after_completion(rfc_users: UserStore) -> None:
    server = scram_server(rfc_users, RFC_SERVER_NONCE)
    server.step(RFC_CLIENT_FIRST)
    server.step(RFC_CLIENT_FINAL)
    with pytest.raises(SaslStateError):
        server.step(RFC_CLIENT_FINAL)


def test_unknown_user_looks_like_a_wrong_password(users: UserStore) -> None:
    # Same salt for the same unknown name, same iterations, same final error.
    a = scram_server(users).step(b"n,,n=mallory,r=abc").challenge.decode()
    b = scram_server(users).step(b"n,,n=mallory,r=abc").challenge.decode()
    salt_a = dict(p.split("=", 1) for p in a.split(","))["s"]
    salt_b = dict(p.split("=", 1) for p in b.split(","))["s"]
    assert salt_a == salt_b
    assert dict(p.split("=", 1) for p in a.split(","))["i"] == "4096"

    kafka_scram = pytest.importorskip("kafka.net.sasl.scram")
    for username in ("mallory", "alice"):
        client = kafka_scram.ScramClient(username, "wrong", "SCRAM-SHA-256")
        server = scram_server(users)
        client.process_server_first_message(server.step(client.first_message()).challenge)
        step = server.step(client.final_message())
        assert step.failed and step.challenge == b"e=invalid-proof"
        assert "invalid credentials" in (step.error or "")
        assert username not in (step.error or "")


@pytest.mark.parametrize("username", ["alice", "a,b=c"])
def test_aiokafka_scram_client(users: UserStore, username: str) -> None:
    conn = pytest.importorskip("aiokafka.conn")
    password = {"alice": "alice-secret", "a,b=c": "odd name"}[username]
    client = conn.ScramAuthenticator(
        loop=None,
        sasl_plain_username=username,
        sasl_plain_password=password,
        sasl_mechanism="SCRAM-SHA-256",
    )
    server = scram_server(users)
    first = server.step(client.first_message().encode())
    client.process_server_first_message(first.challenge.decode())
    final = server.step(client.final_message().encode())
    assert final.done, final.reason
    client.process_server_final_message(final.challenge.decode())  # raises if wrong
    assert server.username == username


def test_kafka_python_scram_client(users: UserStore) -> None:
    scram = pytest.importorskip("kafka.net.sasl.scram")
    mechanism = scram.SaslMechanismScram(
        sasl_plain_username="alice",
        sasl_plain_password="alice-secret",
        sasl_mechanism="SCRAM-SHA-256",
    )
    server = scram_server(users)
    while not mechanism.is_done():
        step = server.step(mechanism.auth_bytes())
        assert not step.failed, step.reason
        mechanism.receive(step.challenge)  # checks the server signature at the end
    assert mechanism.is_authenticated()
    assert server.complete and server.principal == "User:alice"


def test_kafka_python_scram_client_wrong_password(users: UserStore) -> None:
    scram = pytest.importorskip("kafka.net.sasl.scram")
    client = scram.ScramClient("alice", "not-it", "SCRAM-SHA-256")
    server = scram_server(users)
    client.process_server_first_message(server.step(client.first_message()).challenge)
    step = server.step(client.final_message())
    assert step.failed and server.failed
    assert "wrong password" not in (step.error or "")  # the log reason may say more
    assert "alice" in (step.reason or "")


@pytest.mark.parametrize("gs2", ["n,,", "y,,", "n,a=user,"])
def test_gs2_headers_accepted(rfc_users: UserStore, gs2: str) -> None:
    # "y": the client could bind a channel but thinks we cannot (true: no -PLUS);
    # an authzid equal to the username is allowed, as in Kafka.
    step = scram_login(scram_server(rfc_users), "user", "pencil", gs2)
    assert step.done, step.reason


def test_independent_client_wrong_password(rfc_users: UserStore) -> None:
    step = scram_login(scram_server(rfc_users), "user", "pencil!")
    assert step.failed and step.challenge == b"e=invalid-proof"


@pytest.mark.parametrize(
    ("client_first", "e"),
    [
        (b"", "invalid-encoding"),
        (b"n,,", "invalid-encoding"),
        (b"n", "invalid-encoding"),
        (b"x,,n=user,r=abc", "invalid-encoding"),
        (b"p=tls-unique,,n=user,r=abc", "channel-binding-not-supported"),
        (b"n,,m=ext,n=user,r=abc", "extensions-not-supported"),
        (b"n,,n=user", "invalid-encoding"),
        (b"n,,r=abc,n=user", "invalid-encoding"),
        (b"n,,n=,r=abc", "invalid-encoding"),
        (b"n,,n=user,r=", "invalid-encoding"),
        (b"n,,n=us=er,r=abc", "invalid-username-encoding"),
        (b"n,,n=user,r=ab\x01c", "invalid-encoding"),
        (b"n,,n=user,r=abc,junk", "invalid-encoding"),
        (b"n,,n=user,r=abc,tokenauth=true", "other-error"),
        (b"n,a=other,n=user,r=abc", "other-error"),
        (b"n,b=user,n=user,r=abc", "invalid-encoding"),
        (b"\xff\xfe", "invalid-encoding"),
    ],
)
def test_malformed_client_first(rfc_users: UserStore, client_first: bytes, e: str) -> None:
    server = scram_server(rfc_users)
    step = server.step(client_first)
    assert step.failed
    assert step.challenge == f"e={e}".encode()
    assert server.state is SaslState.FAILED


@pytest.mark.parametrize(
    ("client_final", "e"),
    [
        (b"", "invalid-encoding"),
        (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "invalid-encoding"),
        (b"c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "invalid-encoding"),
        (b"r=x,c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "invalid-encoding"),
        (b"c=b!ws,r=x,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "invalid-encoding"),
        (
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=short",
            "invalid-encoding",
        ),
        (
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
            "invalid-encoding",
        ),
        (
            b"c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "channel-bindings-dont-match",
        ),
        (
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "other-error",
        ),
        (RFC_CLIENT_FINAL + b",x=trailing", "invalid-encoding"),
    ],
)
def test_malformed_client_final(rfc_users: UserStore, client_final: bytes, e: str) -> None:
    server = scram_server(rfc_users, RFC_SERVER_NONCE)
    assert server.step(RFC_CLIENT_FIRST).challenge == RFC_SERVER_FIRST
    step = server.step(client_final)
    assert step.failed
    assert step.challenge == f"e={e}".encode()
    assert server.failed


def test_client_final_extensions_are_ignored_but_signed(rfc_users: UserStore) -> None:
    # An extension before the proof is part of AuthMessage: the RFC proof no longer fits.
    server = scram_server(rfc_users, RFC_SERVER_NONCE)
    server.step(RFC_CLIENT_FIRST)
    without, proof = RFC_CLIENT_FINAL.rsplit(b",p=", 1)
    step = server.step(without + b",x=1,p=" + proof)
    assert step.failed and step.challenge == b"e=invalid-proof"


@settings(max_examples=300, deadline=None)
@given(first=st.binary(max_size=80), final=st.binary(max_size=120))
def test_arbitrary_scram_tokens_never_raise(first: bytes, final: bytes) -> None:
    users = _FUZZ_USERS
    server = scram_server(users, "srvnonce")
    step = server.step(first)
    if step.failed:
        assert server.failed
        return
    step = server.step(final)
    assert step.failed and server.failed


@settings(max_examples=200, deadline=None)
@given(
    first=st.builds(
        lambda flag, user, nonce, ext: f"{flag},,n={user},r={nonce}{ext}".encode(),
        st.sampled_from(["n", "y", "p=x", "q"]),
        st.text(max_size=8),
        st.text(max_size=8),
        st.sampled_from(["", ",a=b", ",=", ",tokenauth=true", ",,"]),
    ),
    final=st.builds(
        lambda c, r, p: f"c={c},r={r},p={p}".encode(),
        st.sampled_from(["biws", "eSws", "", "!"]),
        st.text(max_size=40),
        st.text(max_size=50),
    ),
)
def test_structured_garbage_never_raises(first: bytes, final: bytes) -> None:
    server = scram_server(_FUZZ_USERS, "srvnonce")
    if not server.step(first).failed:
        assert server.step(final).failed


_FUZZ_USERS = UserStore({"user": ScramCredential.from_password("pencil", salt=RFC_SALT)})


# --- PLAIN -----------------------------------------------------------------------------


def test_plain_success(users: UserStore) -> None:
    server = plain_server(users)
    step = server.step(b"\x00alice\x00alice-secret")
    assert step.done and step.challenge == b"" and not step.failed
    assert server.complete and server.principal == "User:alice"


def test_plain_authzid_equal_to_authcid(users: UserStore) -> None:
    server = plain_server(users)
    assert server.step(b"alice\x00alice\x00alice-secret").done


def test_kafka_python_plain_client(users: UserStore) -> None:
    plain = pytest.importorskip("kafka.net.sasl.plain")
    mechanism = plain.SaslMechanismPlain(sasl_plain_username="bob", sasl_plain_password="pw")
    server = plain_server(users)
    step = server.step(mechanism.auth_bytes())
    mechanism.receive(step.challenge)
    assert mechanism.is_authenticated() and server.username == "bob"


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        (b"\x00alice\x00wrong", "Invalid username or password"),
        (b"\x00mallory\x00alice-secret", "Invalid username or password"),
        (b"bob\x00alice\x00alice-secret", "authorization id"),
        (b"\x00alice\x00", "password not specified"),
        (b"\x00\x00alice-secret", "username not specified"),
        (b"alice-secret", "expected authzid NUL authcid NUL password"),
        (b"\x00alice\x00alice-secret\x00", "expected authzid NUL authcid NUL password"),
        (b"", "expected authzid NUL authcid NUL password"),
        (b"\x00\xff\x00pw", "not UTF-8"),
    ],
)
def test_plain_failures(users: UserStore, token: bytes, detail: str) -> None:
    server = plain_server(users)
    step = server.step(token)
    assert step.failed and not step.done
    assert detail in (step.error or "")
    assert server.failed and server.principal is None
    with pytest.raises(SaslStateError):
        server.step(b"\x00alice\x00alice-secret")


def test_plain_unknown_user_and_wrong_password_read_the_same(users: UserStore) -> None:
    wrong = plain_server(users).step(b"\x00alice\x00nope")
    unknown = plain_server(users).step(b"\x00mallory\x00nope")
    assert wrong.error == unknown.error and wrong.challenge == unknown.challenge
    assert wrong.reason != unknown.reason  # but the broker's log tells them apart


@settings(max_examples=300, deadline=None)
@given(token=st.binary(max_size=60))
def test_arbitrary_plain_tokens_never_raise(token: bytes) -> None:
    server = plain_server(_FUZZ_USERS)
    step = server.step(token)
    assert step.done != step.failed


# --- negotiation -------------------------------------------------------------------------


def test_unsupported_mechanism_fails(users: UserStore) -> None:
    server = SaslServer(users, ["PLAIN"])
    assert not server.select("SCRAM-SHA-256")
    assert server.failed
    assert not SaslServer(users).select("GSSAPI")


def test_unknown_enabled_mechanism_is_a_configuration_error(users: UserStore) -> None:
    with pytest.raises(ValueError, match="GSSAPI"):
        SaslServer(users, ["PLAIN", "GSSAPI"])


def test_out_of_order_calls(users: UserStore) -> None:
    server = SaslServer(users)
    with pytest.raises(SaslStateError):
        server.step(b"\x00alice\x00alice-secret")
    assert server.select("PLAIN")
    with pytest.raises(SaslStateError):
        server.select("PLAIN")


def test_raw_tokens_after_handshake_v0(users: UserStore) -> None:
    server = SaslServer(users)
    assert server.select("PLAIN", raw_tokens=True)
    assert server.expects_raw_token
    assert server.step(b"\x00alice\x00alice-secret").done
    assert not server.expects_raw_token


# --- SCRAM-SHA-512 -----------------------------------------------------------------------


def _login_with_our_client(
    store: UserStore, mechanism: str, username: str, password: str
) -> tuple[SaslServer, SaslStep]:
    """A whole exchange between the transport's SCRAM client and the server."""
    from streamlog.transport.errors import AuthenticationError
    from streamlog.transport.kafka.sasl import ScramClient

    server = SaslServer(store)
    assert server.select(mechanism)
    client = ScramClient(mechanism, username, password)
    step = server.step(client.first())
    assert not step.failed
    step = server.step(client.respond(step.challenge) or b"")
    if step.done:
        assert client.respond(step.challenge) is None  # the server's signature checks out
    else:
        with pytest.raises(AuthenticationError):
            client.respond(step.challenge)
    return server, step


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_logins_with_the_transports_client(users: UserStore, mechanism: str) -> None:
    server, step = _login_with_our_client(users, mechanism, "a,b=c", "odd name")
    assert step.done and server.username == "a,b=c"
    _, wrong = _login_with_our_client(users, mechanism, "alice", "nope")
    assert wrong.failed and wrong.challenge == b"e=invalid-proof"
    assert wrong.error == (
        "Authentication failed during authentication due to invalid credentials with SASL "
        f"mechanism {mechanism} (e=invalid-proof)"
    )
    _, unknown = _login_with_our_client(users, mechanism, "mallory", "nope")
    assert (unknown.error, unknown.challenge) == (wrong.error, wrong.challenge)


def test_sha512_credentials_come_from_passwords_not_from_verifiers() -> None:
    from streamlog.broker.users import parse_users

    verifier = ScramCredential.from_password("pw-b").verifier()
    store = parse_users(f"a:pw-a\nb:{verifier}\n")
    a512 = store.scram("a", "SCRAM-SHA-512")
    assert a512 is not None and len(a512.stored_key) == 64 and a512.check_password(b"pw-a")
    assert store.scram("b", "SCRAM-SHA-512") is None
    assert store.scram("b", "SCRAM-SHA-256") is store["b"]
    _, step = _login_with_our_client(store, "SCRAM-SHA-512", "b", "pw-b")
    assert step.failed and step.challenge == b"e=invalid-proof"
    _, step = _login_with_our_client(store, "SCRAM-SHA-256", "b", "pw-b")
    assert step.done
