"""The remaining stream operators and agent calls, with exact outputs (memory://)."""

from __future__ import annotations

import asyncio
import json

import streamlog
from streamlog.log.partitioner import partition_for_key
from streamlog.transport.types import TopicPartition
from tests.dsl.helpers import read_topic, run, wait_for


def test_concurrency_splits_batches_between_actors_and_processes_everything(app_id):
    app = streamlog.App(app_id, broker="memory://", topic_partitions=4, broker_max_poll_records=5)
    topic = app.topic(f"{app_id}-in", value_type=int)
    seen: list[tuple[int, int]] = []

    @app.agent(topic, concurrency=3)
    async def work(stream):
        async for n in stream:
            seen.append((id(asyncio.current_task()), n))
            await asyncio.sleep(0)  # let the other actors run

    async def main():
        async with app:
            for n in range(300):
                await topic.send(key=str(n), value=n)
            await wait_for(lambda: len(seen) == 300)

    run(main())
    assert sorted(n for _, n in seen) == list(range(300))
    assert len({task for task, _ in seen}) == 3


def test_echo_enumerate_and_cast(app_id):
    app = streamlog.App(app_id, broker="memory://", topic_partitions=1)
    src = app.topic(f"{app_id}-src", value_type=str)
    copy = app.topic(f"{app_id}-copy", value_type=str)
    numbered: list[tuple[int, str]] = []

    @app.agent(src)
    async def number(stream):
        async for i, word in stream.echo(copy).enumerate(start=1):
            numbered.append((i, word))

    async def main():
        async with app:
            for word in ["a", "b", "c"]:
                await number.cast(word, key=word)
            await wait_for(lambda: len(numbered) == 3)
            echoed = await read_topic(app, copy.name, 3)
        return echoed

    echoed = run(main())
    assert numbered == [(1, "a"), (2, "b"), (3, "c")]
    assert [(r.key, json.loads(r.value)) for r in echoed] == [(b"a", "a"), (b"b", "b"), (b"c", "c")]


def test_noack_holds_the_commit_until_ack(app_id):
    app = streamlog.App(app_id, broker="memory://", topic_partitions=1, broker_commit_interval=60)
    topic = app.topic(f"{app_id}-in", value_type=int)
    held = []

    @app.agent(topic)
    async def manual(stream):
        quiet = stream.noack()
        async for event in quiet.events():
            held.append(event)

    async def main():
        async with app:
            for n in range(4):
                await topic.send(value=n)
            await wait_for(lambda: len(held) == 4)
            tp = TopicPartition(topic.name, 0)
            before = app.conductor.committable()[tp]
            stream = app.agents[next(iter(app.agents))]._actors[0].stream
            assert stream.ack(held[1]) is True  # out of order: offset 0 still pending
            middle = app.conductor.committable()[tp]
            assert stream.ack(held[0]) is True
            after = app.conductor.committable()[tp]
            assert stream.ack(held[0]) is False  # already acknowledged
            return before, middle, after

    assert run(main()) == (0, 0, 2)


def test_agent_send_partitions_by_key_like_kafka(app_id):
    app = streamlog.App(app_id, broker="memory://", topic_partitions=4)
    where: dict[str, int] = {}

    @app.agent()
    async def locate(stream):
        async for event in stream.events():
            where[event.value] = event.message.partition

    async def main():
        async with app:
            for key in ["alice", "bob", "carol", "dave", "erin", "frank"]:
                await locate.send(key=key, value=key)
            await wait_for(lambda: len(where) == 6)

    run(main())
    assert where == {k: partition_for_key(k.encode(), 4) for k in where}
