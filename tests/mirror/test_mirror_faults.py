"""A continuous ``streamlog mirror`` between two real ``streamlog broker`` processes while
each of them is restarted under it: every source record reaches the target exactly once,
in order, and the mirror keeps running (the outages are shorter than its clients'
delivery timeout). The kill -9 of the mirror itself is in test_mirror_clusters.py."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time

import pytest

from streamlog.transport import open_transport
from streamlog.transport.types import TopicPartition
from tests.broker.brokerproc import BrokerProcess
from tests.cli.test_tools_harness import STREAMLOG

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

PARTITIONS = 3


async def produce(url: str, start: int, n: int) -> None:
    transport = open_transport(url)
    await transport.start()
    try:
        producer = transport.producer()
        for i in range(start, start + n):
            await producer.send("events", b"event-%d" % i, key=b"k%d" % (i % 97))
        await producer.flush()
        await producer.close()
    finally:
        await transport.close()


async def read(url: str) -> dict[int, list[bytes]]:
    transport = open_transport(url)
    await transport.start()
    try:
        tps = [TopicPartition("events", p) for p in range(PARTITIONS)]
        consumer = transport.consumer()
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for tp, records in (await consumer.getmany(timeout_ms=300)).items():
                out[tp.partition] += [r.value or b"" for r in records]
        await consumer.close()
        return out
    finally:
        await transport.close()


def count(url: str) -> int:
    try:
        return sum(len(v) for v in asyncio.run(asyncio.wait_for(read(url), 30)).values())
    except Exception:  # the topic is not there yet, or the broker is restarting
        return -1


def wait_for(what, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:  # a bound on the wait, not a speed check
            pytest.fail(f"not reached within {timeout} s")
        time.sleep(0.2)


def test_a_continuous_mirror_rides_out_restarts_of_both_brokers(tmp_path):
    source = BrokerProcess(str(tmp_path / "source")).start()
    target = BrokerProcess(str(tmp_path / "target")).start()
    mirror = None
    try:
        asyncio.run(_create(f"kafka://{source.bootstrap}"))
        asyncio.run(produce(f"kafka://{source.bootstrap}", 0, 20_000))
        log = open(tmp_path / "mirror.log", "wb")
        mirror = subprocess.Popen(
            [STREAMLOG, "mirror", "--from", f"kafka://{source.bootstrap}",
             "--to", f"kafka://{target.bootstrap}", "--topics", "events",
             "--checkpoint-interval", "0.2"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        wait_for(lambda: count(f"kafka://{target.bootstrap}") >= 20_000)
        assert target.stop() == 0
        asyncio.run(produce(f"kafka://{source.bootstrap}", 20_000, 10_000))
        target.start()
        wait_for(lambda: count(f"kafka://{target.bootstrap}") >= 30_000)
        assert source.stop() == 0
        source.start()
        asyncio.run(produce(f"kafka://{source.bootstrap}", 30_000, 10_000))
        wait_for(lambda: count(f"kafka://{target.bootstrap}") >= 40_000)
        assert mirror.poll() is None, (tmp_path / "mirror.log").read_text()
        mirror.send_signal(signal.SIGINT)
        assert mirror.wait(30) == 0, (tmp_path / "mirror.log").read_text()
        copied = asyncio.run(read(f"kafka://{target.bootstrap}"))
        original = asyncio.run(read(f"kafka://{source.bootstrap}"))
        assert copied == original
        assert sum(len(v) for v in copied.values()) == 40_000
        assert len({value for values in copied.values() for value in values}) == 40_000
        summary = (tmp_path / "mirror.log").read_text()
        assert "mirrored " in summary and "events  0" in summary
        # the target's outage was noticed and ridden out by a fresh session: as an outage,
        # or as the lease's group forgetting the mirror (the source's consumer may
        # reconnect without the session noticing)
        assert (
            "resuming from the checkpoints on the target" in summary
            or "waiting to hold it again" in summary
        ), summary
    finally:
        if mirror is not None and mirror.poll() is None:
            mirror.kill()
        source.stop()
        target.stop()


async def _create(url: str) -> None:
    transport = open_transport(url)
    await transport.start()
    try:
        await transport.admin().create_topic("events", PARTITIONS)
    finally:
        await transport.close()
