"""take(within=), timers on a fake clock, and what happens when an agent raises."""

from __future__ import annotations

import asyncio
import json

import pytest

import streamlog
from streamlog.dsl import ManualAsyncClock
from streamlog.transport.types import TopicPartition
from tests.dsl.helpers import read_topic, run, wait_for


def test_take_returns_full_lists_then_what_arrived_within_the_window(app_id):
    clock = ManualAsyncClock()
    app = streamlog.App(app_id, broker="memory://", clock=clock)
    channel = app.channel()
    lists: list[list[int]] = []

    @app.agent(channel)
    async def batcher(stream):
        async for values in stream.take(3, within=10):
            lists.append(values)

    async def main():
        async with app:
            for n in range(5):
                await channel.send(value=n)
            await wait_for(lambda: len(lists) == 1)
            await clock.advance(9)
            assert lists == [[0, 1, 2]]  # 3 and 4 wait: the window is not over
            await clock.advance(1)
            await wait_for(lambda: len(lists) == 2)
            await channel.send(value=5)
            await clock.advance(10)
            await wait_for(lambda: len(lists) == 3)

    run(main())
    assert lists == [[0, 1, 2], [3, 4], [5]]


def test_take_acknowledges_a_list_only_after_it_was_processed(app_id):
    app = streamlog.App(
        app_id,
        broker="memory://",
        topic_partitions=1,
        broker_commit_interval=60,
        shutdown_timeout=2,
    )
    topic = app.topic(f"{app_id}-in", value_type=int)
    gates = [asyncio.Event(), asyncio.Event()]
    lists = []

    @app.agent(topic)
    async def slow(stream):
        async for values in stream.take(4):
            lists.append(values)
            await gates[len(lists) - 1].wait()

    async def main():
        async with app:
            for n in range(8):
                await topic.send(value=n)
            await wait_for(lambda: len(lists) == 1)
            tp = TopicPartition(topic.name, 0)
            # the first list is being processed: nothing of it may be committed yet
            assert app.conductor.committable() == {tp: 0}
            gates[0].set()
            await wait_for(lambda: len(lists) == 2)
            assert app.conductor.committable() == {tp: 4}
            gates[1].set()
            await wait_for(lambda: app.conductor.committable() == {tp: 8})

    run(main())
    assert lists == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_take_events_noack_take_and_add_processor_as_faust_has_them(app_id):
    # Faust's take_events (lists of events), noack_take (the agent acks) and add_processor
    # (values pass through it, sync or async, before the agent sees them)
    app = streamlog.App(app_id, broker="memory://", topic_partitions=1, broker_commit_interval=60)
    events_topic = app.topic(f"{app_id}-events", key_type=str, value_type=int)
    noack_topic = app.topic(f"{app_id}-noack", value_type=int)
    mapped_topic = app.topic(f"{app_id}-mapped", value_type=int)
    got: dict[str, list] = {"events": [], "noack": [], "mapped": []}

    @app.agent(events_topic)
    async def as_events(stream):
        async for events in stream.take_events(2):
            got["events"].append([(e.key, e.value, e.message.offset) for e in events])

    @app.agent(noack_topic)
    async def by_hand(stream):
        async for values in stream.noack_take(2):
            got["noack"].append(values)
            if values == [2, 3]:  # the last event of the second list is acked by hand
                stream.ack(stream.current_event)

    async def tenfold(value: int) -> int:
        return value * 10

    @app.agent(mapped_topic)
    async def mapped(stream):
        stream.add_processor(lambda value: value + 1)
        stream.add_processor(tenfold)
        async for value in stream:
            got["mapped"].append(value)

    async def main():
        async with app:
            for n in range(4):
                await events_topic.send(key=f"k{n}", value=n)
                await noack_topic.send(value=n)
                await mapped_topic.send(value=n)
            await wait_for(lambda: len(got["events"]) == 2 and len(got["mapped"]) == 4)
            await wait_for(lambda: len(got["noack"]) == 2)
            return app.conductor.committable()

    committable = run(main())
    assert got["events"] == [[("k0", 0, 0), ("k1", 1, 1)], [("k2", 2, 2), ("k3", 3, 3)]]
    assert got["noack"] == [[0, 1], [2, 3]]
    assert got["mapped"] == [10, 20, 30, 40]
    # nothing of noack_take's lists was acknowledged but the event acked by hand (offset 3,
    # out of order: the committable offset stays at 0 until 0..2 are acked)
    assert committable[TopicPartition(noack_topic.name, 0)] == 0
    assert committable[TopicPartition(events_topic.name, 0)] == 4


def test_timer_fires_once_per_interval_on_a_fake_clock(app_id):
    clock = ManualAsyncClock()
    app = streamlog.App(app_id, broker="memory://", clock=clock)
    ticks: list[float] = []
    with_app: list[str] = []

    @app.timer(1.0)
    async def every_second():
        ticks.append(clock.time())

    @app.timer(2.5)
    def sync_timer_taking_app(app):
        with_app.append(app.conf.id)

    @app.timer(3.0)
    async def broken():
        raise RuntimeError("a bad tick must not stop the timer")

    started = clock.time()

    async def main():
        async with app:
            await wait_for(lambda: clock.sleepers >= 4)
            await clock.advance(10)

    run(main())
    assert [t - started for t in ticks] == [float(n) for n in range(1, 11)]
    assert with_app == [app_id] * 4
    broken_job = next(job for job in app.timers if "broken" in job.name)
    assert (broken_job.runs, broken_job.errors) == (0, 3)


def test_task_runs_once_and_on_leader_timer_runs_on_the_leader(app_id):
    clock = ManualAsyncClock()
    app = streamlog.App(app_id, broker="memory://", clock=clock)
    calls: list[str] = []

    @app.task
    async def hello():
        calls.append("task")

    @app.timer(5.0, on_leader=True)
    async def leader_only():
        calls.append(f"leader={app.is_leader()}")

    async def main():
        async with app:
            await wait_for(lambda: app.is_leader() and clock.sleepers >= 2)
            await clock.advance(10)

    run(main())
    assert calls == ["task", "leader=True", "leader=True"]


@pytest.mark.parametrize("transport", ["memory", "kafka"])
def test_dead_letter_topic_gets_the_failing_event_with_the_error(transport, app_id, request):
    url = (
        "memory://"
        if transport == "memory"
        else f"kafka://{request.getfixturevalue('dsl_broker').bootstrap}"
    )
    app = streamlog.App(app_id, broker=url, topic_partitions=1, agent_on_error="dlq")
    topic = app.topic(f"{app_id}-in", value_type=int)
    done = []

    @app.agent(topic)
    async def picky(stream):
        async for n in stream:
            if n == 3:
                raise ValueError("three is not allowed")
            done.append(n)

    async def main():
        async with app:
            for n in range(6):
                await topic.send(key=f"k{n}", value=n)
            await wait_for(lambda: len(done) == 5)
            dead = await read_topic(app, f"{app_id}-picky-dlq", 1)
        return dead

    dead = run(main())
    assert done == [0, 1, 2, 4, 5]
    assert len(dead) == 1
    record = dead[0]
    headers = dict(record.headers)
    assert (record.key, json.loads(record.value)) == (b"k3", 3)
    assert headers["streamlog-error-type"] == b"ValueError"
    assert headers["streamlog-error"] == b"ValueError('three is not allowed')"
    assert headers["streamlog-source-topic"] == topic.name.encode()
    assert (headers["streamlog-source-partition"], headers["streamlog-source-offset"]) == (
        b"0",
        b"3",
    )
    assert b"three is not allowed" in headers["streamlog-error-traceback"]
    assert app.agents[next(iter(app.agents))].dead_lettered == 1


def test_restart_policy_skips_the_failing_event_and_continues(app_id, caplog):
    app = streamlog.App(app_id, broker="memory://", topic_partitions=1, agent_on_error="restart")
    topic = app.topic(f"{app_id}-in", value_type=int)
    done = []
    starts = []

    @app.agent(topic)
    async def flaky(stream):
        starts.append(1)
        async for n in stream:
            if n % 4 == 1:
                raise KeyError(n)
            done.append(n)

    async def main():
        async with app:
            for n in range(8):
                await topic.send(value=n)
            await wait_for(lambda: len(done) == 6)

    with caplog.at_level("ERROR"):
        run(main())
    assert done == [0, 2, 3, 4, 6, 7]
    assert len(starts) == 3
    failures = [r.getMessage() for r in caplog.records if "failed on" in r.getMessage()]
    assert [m.split(" failed on ")[1].split(":")[0] for m in failures] == [
        f"{topic.name}[0]@1",
        f"{topic.name}[0]@5",
    ]


def test_crash_policy_stops_the_app_with_the_reason(app_id):
    app = streamlog.App(app_id, broker="memory://", topic_partitions=1, agent_on_error="crash")
    topic = app.topic(f"{app_id}-in", value_type=int)

    @app.agent(topic)
    async def fragile(stream):
        async for n in stream:
            if n == 2:
                raise RuntimeError("boom")

    async def main():
        await app.start()
        try:
            for n in range(4):
                await topic.send(value=n)
            await asyncio.wait_for(app.wait_until_stop_requested(), 10)
        finally:
            await app.stop()

    run(main())
    assert isinstance(app.crash_reason, streamlog.AgentError)
    assert "boom" in str(app.crash_reason) and f"{topic.name}[0]@2" in str(app.crash_reason)


def test_undecodable_values_are_dead_lettered_not_fatal(app_id):
    # strict: a field of the wrong type is undecodable (Faust's default would take it)
    class Point(streamlog.Record, strict=True):
        x: int
        y: int

    app = streamlog.App(app_id, broker="memory://", topic_partitions=1, agent_on_error="dlq")
    topic = app.topic(f"{app_id}-points", value_type=Point)
    raw = app.topic(f"{app_id}-points", value_type=bytes, value_serializer="raw")
    got = []

    @app.agent(topic)
    async def points(stream):
        async for p in stream:
            got.append((p.x, p.y))

    async def main():
        async with app:
            await raw.send(value=b'{"x": 1, "y": 2}')
            await raw.send(value=b'{"x": "one", "y": 2}')
            await raw.send(value=b"\xff not json")
            await raw.send(value=b'{"x": 3, "y": 4}')
            await wait_for(lambda: len(got) == 2)
            dead = await read_topic(app, f"{app_id}-points-dlq", 2)
        return dead

    dead = run(main())
    assert got == [(1, 2), (3, 4)]
    assert [r.value for r in dead] == [b'{"x": "one", "y": 2}', b"\xff not json"]
    assert all(dict(r.headers)["streamlog-error-type"] == b"ValueDecodeError" for r in dead)


def test_crontab_fires_at_the_matching_minutes_on_a_fake_clock(app_id):
    # 2023-11-14 22:13:20 UTC: the next */5 minutes are :15, :20, :25
    clock = ManualAsyncClock(start=1_700_000_000.0)
    app = streamlog.App(app_id, broker="memory://", clock=clock)
    fired: list[float] = []

    @app.crontab("*/5 * * * *")
    async def every_five_minutes():
        fired.append(clock.time())

    async def main():
        async with app:
            await wait_for(lambda: clock.sleepers >= 1)
            for _ in range(12 * 60):  # 12 minutes, a second at a time
                await clock.advance(1, settle_turns=1)

    run(main())
    assert fired == [1_700_000_100.0, 1_700_000_400.0, 1_700_000_700.0]
