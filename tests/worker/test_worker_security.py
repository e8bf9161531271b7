"""``streamlog worker`` on a SASL_SSL ``streamlog broker``: the word count app, unchanged,
with the login and the CA given as worker options and variables; a wrong password stops
the worker at start with the broker's refusal in its log."""

from __future__ import annotations

import os

import pytest

from streamlog.transport.security import ClientSecurity
from tests.broker.brokerproc import BrokerProcess
from tests.broker.secure_brokers import USERS, pki, sasl_ssl_broker
from tests.tlscerts import HAVE_OPENSSL, Pki

from .workerproc import APPS, WorkerProcess, produce, read_values, run_cli

__all__ = ["pki", "sasl_ssl_broker"]  # fixtures, re-exported for pytest

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not HAVE_OPENSSL, reason="openssl is not installed"),
]

WORDCOUNT = os.path.join(APPS, "wordcount.py")


def test_wordcount_runs_on_a_sasl_ssl_broker(
    sasl_ssl_broker: BrokerProcess, pki: Pki, tmp_path
) -> None:
    url = f"kafka+ssl://{sasl_ssl_broker.bootstrap}"
    options = ("--sasl-mechanism", "SCRAM-SHA-256", "--sasl-username", "alice")
    options += ("--ssl-cafile", pki.ca)
    secret = {"STREAMLOG_SASL_PASSWORD": USERS["alice"]}
    worker = WorkerProcess(WORDCOUNT, url, str(tmp_path), extra_args=options, env=secret)
    try:
        worker.start()
        out = run_cli("produce", "words", "--broker", url, *options, env=secret, input="a b a\n")
        assert out.returncode == 0, out.stderr
        out = run_cli(
            "consume", "counts", "--from-beginning", "--max", "3", "--timeout-ms", "20000",
            "--broker", url, *options, env=secret,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert sorted(out.stdout.splitlines()) == ["a=1", "a=2", "b=1"]
        assert worker.stop() == 0, worker.logs()
    finally:
        worker.kill()


def test_a_worker_with_a_wrong_password_stops_with_the_brokers_refusal(
    sasl_ssl_broker: BrokerProcess, pki: Pki, tmp_path
) -> None:
    url = f"kafka+ssl://{sasl_ssl_broker.bootstrap}"
    options = ("--sasl-mechanism", "PLAIN", "--sasl-username", "alice", "--ssl-cafile", pki.ca)
    env = {"STREAMLOG_SASL_PASSWORD": "wrong"}
    worker = WorkerProcess(WORDCOUNT, url, str(tmp_path), extra_args=options, env=env)
    try:
        worker.start(ready=None)
        assert worker.wait(60) == 1
    finally:
        worker.kill()
    logs = worker.logs()
    assert "SASL PLAIN login as 'alice' failed: Authentication failed" in logs
    assert "wrong" not in logs.replace("--sasl", "")


FAUST_CREDENTIALS = os.path.join(APPS, "faust_credentials.py")


def _faust_way(broker: BrokerProcess, pki: Pki, password: str) -> dict[str, str]:
    return {
        "CREDS_BROKER": f"kafka://{broker.bootstrap}",  # TLS from the credentials' context
        "CREDS_CAFILE": pki.ca,
        "CREDS_USER": "bob",
        "CREDS_PASSWORD": password,
        "CREDS_MECHANISM": "SCRAM-SHA-512",
    }


def test_a_faust_program_logs_in_with_broker_credentials(
    sasl_ssl_broker: BrokerProcess, pki: Pki, tmp_path
) -> None:
    """``import faust`` and ``broker_credentials=faust.SASLCredentials(..., ssl_context=)``,
    run unchanged: the worker logs in (SCRAM-SHA-512 over TLS) and processes records."""
    env = _faust_way(sasl_ssl_broker, pki, USERS["bob"])
    worker = WorkerProcess(FAUST_CREDENTIALS, None, str(tmp_path), env=env)
    url = f"kafka+ssl://{sasl_ssl_broker.bootstrap}"
    alice = ClientSecurity(
        sasl_mechanism="PLAIN",
        sasl_username="alice",
        sasl_password=USERS["alice"],
        ssl_cafile=pki.ca,
    )
    try:
        worker.start()
        produce(url, "faust-words", ["x y x"], security=alice)
        assert read_values(url, "faust-counts", 3, security=alice) == ["x=1", "x=2", "y=1"]
        assert worker.stop() == 0, worker.logs()
    finally:
        worker.kill()


def test_faust_credentials_with_a_wrong_password_stop_the_worker_clearly(
    sasl_ssl_broker: BrokerProcess, pki: Pki, tmp_path
) -> None:
    env = _faust_way(sasl_ssl_broker, pki, "wrong")
    worker = WorkerProcess(FAUST_CREDENTIALS, None, str(tmp_path), env=env)
    try:
        worker.start(ready=None)
        assert worker.wait(60) == 1
    finally:
        worker.kill()
    assert "SASL SCRAM-SHA-512 login as 'bob' failed" in worker.logs()
