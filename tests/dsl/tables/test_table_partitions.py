"""A table's partition count follows its source topic when its changelog is new (Kafka
Streams derives changelog partitions from the source); an existing changelog that
disagrees with the source is refused, with the text that names both."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import streamlog
from streamlog.dsl.errors import ImproperlyConfigured
from streamlog.transport import open_transport
from tests.dsl.helpers import run, wait_for

_ids = itertools.count()


async def create_topic(url: str, name: str, partitions: int) -> None:
    """What a producer-first deployment does: the input exists before the app."""
    transport = open_transport(url)
    await transport.start()
    try:
        admin = transport.admin()
        await admin.create_topic(name, partitions, {})
        await admin.close()
    finally:
        await transport.close()


def counting_app(url: str, app_id: str, source: str) -> tuple[streamlog.App, object, object]:
    app = streamlog.App(
        app_id, broker=url, store="memory://", topic_partitions=8, broker_commit_interval=0.1
    )
    words = app.topic(source, value_type=str, value_serializer="raw")
    counts = app.Table("counts", default=int)
    return app, words, counts


def test_a_new_changelog_takes_the_partitions_of_a_topic_a_producer_made(tmp_path):
    url = f"file://{tmp_path}/log"
    app_id = f"tp{next(_ids)}"
    source = f"{app_id}-words"
    run(create_topic(url, source, 1))  # auto-created by a producer: one partition
    app, words, counts = counting_app(url, app_id, source)
    seen: list[str] = []

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            counts[word] += 1
            seen.append(word)

    async def main():
        async with app:
            described = await app.admin().describe_topic(counts.changelog_topic.name)
            for word in ["a", "b", "a"]:
                await words.send(value=word)
            await wait_for(lambda: len(seen) == 3)
            return len(described.partitions), dict(counts.items())

    changelog_partitions, table = run(main())
    assert counts.partitions == 1 and changelog_partitions == 1
    assert table == {"a": 2, "b": 1}


def test_an_existing_changelog_that_disagrees_with_the_source_is_refused(tmp_path):
    url = f"file://{tmp_path}/log"
    app_id = f"tp{next(_ids)}"
    run(create_topic(url, f"{app_id}-counts-changelog", 4))  # from an earlier deployment
    run(create_topic(url, f"{app_id}-words", 2))
    app, words, counts = counting_app(url, app_id, f"{app_id}-words")

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            counts[word] += 1

    async def main():
        with pytest.raises(ImproperlyConfigured) as caught:
            await app.start()
        return str(caught.value)

    message = run(main())
    assert message == (
        f"table 'counts' (4 partitions, changelog {app_id}-counts-changelog) is updated by agent "
        f"{count.name} from topic '{app_id}-words', which has 2 partitions: they must be "
        "co-partitioned; give the table partitions=2 or re-key the stream with group_by(..., "
        "partitions=4)"
    )


def test_an_existing_changelog_that_agrees_is_adopted(tmp_path):
    url = f"file://{tmp_path}/log"
    app_id = f"tp{next(_ids)}"
    run(create_topic(url, f"{app_id}-counts-changelog", 3))
    run(create_topic(url, f"{app_id}-words", 3))
    app, words, counts = counting_app(url, app_id, f"{app_id}-words")

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            counts[word] += 1

    async def main():
        async with app:
            return sorted(counts.active_partitions)

    assert run(main()) == [0, 1, 2]
    assert counts.partitions == 3


class Counter:
    """Holds the table: the agent updates it only through a method."""

    def __init__(self, table: Any) -> None:
        self.table_of_counts = table

    def add(self, word: str) -> None:
        self.table_of_counts[word] += 1


def test_a_table_updated_through_a_helper_is_checked_too(tmp_path):
    url = f"file://{tmp_path}/log"
    app_id = f"tp{next(_ids)}"
    run(create_topic(url, f"{app_id}-counts-changelog", 4))
    run(create_topic(url, f"{app_id}-words", 2))
    app, words, counts = counting_app(url, app_id, f"{app_id}-words")
    counter = Counter(counts)

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            counter.add(word)

    async def main():
        with pytest.raises(ImproperlyConfigured) as caught:
            await app.start()
        return str(caught.value)

    assert run(main()).startswith(
        f"table 'counts' (4 partitions, changelog {app_id}-counts-changelog) is updated by agent "
        f"{count.name} from topic '{app_id}-words', which has 2 partitions"
    )
