"""Exactly-once in one process, on every transport (memory://, file://, a real
``streamlog broker``): each commit is one transaction, read_committed readers see each
input's effect once, and a commit the group refuses (a zombie's: a generation the group
has moved past) is aborted and its events processed again, once, with the tables as
committed; two workers in a rebalance included."""

from __future__ import annotations

import asyncio
import collections
import json
from typing import Any

import streamlog
from streamlog.dsl.app.web.metrics import AppCollector
from streamlog.state.errors import ExactlyOnceError
from streamlog.transport.types import ConsumerGroupMetadata, TopicPartition
from tests.dsl.helpers import run, wait_for

PARTITIONS = 2
INPUTS = 200
KEYS = 5


def counting_app(app_id: str, url: str, datadir: str, **settings: Any) -> streamlog.App:
    """Counts inputs per key in a table and sends each running count to ``<id>-counts``."""
    app = streamlog.App(
        app_id,
        broker=url,
        datadir=datadir,
        processing_guarantee="exactly_once",
        broker_commit_interval=0.1,
        topic_partitions=PARTITIONS,
        store="memory://",
        **settings,
    )
    inputs = app.topic(f"{app_id}-in", key_type=str, value_type=str, value_serializer="raw")
    output = app.topic(f"{app_id}-counts", key_type=str, value_type=dict)
    counts = app.Table("counts", default=int, key_type=str, value_type=int)

    @app.agent(inputs)
    async def count(stream: Any) -> None:
        async for key, value in stream.items():
            counts[key] += 1
            await output.send(key=key, value={"key": key, "count": counts[key], "id": value})

    return app


async def read_outputs(app: streamlog.App, isolation: str) -> list[dict[str, Any]]:
    topic = f"{app.conf.id}-counts"
    consumer = app.transport.consumer(isolation_level=isolation)
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[dict[str, Any]] = []
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            for records in (await consumer.getmany(timeout_ms=50)).values():
                found.extend(json.loads(r.value or b"null") for r in records)
        return found
    finally:
        await consumer.close()


async def send_inputs(app: streamlog.App, start: int, stop: int) -> None:
    topic = app.topic(f"{app.conf.id}-in", key_type=str, value_type=str, value_serializer="raw")
    for i in range(start, stop):
        await topic.send(key=f"k{i % KEYS}", value=str(i))


def check_each_count_once(outputs: list[dict[str, Any]], inputs: int) -> None:
    by_key: dict[str, list[int]] = collections.defaultdict(list)
    for output in outputs:
        by_key[output["key"]].append(output["count"])
    assert sorted(by_key) == [f"k{k}" for k in range(KEYS)]
    for key, counts in by_key.items():
        assert counts == list(range(1, inputs // KEYS + 1)), key


def arm_stale_generation(app: streamlog.App) -> list[ConsumerGroupMetadata]:
    """The next commit with offsets hands the group a generation it does not have (a
    zombie's), once; returns the list the stale metadata is recorded in."""
    sends = app._transactional  # noqa: SLF001 - fault injection at the one seam there is
    assert sends is not None
    real = sends._group  # noqa: SLF001
    used: list[ConsumerGroupMetadata] = []

    def stale_once() -> ConsumerGroupMetadata | None:
        metadata = real()
        if metadata is None or used:
            return metadata
        used.append(metadata._replace(generation_id=metadata.generation_id + 100))
        return used[0]

    sends._group = stale_once  # noqa: SLF001
    return used


def test_a_refused_commit_is_aborted_and_redone_once(broker_url, app_id, tmp_path):
    app = counting_app(app_id, broker_url, str(tmp_path / "data"))

    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
        async with app:
            stale = arm_stale_generation(app)
            await send_inputs(app, 0, INPUTS)
            await wait_for(lambda: bool(stale), 20)
            await wait_for(lambda: app._transactional.transactions_committed > 0, 20)  # noqa: SLF001
            outputs: list[dict[str, Any]] = []

            async def all_committed() -> bool:
                outputs[:] = await read_outputs(app, "read_committed")
                return len(outputs) >= INPUTS

            deadline = asyncio.get_running_loop().time() + 30
            while not await all_committed():
                assert asyncio.get_running_loop().time() < deadline, len(outputs)
                await asyncio.sleep(0.05)
            everything = await read_outputs(app, "read_uncommitted")
            table = app.tables["counts"]
            counts = {f"k{k}": table[f"k{k}"] for k in range(KEYS)}
            outcomes = app.transaction_counts
            assert outcomes is not None and outcomes["committed"] >= 1
            assert outcomes["aborted"] >= 1  # the refused commit, then the rewind's own
            scraped = {
                sample.labels["outcome"]: sample.value
                for family in AppCollector(app).collect()
                if family.name == "streamlog_transactions"
                for sample in family.samples
                if sample.name == "streamlog_transactions_total"
            }
            assert scraped == {k: float(v) for k, v in outcomes.items()}
            return outputs, everything, counts

    committed, everything, counts = run(main(), timeout=90)
    check_each_count_once(committed, INPUTS)
    assert len(everything) > len(committed)  # the aborted attempt, visible uncommitted only
    assert counts == {f"k{k}": INPUTS // KEYS for k in range(KEYS)}
    assert app._transactional is None  # noqa: SLF001 - closed with the app


def test_a_worker_joining_and_leaving_under_load_counts_each_input_once(
    dsl_broker, app_id, tmp_path
):
    """Two workers of one app on a real broker: the second joins while inputs flow, then
    leaves; each revocation commits the whole transaction (every partition's offsets)."""
    url = f"kafka://{dsl_broker.bootstrap}"
    inputs = 1_000
    a = counting_app(app_id, url, str(tmp_path / "a"), broker_session_timeout=6.0)
    b = counting_app(app_id, url, str(tmp_path / "b"), broker_session_timeout=6.0)

    async def feed() -> None:
        for start in range(0, inputs, 50):
            await send_inputs(a, start, start + 50)
            await asyncio.sleep(0.05)

    async def main() -> list[dict[str, Any]]:
        async with a:
            feeding = asyncio.ensure_future(feed())
            await asyncio.sleep(0.3)
            await b.start()
            await wait_for(lambda: b.conductor.assignment() != set(), 30)
            await asyncio.sleep(0.5)
            await b.stop()
            await feeding
            outputs: list[dict[str, Any]] = []
            deadline = asyncio.get_running_loop().time() + 30
            while len(outputs) < inputs:
                assert asyncio.get_running_loop().time() < deadline, len(outputs)
                await asyncio.sleep(0.05)
                outputs = await read_outputs(a, "read_committed")
            return outputs

    check_each_count_once(run(main(), timeout=90), inputs)


def test_a_fenced_worker_stops_when_it_loses_its_partitions(tmp_path, app_id):
    """Another producer took the worker's transactional id (a second worker on the same
    data directory's slot, by mistake): when the group drops the worker and its work is
    discarded, the abort is refused as fenced, and the worker stops with that reason
    rather than process on with a producer that can never commit."""
    app = counting_app(app_id, "memory://", str(tmp_path / "data"))

    async def main() -> BaseException | None:
        async with app:
            claim = app._transactional_id  # noqa: SLF001
            assert claim is not None
            await app.producer.send(f"{app_id}-counts", b"{}")  # the transaction holds a record
            await app.producer.flush()
            usurper = app.transport.producer(transactional_id=claim.transactional_id)
            await usurper.init_transactions()
            await app.discard_uncommitted()  # what on_partitions_lost does
            return app.crash_reason

    reason = run(main(), timeout=30)
    assert isinstance(reason, ExactlyOnceError)
    assert "unusable" in str(reason) and "fenced" in str(reason)
