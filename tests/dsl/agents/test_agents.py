"""Faust-style examples with exact expected outputs, over memory://, file:// and kafka://."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict

import streamlog
from tests.dsl.helpers import committed, read_topic, run, wait_for


class Order(streamlog.Record):
    order_id: int
    user: str
    amount: int


# a recent whole second: the log's default retention (7 days) deletes older records
T0 = int(time.time()) - 600
T0_MS = T0 * 1000


def make_app(app_id: str, url: str, **settings) -> streamlog.App:
    settings.setdefault("topic_partitions", 4)
    settings.setdefault("broker_commit_interval", 0.2)
    settings.setdefault("broker_session_timeout", 6.0)
    return streamlog.App(app_id, broker=url, **settings)


def test_word_count_yields_running_counts_to_a_sink(broker_url, app_id):
    app = make_app(app_id, broker_url)
    lines = app.topic(f"{app_id}-lines", value_type=str)
    counts_topic = app.topic(f"{app_id}-counts", value_type=dict)
    seen: list[dict] = []

    @app.agent(lines, sink=[counts_topic])
    async def count_words(stream):
        counts: Counter[str] = Counter()
        async for line in stream:
            for word in line.split():
                counts[word] += 1
                yield {"word": word, "count": counts[word]}

    async def main():
        async with app:
            for text in ["the cat", "the dog", "a cat and the dog"]:
                await lines.send(key="k", value=text)
            out = await read_topic(app, counts_topic.name, 9)
            seen.extend(json.loads(r.value) for r in sorted(out, key=lambda r: r.offset))
        return seen

    result = run(main())
    assert result == [
        {"word": "the", "count": 1},
        {"word": "cat", "count": 1},
        {"word": "the", "count": 2},
        {"word": "dog", "count": 1},
        {"word": "a", "count": 1},
        {"word": "cat", "count": 2},
        {"word": "and", "count": 1},
        {"word": "the", "count": 3},
        {"word": "dog", "count": 2},
    ]


def test_group_by_repartitions_so_each_user_is_on_one_partition(broker_url, app_id):
    app = make_app(app_id, broker_url)
    orders = app.topic(f"{app_id}-orders", value_type=Order)
    totals: dict[str, int] = defaultdict(int)
    partitions_seen: dict[str, set[int]] = defaultdict(set)
    processed = []

    @app.agent(orders)
    async def per_user(stream):
        async for event in stream.group_by(Order.user).events():
            order = event.value
            assert isinstance(order, Order)
            assert event.key == order.user
            totals[order.user] += order.amount
            partitions_seen[order.user].add(event.message.partition)
            processed.append(order.order_id)

    users = ["ann", "bob", "cy", "dee", "eve"]
    expected: dict[str, int] = defaultdict(int)

    async def main():
        async with app:
            for i in range(200):
                user = users[i % 5]
                expected[user] += i
                # keyed by order id: one user's orders are spread over every partition
                await orders.send(key=str(i), value=Order(i, user, i))
            await wait_for(lambda: len(processed) == 200)
            repartitioned = await read_topic(app, f"{app_id}-per_user-user-repartition", 200)
        return repartitioned

    repartitioned = run(main())
    assert dict(totals) == dict(expected)
    assert sorted(processed) == list(range(200))
    assert all(len(p) == 1 for p in partitions_seen.values()), partitions_seen
    assert {json.loads(r.key) for r in repartitioned} == set(users)
    assert len(repartitioned) == 200


def test_agent_pipeline_with_yield_sinks_and_agent_send(broker_url, app_id):
    app = make_app(app_id, broker_url)
    source = app.topic(f"{app_id}-numbers", value_type=int)
    doubled_topic = app.topic(f"{app_id}-doubled", value_type=int)
    collected: list[int] = []
    squares: list[int] = []

    @app.agent()
    async def square(stream):
        async for n in stream:
            squares.append(n * n)

    @app.agent(source, sink=[doubled_topic, square, collected.append])
    async def double(stream):
        async for n in stream:
            yield n * 2

    async def main():
        async with app:
            for n in range(10):
                await source.send(key=str(n), value=n)
            await wait_for(lambda: len(collected) == 10 and len(squares) == 10)
            out = await read_topic(app, doubled_topic.name, 10)
        return out

    out = run(main())
    assert sorted(collected) == [n * 2 for n in range(10)]
    assert sorted(squares) == sorted((n * 2) ** 2 for n in range(10))
    assert sorted(json.loads(r.value) for r in out) == [n * 2 for n in range(10)]
    assert square.channel.name == (
        f"{app_id}-{__name__}.test_agent_pipeline_with_yield_sinks_and_agent_send._locals_.square"
    )


def test_events_carry_the_message_metadata(broker_url, app_id):
    app = make_app(app_id, broker_url, topic_partitions=1)
    topic = app.topic(f"{app_id}-ev", key_type=str, value_type=dict)
    events = []

    @app.agent(topic)
    async def watch(stream):
        async for event in stream.events():
            events.append(event)

    async def main():
        async with app:
            for i in range(3):
                await topic.send(
                    key=f"k{i}",
                    value={"i": i},
                    headers={"h": f"v{i}"},
                    timestamp=T0 + 0.5 + i,
                )
            await wait_for(lambda: len(events) == 3)

    run(main())
    assert [(e.key, e.value) for e in events] == [
        ("k0", {"i": 0}),
        ("k1", {"i": 1}),
        ("k2", {"i": 2}),
    ]
    assert [e.headers for e in events] == [{"h": b"v0"}, {"h": b"v1"}, {"h": b"v2"}]
    assert [(e.message.topic, e.message.partition, e.message.offset) for e in events] == [
        (topic.name, 0, 0),
        (topic.name, 0, 1),
        (topic.name, 0, 2),
    ]
    assert [e.message.timestamp_ms for e in events] == [
        T0_MS + 500,
        T0_MS + 1_500,
        T0_MS + 2_500,
    ]
    assert events[0].message.timestamp == T0 + 0.5


def test_ask_gets_the_agents_reply(broker_url, app_id):
    app = make_app(app_id, broker_url)

    @app.agent()
    async def double(stream):
        async for n in stream:
            yield n * 2

    async def main():
        async with app:
            answers = [await double.ask(n, key=str(n), timeout=20) for n in (1, 21, 50)]
            concurrent = await asyncio.gather(*(double.ask(n, timeout=20) for n in range(5)))
        return answers, concurrent

    answers, concurrent = run(main())
    assert answers == [2, 42, 100]
    assert list(concurrent) == [0, 2, 4, 6, 8]


def test_offsets_are_committed_and_a_restart_does_not_reprocess(
    durable_broker_url, app_id, tmp_path
):
    seen: list[int] = []

    def build():
        app = make_app(app_id, durable_broker_url)
        topic = app.topic(f"{app_id}-in", value_type=int)

        @app.agent(topic)
        async def consume(stream):
            async for n in stream:
                seen.append(n)

        return app, topic

    async def first():
        app, topic = build()
        async with app:
            for n in range(50):
                await topic.send(key=str(n), value=n)
            await wait_for(lambda: len(seen) == 50)
        # after a clean stop every partition's commit is its end
        async with streamlog.App(app_id + "-probe", broker=durable_broker_url) as other:
            return await committed(other, topic.name, group=app_id)

    offsets = run(first())
    assert sum(v or 0 for v in offsets.values()) == 50

    async def second():
        app, topic = build()
        async with app:
            for n in range(50, 60):
                await topic.send(key=str(n), value=n)
            await wait_for(lambda: len(seen) == 60)
            # Every partition committed to its end: each was fetched and processed to the
            # end, so a (wrong) re-delivery of a first-run record would be in ``seen`` now.
            while sum(v or 0 for v in (await committed(app, topic.name)).values()) < 60:
                await asyncio.sleep(0.02)

    run(second())
    assert sorted(seen) == list(range(60))


def test_channel_agents_pass_values_without_encoding(app_id):
    app = make_app(app_id, "memory://")
    channel = app.channel()
    got = []

    class Opaque:  # not serialisable: a channel never encodes
        def __init__(self, n):
            self.n = n

    @app.agent(channel)
    async def sink(stream):
        async for value in stream:
            got.append(value.n)

    async def main():
        async with app:
            for n in range(5):
                await channel.send(value=Opaque(n))
            await wait_for(lambda: len(got) == 5)

    run(main())
    assert got == [0, 1, 2, 3, 4]


def test_filter_enumerate_items_and_through(broker_url, app_id):
    app = make_app(app_id, broker_url, topic_partitions=1)
    src = app.topic(f"{app_id}-src", value_type=int)
    mid = app.topic(f"{app_id}-mid", value_type=int)
    out = []

    @app.agent(src)
    async def evens(stream):
        async for key, n in stream.filter(lambda v: v % 2 == 0).through(mid).items():
            out.append((key, n))

    async def main():
        async with app:
            for n in range(10):
                await src.send(key=f"k{n}", value=n)
            await wait_for(lambda: len(out) == 5)
            forwarded = await read_topic(app, mid.name, 5)
        return forwarded

    forwarded = run(main())
    assert out == [(b"k0", 0), (b"k2", 2), (b"k4", 4), (b"k6", 6), (b"k8", 8)]  # raw keys: bytes
    assert [(r.key, json.loads(r.value)) for r in forwarded] == [
        (b"k0", 0),
        (b"k2", 2),
        (b"k4", 4),
        (b"k6", 6),
        (b"k8", 8),
    ]
