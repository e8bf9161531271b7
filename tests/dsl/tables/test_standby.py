"""Standby replicas (``table_standby_replicas``), two workers in one process against a real
``streamlog broker``: each keeps the other's table partitions warm by reading their
changelogs, and when one leaves, the other's recovery of the partitions it takes over
replays only what was written since its standby's last read, not the whole changelog."""

from __future__ import annotations

import asyncio

import pytest

import streamlog
from streamlog.transport.types import TopicPartition
from tests.dsl.helpers import run, wait_for

PARTITIONS = 4
PADDING = 5_000  # changelog records per partition: what a cold takeover replays


def counting_app(app_id: str, url: str, replicas: int) -> tuple[streamlog.App, object, object]:
    app = streamlog.App(
        app_id,
        broker=url,
        topic_partitions=PARTITIONS,
        store="memory://",  # nothing on disk: only a standby can make a takeover warm
        broker_commit_interval=0.1,
        table_standby_replicas=replicas,
        table_standby_interval=0.1,
    )
    inputs = app.topic(f"{app_id}-inputs", key_type=str, value_type=str, value_serializer="raw")
    counts = app.Table("counts", default=int, key_type=str, value_type=int, key_serializer="raw")

    @app.agent(inputs)
    async def count(stream):
        async for key, _ in stream.items():
            counts[key] += 1

    return app, inputs, counts


async def _pad_changelog(app: streamlog.App) -> None:
    name = app.tables["counts"].changelog_topic.name
    producer = app.transport.producer(linger_ms=20)
    try:
        for partition in range(PARTITIONS):
            pending = await producer.send_many(
                name,
                [b"0"] * PADDING,
                keys=[b"pad-%d-%d" % (partition, i) for i in range(PADDING)],
                partition=partition,
            )
            await producer.flush()
            await pending
    finally:
        await producer.close()


def _numbers(app: streamlog.App) -> set[int]:
    return {tp.partition for tp in app.conductor.assignment()}


async def _takeover(app_id: str, url: str, replicas: int) -> dict[str, object]:
    a, inputs, counts = counting_app(app_id, url, replicas)
    b, _, _ = counting_app(app_id, url, replicas)
    async with a:
        await _pad_changelog(a)
        await b.start()
        await wait_for(lambda: _numbers(a) and _numbers(b), 30)
        await wait_for(lambda: not a.rebalancing and not b.rebalancing, 30)
        for i in range(200):  # traffic on every partition after the padding
            await inputs.send(key=f"id-{i:03d}", value="x")
        await wait_for(lambda: sum(v for k, v in counts.items() if k.startswith("id-")) > 0, 30)
        table_a = a.tables["counts"]
        changelog = table_a.changelog_topic.name
        if replicas:
            # a keeps b's partitions warm: its copies reach the changelogs' ends
            await wait_for(lambda: a.standbys.numbers == frozenset(_numbers(b)), 30)
            consumer = a.transport.consumer(client_id="probe")
            try:

                async def warm() -> bool:
                    tps = [TopicPartition(changelog, n) for n in _numbers(b)]
                    ends = await consumer.end_offsets(tps)
                    return all(
                        table_a.standby_partition(tp.partition).changelog_offset() == end - 1
                        for tp, end in ends.items()
                    )

                deadline = asyncio.get_running_loop().time() + 30
                while not await warm():
                    assert asyncio.get_running_loop().time() < deadline, "standbys never caught up"
                    await asyncio.sleep(0.1)
            finally:
                await consumer.close()
            # and says so on /metrics: caught up (0 behind at the last read), and what
            # it applied
            from prometheus_client.core import Metric

            from streamlog.dsl.app.web.metrics import AppCollector

            families: dict[str, Metric] = {m.name: m for m in AppCollector(a).collect()}
            lag = {
                int(s.labels["partition"]): s.value
                for s in families["streamlog_standby_lag"].samples
            }
            assert lag == {n: 0 for n in _numbers(b)}
            [applied] = families["streamlog_standby_records"].samples
            assert applied.value == a.standbys.records_applied >= len(_numbers(b)) * PADDING
        moved = _numbers(b)
        before = table_a.recovered_records
        standby_before = a.standbys.records_applied
        await b.stop()  # b leaves: a takes its partitions over
        await wait_for(lambda: _numbers(a) == set(range(PARTITIONS)) and not a.rebalancing, 30)
        for i in range(200):
            await inputs.send(key=f"id-{i:03d}", value="x")
        await wait_for(lambda: sum(v for k, v in counts.items() if k.startswith("id-")) >= 400, 30)
        return {
            "moved": moved,
            "replayed": table_a.recovered_records - before,
            "standby_applied": standby_before,
            "counts": {k: v for k, v in counts.items() if k.startswith("id-")},
            # padded keys of the partitions that moved (the changelog was padded after a
            # had recovered its own, so only those that moved have theirs in the table)
            "padding": sum(
                1 for k, _ in counts.items() if k.startswith("pad-") and int(k[4]) in moved
            ),
            "standby_after": a.standbys.numbers,
        }


@pytest.mark.parametrize("replicas", [1, 0])
def test_a_takeover_replays_only_the_tail_with_a_standby(dsl_broker, app_id, replicas):
    url = f"kafka://{dsl_broker.bootstrap}"
    result = run(_takeover(app_id, url, replicas), timeout=120)
    moved = result["moved"]
    assert moved and len(moved) < PARTITIONS  # b held some partitions, then gave them up
    # the table is whole either way: every padded key that moved, both rounds of inputs
    assert result["padding"] == len(moved) * PADDING, result
    assert result["counts"] == {f"id-{i:03d}": 2 for i in range(200)}
    if replicas:
        # the standby had read b's padding; taking over replayed only b's own writes
        assert result["standby_applied"] >= len(moved) * PADDING
        assert result["replayed"] < 200
        assert result["standby_after"] == frozenset()  # alone: nobody to be standby for
    else:
        assert result["standby_applied"] == 0
        assert result["replayed"] >= len(moved) * PADDING  # the whole changelog, cold
