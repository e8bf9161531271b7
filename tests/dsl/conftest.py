"""Fixtures for the streams core: the same tests over memory://, file:// and a real
``streamlog broker`` process (kafka://)."""

from __future__ import annotations

import itertools
import re

import pytest

from tests.broker.brokerproc import BrokerProcess

TRANSPORTS = ("memory", "file", "kafka")
_ids = itertools.count()


@pytest.fixture(scope="session")
def dsl_broker(tmp_path_factory):
    """One broker process for the streams tests (distinct app ids and topics per test)."""
    proc = BrokerProcess(
        str(tmp_path_factory.mktemp("dsl-broker") / "data"),
        ["--group-initial-rebalance-delay-ms", "0"],
    ).start()
    try:
        yield proc
    finally:
        code = proc.stop()
        assert code == 0, f"broker exited with {code}:\n{proc.logs()}"


@pytest.fixture(params=TRANSPORTS)
def broker_url(request, tmp_path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "file":
        return f"file://{tmp_path / 'log'}"
    proc = request.getfixturevalue("dsl_broker")
    return f"kafka://{proc.bootstrap}"


@pytest.fixture(params=("file", "kafka"))
def durable_broker_url(request, tmp_path) -> str:
    """The transports whose log outlives the app (a restart finds its offsets and tables)."""
    if request.param == "file":
        return f"file://{tmp_path / 'log'}"
    return f"kafka://{request.getfixturevalue('dsl_broker').bootstrap}"


@pytest.fixture
def app_id(request) -> str:
    """A fresh app id per test (topics and groups never collide on the shared broker)."""
    name = re.sub(r"[^A-Za-z0-9.-]+", "-", request.node.name.replace("_", "-")).strip("-")
    return f"t{next(_ids)}-{name}"[:60]
