"""The client tools log in with SASL and speak TLS, from options or ``STREAMLOG_*``
variables, against real ``streamlog broker`` processes; refusals are one clear line."""

from __future__ import annotations

import pytest

from tests.broker.brokerproc import BrokerProcess
from tests.broker.secure_brokers import (
    USERS,
    pki,
    sasl_broker,
    sasl_ssl_broker,
    start_broker,
    stop_broker,
)
from tests.cli.test_tools_harness import streamlog
from tests.tlscerts import HAVE_OPENSSL, Pki

__all__ = ["pki", "sasl_broker", "sasl_ssl_broker"]  # fixtures, re-exported for pytest

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not HAVE_OPENSSL, reason="openssl is not installed"),
]

COMMANDS = [
    ("topics", "list"),
    ("topics", "create", "t", "--partitions", "2"),
    ("topics", "describe", "t"),
    ("groups", "list"),
    ("produce", "t"),
    ("consume", "t"),
]


def _login(mechanism: str, password: str) -> list[str]:
    return ["--sasl-mechanism", mechanism, "--sasl-username", "alice", "--sasl-password", password]


def test_topics_list_without_a_login_says_the_broker_may_require_one(
    sasl_broker: BrokerProcess,
) -> None:
    out = streamlog("topics", "list", broker=f"kafka://{sasl_broker.bootstrap}")
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1, out.stderr
    assert "a broker that requires SASL closes connections that do not log in" in out.stderr
    assert "--sasl-mechanism" in out.stderr


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_a_wrong_password_is_one_line_naming_the_mechanism(
    sasl_broker: BrokerProcess, args: tuple[str, ...], mechanism: str
) -> None:
    out = streamlog(
        *args, *_login(mechanism, "wrong"), broker=f"kafka://{sasl_broker.bootstrap}", input="x\n"
    )
    assert (out.returncode, out.stdout) == (1, ""), out
    assert out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("Error: ")
    assert f"SASL {mechanism} login as 'alice' failed: Authentication failed" in out.stderr
    assert "closed by the broker" not in out.stderr


def test_tools_round_trip_over_sasl_ssl_from_options(
    sasl_ssl_broker: BrokerProcess, pki: Pki
) -> None:
    url = f"kafka+ssl://{sasl_ssl_broker.bootstrap}"
    login = [*_login("SCRAM-SHA-256", USERS["alice"]), "--ssl-cafile", pki.ca]
    out = streamlog("topics", "create", "cli-tls", *login, broker=url)
    assert (out.returncode, out.stdout) == (0, "Created topic cli-tls.\n"), out.stderr
    out = streamlog("produce", "cli-tls", *login, broker=url, input="a\nb\nc\n")
    assert out.returncode == 0, out.stderr
    out = streamlog("consume", "cli-tls", "--from-beginning", "--max", "3", *login, broker=url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["a", "b", "c"]


def test_tools_take_the_settings_from_the_environment(
    sasl_ssl_broker: BrokerProcess, pki: Pki
) -> None:
    env = {
        "STREAMLOG_BROKER": f"kafka+ssl://{sasl_ssl_broker.bootstrap}",
        "STREAMLOG_SASL_MECHANISM": "plain",
        "STREAMLOG_SASL_USERNAME": "bob",
        "STREAMLOG_SASL_PASSWORD": USERS["bob"],
        "STREAMLOG_SSL_CAFILE": pki.ca,
    }
    out = streamlog("topics", "create", "cli-env", env=env)
    assert (out.returncode, out.stdout) == (0, "Created topic cli-env.\n"), out.stderr
    out = streamlog("topics", "list", env=env)
    assert out.returncode == 0, out.stderr
    assert "cli-env" in out.stdout.split()
    # an option given wins over its variable
    out = streamlog("topics", "list", "--sasl-password", "wrong", env=env)
    assert out.returncode == 1
    assert "SASL PLAIN login as 'bob' failed" in out.stderr


def test_tls_options_with_a_plaintext_url_are_refused(sasl_broker: BrokerProcess) -> None:
    out = streamlog(
        "topics", "list", "--ssl-cafile", "ca.pem", broker=f"kafka://{sasl_broker.bootstrap}"
    )
    assert out.returncode == 1
    assert "use kafka+ssl://HOST:PORT" in out.stderr


def test_the_host_name_check_can_be_turned_off_by_option_or_variable(
    tmp_path_factory: pytest.TempPathFactory, pki: Pki
) -> None:
    proc = start_broker(
        tmp_path_factory,
        "cli-other-host",
        "--ssl-certfile",
        pki.other_host_cert,
        "--ssl-keyfile",
        pki.other_host_key,
    )
    try:
        url = f"kafka+ssl://{proc.bootstrap}"
        refused = streamlog("topics", "list", "--ssl-cafile", pki.ca, broker=url)
        assert refused.returncode == 1
        assert "the broker's TLS certificate is not accepted (IP address mismatch" in refused.stderr
        by_option = streamlog(
            "topics", "create", "no-check", "--ssl-cafile", pki.ca, "--no-ssl-check-hostname",
            broker=url,
        )  # fmt: skip
        assert by_option.returncode == 0, by_option.stderr
        env = {"STREAMLOG_SSL_CAFILE": pki.ca, "STREAMLOG_SSL_CHECK_HOSTNAME": "false"}
        by_variable = streamlog("topics", "list", broker=url, env=env)
        assert (by_variable.returncode, by_variable.stdout) == (0, "no-check\n"), by_variable
    finally:
        stop_broker(proc)
