"""``topic_replication_factor`` (Faust's setting) reaches the CreateTopics requests of the
topics an app creates on a ``kafka://`` broker: its sources, outputs and changelogs.
``streamlog broker`` is one node, so it creates topics with factor 1 and refuses a larger
one, naming the factor it was asked for; the worker stops at start with that refusal."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from streamlog.transport import open_transport
from tests.broker.brokerproc import BrokerProcess

from .workerproc import APPS, WorkerProcess, run_cli

pytestmark = pytest.mark.timeout(120)

REPLICATED = os.path.join(APPS, "replicated.py")


async def _replicas(url: str, topics: tuple[str, ...]) -> dict[str, list[int]]:
    """Per topic, the number of replicas of each partition, as the broker describes it."""
    transport = open_transport(url)
    await transport.start()
    try:
        admin = transport.admin()
        try:
            infos = [await admin.describe_topic(topic) for topic in topics]
        finally:
            await admin.close()
    finally:
        await transport.close()
    return {info.name: [len(p.replicas) for p in info.partitions] for info in infos}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(str(tmp_path_factory.mktemp("rf-broker") / "data")).start()
    try:
        yield proc
    finally:
        assert proc.stop() == 0, proc.logs()


def test_a_factor_larger_than_the_cluster_stops_the_worker_clearly(
    broker: BrokerProcess, tmp_path
) -> None:
    url = f"kafka://{broker.bootstrap}"
    worker = WorkerProcess(REPLICATED, url, str(tmp_path), env={"REPLICATION_FACTOR": "3"})
    try:
        worker.start(ready=None)
        assert worker.wait(60) == 1
    finally:
        worker.kill()
    logs = worker.logs()
    assert "replication factor 3 is larger than the 1 broker available" in logs, logs
    assert "topic 'items'" in logs
    out = run_cli("topics", "list", "--broker", url)
    assert out.returncode == 0 and "items" not in out.stdout.split(), out


def test_factor_one_creates_every_topic_with_one_replica(broker: BrokerProcess, tmp_path) -> None:
    url = f"kafka://{broker.bootstrap}"
    worker = WorkerProcess(REPLICATED, url, str(tmp_path), env={"REPLICATION_FACTOR": "1"})
    try:
        worker.start()
        logs = worker.logs()
        topics = ("items", "out", "replicated-seen-changelog")
        for topic in topics:
            assert f"created topic {topic} (2 partitions, replication factor 1)" in logs, logs
        assert asyncio.run(asyncio.wait_for(_replicas(url, topics), 30)) == {
            topic: [1, 1] for topic in topics
        }
        assert worker.stop() == 0, worker.logs()
    finally:
        worker.kill()
