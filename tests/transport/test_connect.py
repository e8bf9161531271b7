"""``streamlog.connect(url)``: the started transport a program outside the app uses. A
``file://`` log a real ``streamlog worker`` process holds is reached through the worker's
Kafka listener; with no worker the directory is opened, whatever ``.listener`` a killed
worker left; a held directory without a listener address is ``BrokerUnavailableError``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

import streamlog
from streamlog.transport import BrokerUnavailableError, TopicPartition, open_transport
from streamlog.transport.connect import connect_noting_listener, listener_path
from tests.worker.workerproc import APPS, WorkerProcess

WORDCOUNT = os.path.join(APPS, "wordcount.py")
T = TypeVar("T")


async def send_and_read_counts(url: str, line: str | None) -> tuple[str | None, str, list[str]]:
    """Through ``connect_noting_listener(url)``: send ``line`` to ``words`` (unless None),
    then read ``counts`` until it holds a count for each word sent so far. Returns the
    listener used, the transport's module and the counts, sorted."""
    transport, listener = await connect_noting_listener(url)
    try:
        if line is not None:
            producer = transport.producer(client_id="connect-test")
            result = await producer.send("words", line.encode())
            await producer.flush()
            await result
            await producer.close()
        admin = transport.admin()
        info = await admin.describe_topic("counts")
        await admin.close()
        partitions = [TopicPartition("counts", p.partition) for p in info.partitions]
        consumer = transport.consumer(group_id=None)
        try:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            values: list[str] = []
            while len(values) < 3:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    values.extend((r.value or b"").decode() for r in batch)
        finally:
            await consumer.close()
        return listener, type(transport).__module__, sorted(values)
    finally:
        await transport.close()


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.mark.timeout(120)
def test_through_the_workers_listener_then_the_directory_itself(tmp_path):
    data_dir = str(tmp_path / "log")
    url = f"file://{data_dir}"
    worker = WorkerProcess(WORDCOUNT, url, str(tmp_path))
    try:
        worker.start()
        address = worker.listener()
        listener, module, counts = run(send_and_read_counts(url, "the cat the"))
        assert (listener, module) == (address, "streamlog.transport.kafka.transport")
        assert counts == ["cat=1", "the=1", "the=2"]
        assert worker.stop() == 0, worker.logs()
    finally:
        worker.kill()
    assert not os.path.exists(listener_path(data_dir))  # the worker removed it
    # a .listener left by a killed worker is not used while nobody holds the directory
    with open(listener_path(data_dir), "w") as f:
        f.write(f"{address}\n")
    listener, module, counts = run(send_and_read_counts(url, None))
    assert (listener, module) == (None, "streamlog.transport.embedded.transport")
    assert counts == ["cat=1", "the=1", "the=2"]


def test_a_held_directory_without_a_listener_is_unavailable(tmp_path):
    url = f"file://{tmp_path / 'log'}"

    async def main() -> str:
        holder = open_transport(url)  # this process holds the directory
        await holder.start()
        try:
            with pytest.raises(BrokerUnavailableError) as caught:
                await streamlog.connect(url)
            return str(caught.value)
        finally:
            await holder.close()

    assert str(tmp_path / "log") in run(main())


def test_memory_is_started_and_ready():
    async def main() -> list[str]:
        transport = await streamlog.connect("memory://")
        try:
            admin = transport.admin()
            await admin.create_topic("t", 2, {})
            names = await admin.list_topics()
            await admin.close()
            return list(names)
        finally:
            await transport.close()

    assert run(main()) == ["t"]


@pytest.mark.timeout(120)
def test_a_feeder_started_before_its_worker_waits_for_it(tmp_path, caplog):
    """``wait_for_worker``: the feeder starts first (as after ``streamlog worker ... &``),
    waits, and goes through the worker's listener once it serves, so the worker could
    take the directory; with no worker it opens the directory after the wait, saying so."""
    log_dir = tmp_path / "log"
    url = f"file://{log_dir}"
    worker = WorkerProcess(WORDCOUNT, url, str(tmp_path))

    async def feed() -> str:
        transport = await streamlog.connect(url, wait_for_worker=60)
        try:
            return type(transport).__module__
        finally:
            await transport.close()

    async def feeder_then_worker() -> str:
        task = asyncio.create_task(feed())
        await asyncio.sleep(1.0)  # the feeder is waiting: the directory is still free
        assert not task.done()
        await asyncio.to_thread(worker.start)
        return await task

    try:
        module = run(feeder_then_worker(), timeout=90)
        assert module.startswith("streamlog.transport.kafka"), module
        assert worker.process is not None and worker.process.poll() is None
    finally:
        assert worker.stop() == 0, worker.logs()

    async def no_worker() -> str:
        transport = await streamlog.connect(f"file://{tmp_path / 'alone'}", wait_for_worker=0.5)
        try:
            return type(transport).__module__
        finally:
            await transport.close()

    with caplog.at_level("WARNING", logger="streamlog.transport"):
        assert run(no_worker()).startswith("streamlog.transport.embedded")
    assert "no worker on" in caplog.text and "using the directory" in caplog.text
