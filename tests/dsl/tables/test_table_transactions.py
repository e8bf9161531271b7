"""Tables keep their partition's transaction between events: commits and revocations
must still send every later write to the transaction the app's checkpoint holds."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import streamlog
from streamlog.dsl.tables.table import PartitionNotOwnedError
from streamlog.state.windows import window_key
from tests.dsl.helpers import read_topic, run, wait_for

BASE = 1_700_000_000_000  # ms, a multiple of the window size
_ids = itertools.count()


def new_app(name: str) -> streamlog.App:
    return streamlog.App(
        f"tx{next(_ids)}-{name}", broker="memory://", store="memory://", topic_partitions=1
    )


def test_writes_after_each_commit_reach_the_next_transaction_and_the_changelog():
    app = new_app("plain")
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=int)
    table = app.Table("t", default=int, key_type=str, value_type=int, key_serializer="raw")
    done: list[int] = []

    @app.agent(source)
    async def add(stream):
        async for key, value in stream.items():
            table[key] += value
            done.append(value)

    async def main() -> Any:
        async with app:
            seen = []
            for n in (1, 2, 3):
                await source.send(key="k", value=n)
                await wait_for(lambda n=n: len(done) == n)
                before = table.transaction(0)
                await app.conductor.commit()
                after = table.transaction(0)
                seen.append((before.open, after is before, after.open))
            stored = dict(table.store_partition(0).items())
            changelog = await read_topic(app, table.changelog_topic.name, 3)
            return seen, stored, [(r.key, r.value) for r in changelog]

    seen, stored, changelog = run(main())
    # the committed transaction is closed and replaced by a fresh one after every commit
    assert seen == [(False, False, True)] * 3
    assert stored == {b"k": b"6"}
    assert changelog == [(b"k", b"1"), (b"k", b"3"), (b"k", b"6")]


def test_a_revoked_partition_refuses_reads_even_after_it_was_used():
    app = new_app("revoked")
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=int)
    table = app.Table("t", default=int, key_type=str, value_type=int, key_serializer="raw")
    done: list[int] = []

    @app.agent(source)
    async def add(stream):
        async for key, value in stream.items():
            table[key] += value
            done.append(value)

    async def main() -> None:
        async with app:
            await source.send(key="k", value=1)
            await wait_for(lambda: len(done) == 1)
            assert table["k"] == 1
            await app.conductor.commit()
            table.revoke({0})
            with pytest.raises(PartitionNotOwnedError):
                table["k"]
            with pytest.raises(PartitionNotOwnedError):
                table.transaction(0)

    run(main())


def test_a_window_set_kept_across_commits_writes_to_the_current_transaction():
    app = new_app("windowset")
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=int)
    counts = app.Table(
        "c", default=int, key_type=str, value_type=int, key_serializer="raw"
    ).tumbling(10)
    kept: dict[str, Any] = {}
    currents: list[int] = []

    @app.agent(source)
    async def add(stream):
        async for key, value in stream.items():
            window = kept.setdefault(key, counts[key])  # one WindowSet, reused
            window += value
            currents.append(window.current())

    async def main() -> Any:
        async with app:
            for n, value in enumerate((1, 2, 4)):
                await source.send(key="k", value=value, timestamp=(BASE + 1000 * n) / 1000)
                await wait_for(lambda n=n: len(currents) == n + 1)
                await app.conductor.commit()
            return dict(counts.table.store_partition(0).items())

    stored = run(main())
    assert currents == [1, 3, 7]
    assert stored[window_key(b"k", BASE)] == b"7"
