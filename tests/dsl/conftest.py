"""Fixtures for the streams core: the same tests over memory://, file:// and a real
``streamlog broker`` process (kafka://)."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from streamlog.transport.types import ConsumerRecord, TopicPartition
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


async def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``predicate`` every 10 ms; fail the test (with a clear message) after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


async def read_topic(
    app: Any, topic: str, count: int, timeout: float = 20.0
) -> list[ConsumerRecord]:
    """Every record of ``topic`` (through the app's own transport), waiting for ``count``."""
    transport = app.transport
    admin = transport.admin()
    try:
        info = await admin.describe_topic(topic)
    finally:
        await admin.close()
    consumer = transport.consumer()
    try:
        tps = [TopicPartition(topic, p.partition) for p in info.partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[ConsumerRecord] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(out) < count:
            if loop.time() > deadline:
                raise AssertionError(f"{topic}: {len(out)} of {count} records within {timeout} s")
            for records in (await consumer.getmany(timeout_ms=100)).values():
                out.extend(records)
        # anything beyond ``count`` that is already there
        for records in (await consumer.getmany(timeout_ms=50)).values():
            out.extend(records)
        return out
    finally:
        await consumer.close()


async def committed(app: Any, topic: str, group: str | None = None) -> dict[int, int | None]:
    """Committed offsets per partition of ``topic`` for ``group`` (default: the app's)."""
    transport = app.transport
    admin = transport.admin()
    try:
        info = await admin.describe_topic(topic)
    finally:
        await admin.close()
    consumer = transport.consumer(group_id=group or app.conf.id)
    try:
        return {
            p.partition: await consumer.committed(TopicPartition(topic, p.partition))
            for p in info.partitions
        }
    finally:
        await consumer.close()


def run(coro: Awaitable[Any], timeout: float = 60.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())
