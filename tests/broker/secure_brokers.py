"""``streamlog broker`` processes that require SASL, TLS or both, for the client tests.

Fixtures (module-scoped; import them into a test module): ``pki`` (certificates made by
``openssl``, see ``tests/tlscerts.py``), ``sasl_broker`` (SASL_PLAINTEXT),
``sasl_ssl_broker`` (SASL_SSL) and ``mtls_broker`` (SSL requiring client certificates).
The users are ``USERS``; bob's password holds the characters SCRAM escapes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.broker.brokerproc import BrokerProcess
from tests.tlscerts import Pki, make_pki

__all__ = [
    "USERS",
    "mtls_broker",
    "pki",
    "sasl_broker",
    "sasl_ssl_broker",
    "start_broker",
    "stop_broker",
]

USERS = {"alice": "alice-secret", "bob": "p@ss,w=rd:x"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(str(tmp_path_factory.mktemp("pki")))


def start_broker(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str) -> BrokerProcess:
    base = tmp_path_factory.mktemp(name)
    users = base / "users.txt"
    users.write_text("".join(f"{u}:{p}\n" for u, p in USERS.items()))
    extra = [a.replace("USERS", str(users)) for a in args]
    return BrokerProcess(str(base / "data"), extra_args=tuple(extra)).start()


def stop_broker(proc: BrokerProcess) -> None:
    code = proc.stop()
    assert code == 0, f"broker exited with {code}:\n{proc.logs()}"


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = start_broker(tmp_path_factory, "sasl", "--users-file", "USERS")
    yield proc
    stop_broker(proc)


@pytest.fixture(scope="module")
def sasl_ssl_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[BrokerProcess]:
    proc = start_broker(
        tmp_path_factory,
        "sasl-ssl",
        "--users-file",
        "USERS",
        "--ssl-certfile",
        pki.server_cert,
        "--ssl-keyfile",
        pki.server_key,
    )
    yield proc
    stop_broker(proc)


@pytest.fixture(scope="module")
def mtls_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[BrokerProcess]:
    proc = start_broker(
        tmp_path_factory,
        "mtls",
        "--ssl-certfile",
        pki.server_cert,
        "--ssl-keyfile",
        pki.server_key,
        "--ssl-client-cafile",
        pki.ca,
    )
    yield proc
    stop_broker(proc)
