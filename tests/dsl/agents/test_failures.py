"""What a failing event costs under each error policy: under ``crash`` (the default) the
worker stops and the event is neither acknowledged nor committed, whichever way it failed
(the agent raised, its value did not decode, a ``group_by`` key function raised)."""

from __future__ import annotations

import asyncio
import json

import streamlog
from streamlog.transport.types import TopicPartition
from tests.dsl.helpers import run


def test_the_default_policy_is_crash(app_id):
    app = streamlog.App(app_id, broker="memory://")

    @app.agent(app.topic(f"{app_id}-in"))
    async def quiet(stream):
        async for _ in stream:
            pass

    assert app.conf.agent_on_error == "crash"
    assert quiet.on_error == "crash"


def _committed(url: str, group: str, tp: TopicPartition) -> int | None:
    async def read() -> int | None:
        transport = streamlog.transport.open_transport(url)
        await transport.start()
        try:
            consumer = transport.consumer(group_id=group)
            try:
                return await consumer.committed(tp)
            finally:
                await consumer.close()
        finally:
            await transport.close()

    return run(read())


def _values(url: str, topic: str) -> list[dict[str, str]]:
    async def read() -> list[dict[str, str]]:
        transport = streamlog.transport.open_transport(url)
        await transport.start()
        try:
            info = await transport.admin().describe_topic(topic)
            tps = [TopicPartition(topic, p.partition) for p in info.partitions]
            consumer = transport.consumer()
            try:
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
                fetched = await consumer.getmany(timeout_ms=1000)
                return [json.loads(r.value) for batch in fetched.values() for r in batch]
            finally:
                await consumer.close()
        finally:
            await transport.close()

    return run(read())


def test_an_undecodable_value_under_crash_is_left_uncommitted(app_id, tmp_path):
    url = f"file://{tmp_path / 'log'}"
    app = streamlog.App(app_id, broker=url, topic_partitions=1, broker_commit_interval=0.05)
    name = f"{app_id}-numbers"
    numbers = app.topic(name, value_type=int)
    raw = app.topic(name, value_type=bytes, value_serializer="raw")
    seen: list[int] = []

    @app.agent(numbers)
    async def add(stream):
        async for n in stream:
            seen.append(n)

    async def main() -> None:
        await app.start()
        try:
            for value in (b"1", b"2", b"not json", b"4"):
                await raw.send(value=value)
            await asyncio.wait_for(app.wait_until_stop_requested(), 10)
        finally:
            await app.stop()

    run(main())
    assert seen == [1, 2]  # nothing after the bad record was processed
    assert isinstance(app.crash_reason, streamlog.AgentError)
    assert f"{name}[0]@2" in str(app.crash_reason)
    # the final commit covered what was processed, and not the bad record
    assert _committed(url, app_id, TopicPartition(name, 0)) == 2


def test_a_failing_group_by_key_under_crash_is_left_uncommitted(app_id, tmp_path):
    url = f"file://{tmp_path / 'log'}"
    app = streamlog.App(app_id, broker=url, topic_partitions=1, broker_commit_interval=0.05)
    name = f"{app_id}-orders"
    orders = app.topic(name, value_type=dict)
    by_customer: list[str] = []

    def customer(order: dict) -> str:
        return order["customer"]  # KeyError for an order without one

    @app.agent(orders)
    async def regroup(stream):
        async for order in stream.group_by(customer, name="customer"):
            by_customer.append(order["customer"])

    async def main() -> None:
        await app.start()
        try:
            await orders.send(value={"customer": "ann"})
            await orders.send(value={"customer": "bob"})
            await orders.send(value={"item": "no customer"})
            await orders.send(value={"customer": "cy"})
            await asyncio.wait_for(app.wait_until_stop_requested(), 10)
        finally:
            await app.stop()

    run(main())
    forwarded = _values(url, f"{app_id}-regroup-customer-repartition")
    assert sorted(f["customer"] for f in forwarded) == ["ann", "bob"]
    assert set(by_customer) <= {"ann", "bob"}
    assert "KeyError('customer')" in str(app.crash_reason)
    assert f"{name}[0]@2" in str(app.crash_reason)
    assert _committed(url, app_id, TopicPartition(name, 0)) == 2


def test_state_that_cannot_be_opened_fails_the_start_with_the_reason(app_id, tmp_path):
    """Not retried as an outage would be: the worker says why and stops."""
    datadir = tmp_path / "data"
    datadir.mkdir()
    (datadir / "tables").write_text("a file where the table stores should go")
    app = streamlog.App(
        app_id, broker="memory://", topic_partitions=1, store="rocksdb://", datadir=str(datadir)
    )
    counts = app.Table("counts", default=int)

    @app.agent(app.topic(f"{app_id}-in"))
    async def count(stream):
        async for value in stream:
            counts[value] += 1

    async def main() -> BaseException:
        try:
            await app.start()
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            return exc
        raise AssertionError("the app started")

    error = run(main())
    assert isinstance(error, OSError)  # the store's directory could not be made
    assert app.crash_reason is error
    assert not app.started
