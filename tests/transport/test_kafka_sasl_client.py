"""The client side of SASL, sans-IO: RFC 7677's SCRAM-SHA-256 vector, byte-for-byte
agreement with kafka-python's SCRAM client for SHA-256 and SHA-512 (same nonce, same
server messages), and refusal of whatever a server sends that it should not."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from streamlog.transport.errors import AuthenticationError
from streamlog.transport.kafka.sasl import PlainClient, ScramClient, sasl_client
from tests.broker.test_sasl_mechanisms import (
    RFC_CLIENT_FINAL,
    RFC_CLIENT_FIRST,
    RFC_SERVER_FINAL,
    RFC_SERVER_FIRST,
)

RFC_NONCE = "rOprNGfwEbeRWgbNEkqO"


def test_plain_token() -> None:
    client = sasl_client("PLAIN", "alice", "pä:ss")
    assert isinstance(client, PlainClient)
    assert client.first() == b"\x00alice\x00p\xc3\xa4:ss"
    assert client.respond(b"") is None


def test_rfc7677_vector() -> None:
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce=lambda: RFC_NONCE)
    assert client.first() == RFC_CLIENT_FIRST
    assert client.respond(RFC_SERVER_FIRST) == RFC_CLIENT_FINAL
    assert client.respond(RFC_SERVER_FINAL) is None


def test_a_wrong_server_signature_is_refused() -> None:
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce=lambda: RFC_NONCE)
    client.first()
    client.respond(RFC_SERVER_FIRST)
    forged = b"v=" + base64.b64encode(bytes(32))
    with pytest.raises(AuthenticationError, match="server's signature is wrong"):
        client.respond(forged)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("user", ["alice", "a,b=c"])
def test_same_bytes_as_kafka_pythons_scram_client(mechanism: str, user: str) -> None:
    scram = pytest.importorskip("kafka.net.sasl.scram")
    theirs = scram.ScramClient(user, "pass,w=ord é", mechanism)
    ours = ScramClient(mechanism, user, "pass,w=ord é", nonce=lambda: theirs.nonce.decode())
    first = ours.first()
    # kafka-python does not escape "," and "=" in names (RFC 5802 says to); compare
    # the message for a plain name, and the escaping for the other
    if user == "alice":
        assert first == theirs.first_message()
    else:
        assert first == b"n,,n=a=2Cb=3Dc,r=" + theirs.nonce
        theirs.first_message()
    server_nonce = theirs.nonce.decode() + "SERVERnonce"
    salt = b"0123456789abcdef"
    server_first = f"r={server_nonce},s={base64.b64encode(salt).decode()},i=4096".encode()
    final = ours.respond(server_first)
    theirs.process_server_first_message(server_first)
    if user == "alice":
        assert final == theirs.final_message()
    # the server side, from RFC 5802 with the mechanism's hash
    name = "sha256" if mechanism == "SCRAM-SHA-256" else "sha512"
    salted = hashlib.pbkdf2_hmac(name, "pass,w=ord é".encode(), salt, 4096)
    bare = first[3:]
    assert final is not None
    without_proof = final.rsplit(b",p=", 1)[0]
    auth = bare + b"," + server_first + b"," + without_proof
    client_key = hmac.digest(salted, b"Client Key", name)
    signature = hmac.digest(hashlib.new(name, client_key).digest(), auth, name)
    proof = base64.b64decode(final.rsplit(b",p=", 1)[1])
    assert bytes(a ^ b for a, b in zip(proof, signature, strict=True)) == client_key
    server_signature = hmac.digest(hmac.digest(salted, b"Server Key", name), auth, name)
    assert ours.respond(b"v=" + base64.b64encode(server_signature)) is None


@pytest.mark.parametrize(
    ("server_first", "message"),
    [
        (b"r=OTHERnonce,s=MDEyMw==,i=4096", "does not extend the client's"),
        (b"r=" + RFC_NONCE.encode() + b",s=MDEyMw==,i=4096", "does not extend the client's"),
        (b"r=" + RFC_NONCE.encode() + b"x,s=MDEyMw==,i=1000000", "1000000 iterations"),
        (b"r=" + RFC_NONCE.encode() + b"x,s=MDEyMw==,i=1024", "1024 iterations"),
        (b"r=" + RFC_NONCE.encode() + b"x,s=!!,i=4096", "malformed salt"),
        (b"r=" + RFC_NONCE.encode() + b"x,s=,i=4096", "empty salt"),
        (b"m=ext,r=" + RFC_NONCE.encode() + b"x,s=MDEyMw==,i=4096", "extension"),
        (b"e=unknown-user", "refused the first message: unknown-user"),
        (b"garbage", "malformed server-first"),
        (b"\xff\xfe", "not ASCII"),
    ],
)
def test_bad_server_first_messages_are_refused(server_first: bytes, message: str) -> None:
    client = ScramClient("SCRAM-SHA-512", "user", "pencil", nonce=lambda: RFC_NONCE)
    client.first()
    with pytest.raises(AuthenticationError, match=message) as info:
        client.respond(server_first)
    assert "SCRAM-SHA-512" in str(info.value)


def test_a_server_final_error_is_reported() -> None:
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce=lambda: RFC_NONCE)
    client.first()
    client.respond(RFC_SERVER_FIRST)
    with pytest.raises(AuthenticationError, match="refused the login: invalid-proof"):
        client.respond(b"e=invalid-proof")
