"""GlobalTable (every worker holds every partition) and SetTable (set values)."""

from __future__ import annotations

import asyncio
from typing import Any

import streamlog
from tests.dsl.helpers import run, wait_for


def test_global_table_is_whole_on_every_worker(dsl_broker, app_id):
    url = f"kafka://{dsl_broker.bootstrap}"
    processed: list[str] = []

    def worker():
        app = streamlog.App(
            app_id,
            broker=url,
            topic_partitions=4,
            store="memory://",
            broker_commit_interval=0.2,
            broker_session_timeout=6.0,
        )
        src = app.topic(f"{app_id}-prices", key_type=str, value_type=int)
        prices = app.GlobalTable("prices", key_type=str, value_type=int)
        prices.follow_interval = 0.1

        @app.agent(src)
        async def record(stream):
            async for key, price in stream.items():
                prices[key] = price
                processed.append(key)

        return app, src, prices

    async def main():
        a, src, prices_a = worker()
        b, _, prices_b = worker()
        async with a, b:
            await wait_for(
                lambda: len(a.conductor.assignment()) + len(b.conductor.assignment()) == 5
            )
            expected = {f"item-{i}": i * 10 for i in range(40)}
            for key, value in expected.items():
                await src.send(key=key, value=value)
            await wait_for(lambda: len(processed) == 40)
            # both workers converge on the whole table, whichever processed a key
            await wait_for(lambda: dict(prices_a.items()) == expected, timeout=30)
            await wait_for(lambda: dict(prices_b.items()) == expected, timeout=30)
            owned = {len(a.conductor.assignment()), len(b.conductor.assignment())}
            return owned, prices_a.active_partitions, prices_b.active_partitions

    owned, parts_a, parts_b = run(main(), timeout=90)
    assert owned != {5}  # the input was split between the two workers...
    assert parts_a == parts_b == [0, 1, 2, 3]  # ...but each holds every table partition


def test_set_table_adds_and_discards_members(app_id):
    app = streamlog.App(app_id, broker="memory://", topic_partitions=2, store="memory://")
    events = app.topic(f"{app_id}-events", key_type=str, value_type=list)
    followers = app.SetTable("followers", key_type=str, value_type=str)  # the members' type
    done = []

    @app.agent(events)
    async def follow(stream):
        async for user, (op, who) in stream.items():
            if op == "add":
                followers[user].add(who)
            else:
                followers[user].discard(who)
            done.append(op)

    ops = [
        ("ann", "add", "bob"),
        ("ann", "add", "cy"),
        ("ann", "add", "bob"),
        ("dee", "add", "ann"),
        ("ann", "del", "cy"),
        ("dee", "del", "ann"),
    ]

    async def main():
        async with app:
            for user, op, who in ops:
                await events.send(key=user, value=[op, who])
            await wait_for(lambda: len(done) == len(ops))
            await asyncio.sleep(0)
            return (
                dict(followers.items()),
                "bob" in followers["ann"],
                len(followers["dee"]),
                list(followers["ann"]),
            )

    contents, has_bob, dee_size, ann = run(main())
    assert contents == {"ann": {"bob"}}  # dee's set became empty: the key is gone
    assert (has_bob, dee_size, ann) == (True, 0, ["bob"])


class Visit(streamlog.Record):
    page: str
    ms: int


def test_set_table_value_type_is_the_members_type(app_id):
    # Faust's SetTable(value_type=X) holds sets of X: Records come back as Records (hashable
    # by their fields, as Faust's are), ints as ints
    def declare() -> tuple[streamlog.App, Any, Any, Any, list[int]]:
        app = streamlog.App(app_id, broker="memory://", topic_partitions=1, store="memory://")
        visits = app.topic(f"{app_id}-visits", key_type=str, value_type=Visit)
        pages = app.SetTable("pages", key_type=str, value_type=Visit)
        durations = app.SetTable("durations", key_type=str, value_type=int)
        done: list[int] = []

        @app.agent(visits)
        async def track(stream):
            async for user, visit in stream.items():
                pages[user].add(visit)
                durations[user].add(visit.ms)
                done.append(1)

        return app, visits, pages, durations, done

    app, visits, pages, durations, done = declare()
    sent = [("ann", Visit("/a", 5)), ("ann", Visit("/b", 7)), ("ann", Visit("/a", 5))]

    async def main():
        async with app:
            for user, visit in sent:
                await visits.send(key=user, value=visit)
            await wait_for(lambda: len(done) == len(sent))
            await asyncio.sleep(0)
            members = set(pages["ann"])
            return members, set(durations["ann"]), Visit("/a", 5) in pages["ann"]

    members, ms, found = run(main())
    assert members == {Visit("/a", 5), Visit("/b", 7)}
    assert all(type(m) is Visit for m in members)
    assert ms == {5, 7} and found
    assert hash(Visit("/a", 5)) == hash(Visit("/a", 5)) != hash(Visit("/b", 7))


def test_as_ansitable_takes_fausts_arguments(app_id):
    app = streamlog.App(app_id, broker="memory://", topic_partitions=1, store="memory://")
    words = app.topic(f"{app_id}-words", key_type=str, value_type=str)
    counts = app.Table("word_counts", default=int, key_type=str, value_type=int)
    done: list[str] = []

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            counts[word] += 1
            done.append(word)

    async def main():
        async with app:
            for word in ["b", "a", "b"]:
                await words.send(key=word, value=word)
            await wait_for(lambda: len(done) == 3)
            return (
                counts.as_ansitable(title="Counts of {table.name}", key="Word", value="Count"),
                counts.as_ansitable(sortkey=lambda item: -item[1]),
            )

    named, by_count = run(main())
    assert named.splitlines() == [
        "Counts of word_counts",
        "+------+-------+",
        "| Word | Count |",
        "+------+-------+",
        "| 'a'  | 1     |",
        "| 'b'  | 2     |",
        "+------+-------+",
    ]
    assert [line.split()[1] for line in by_count.splitlines()[4:6]] == ["'b'", "'a'"]


def test_a_global_table_following_its_changelog_logs_no_routine_info(app_id, caplog):
    # the follower re-reads the changelog every follow_interval: its "up to date" lines
    # are DEBUG, so a worker's INFO log does not grow by one line per partition per tick
    app = streamlog.App(app_id, broker="memory://", topic_partitions=2, store="memory://")
    app.GlobalTable("settings", key_type=str, value_type=str, follow_interval=0.05)
    recovery = "streamlog.state.recovery"

    def lines(level: str) -> list[str]:
        records = caplog.records
        return [r.getMessage() for r in records if r.name == recovery and r.levelname == level]

    async def main():
        async with app:
            # three rounds of following, two partitions each
            await wait_for(lambda: len(lines("DEBUG")) >= 6, timeout=10)

    with caplog.at_level("DEBUG", logger=recovery):
        run(main())
    assert len(lines("INFO")) <= 2  # the first recovery of each partition at most
    assert all("up to date" in line for line in lines("DEBUG"))
