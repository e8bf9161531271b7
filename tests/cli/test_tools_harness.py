"""What the ``test_tools_*`` suites share: the real ``streamlog`` executable run as a
subprocess (bounded by a timeout), and the two kinds of broker URL every tool is checked
against: a real ``streamlog broker`` over the Kafka protocol, and ``file://`` (the
embedded transport). No tests here."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from streamlog.transport.url import BROKER_ENV
from tests.broker.brokerproc import STREAMLOG, BrokerProcess

__all__ = ["streamlog", "ok", "kafka_broker", "broker_url", "topic", "STREAMLOG"]

TIMEOUT = 60  # seconds, for any one command


def streamlog(
    *args: str,
    broker: str | None = None,
    input: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``streamlog ARGS [--broker URL]``; ``$STREAMLOG_BROKER`` only if ``env`` sets it."""
    environ = {k: v for k, v in os.environ.items() if k != BROKER_ENV}
    environ.update(env or {})
    command = [STREAMLOG, *args] + (["--broker", broker] if broker is not None else [])
    return subprocess.run(
        command,
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        text=True,
        env=environ,
        timeout=timeout,
    )


def ok(*args: str, broker: str | None = None, input: str | None = None) -> list[str]:
    """The stdout lines of a command that must succeed (and write nothing to stderr)."""
    out = streamlog(*args, broker=broker, input=input)
    assert out.returncode == 0, f"{args}: exit {out.returncode}\n{out.stderr}"
    assert out.stderr == "", out.stderr
    return out.stdout.splitlines()


@pytest.fixture(scope="module")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One ``streamlog broker`` per test module; groups form without the initial delay."""
    data_dir = str(tmp_path_factory.mktemp("broker") / "data")
    broker = BrokerProcess(data_dir, extra_args=("--group-initial-rebalance-delay-ms", "0"))
    broker.start()
    try:
        yield broker
    finally:
        code = broker.stop()
    assert code == 0, broker.logs()


@pytest.fixture(params=["kafka", "file"])
def broker_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    """Each tool runs against a real broker and against the embedded ``file://`` log."""
    if request.param == "kafka":
        broker: BrokerProcess = request.getfixturevalue("kafka_broker")
        return f"kafka://{broker.bootstrap}"
    return f"file://{os.path.join(tmp_path, 'log')}"


@pytest.fixture
def topic() -> str:
    """A fresh topic name (tests of a module share one broker)."""
    return f"t-{uuid.uuid4().hex[:10]}"
