from __future__ import annotations

import pytest

from .brokerproc import BrokerProcess


@pytest.fixture
def broker(tmp_path):
    """A fresh ``streamlog broker`` process per test, stopped (SIGTERM) afterwards."""
    proc = BrokerProcess(str(tmp_path / "data")).start()
    try:
        yield proc
    finally:
        code = proc.stop()
        assert code == 0, f"broker exited with {code}:\n{proc.logs()}"


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory):
    """One broker for a whole test module (tests use distinct topic names)."""
    proc = BrokerProcess(str(tmp_path_factory.mktemp("shared") / "data")).start()
    try:
        yield proc
    finally:
        code = proc.stop()
        assert code == 0, f"broker exited with {code}:\n{proc.logs()}"
