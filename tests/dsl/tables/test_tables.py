"""Tables: dict-like state with a changelog, recovered after a restart, on every store."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

import streamlog
from streamlog.dsl.tables.table import PartitionNotOwnedError
from tests.dsl.helpers import run, wait_for

WORDS = "the quick brown fox jumps over the lazy dog the end".split()


def word_count_app(app_id, url, store, datadir, seen):
    app = streamlog.App(
        app_id,
        broker=url,
        topic_partitions=3,
        broker_commit_interval=0.2,
        broker_session_timeout=6.0,
        store=store,
        datadir=str(datadir),
    )
    words = app.topic(f"{app_id}-words", key_type=str, value_type=str)
    # raw keys: the changelog assertions below read the key bytes as the words
    counts = app.Table("counts", default=int, key_type=str, value_type=int, key_serializer="raw")

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            counts[word] += 1
            seen.append(word)

    return app, words, counts


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_word_count_table_survives_a_restart(durable_broker_url, app_id, tmp_path, store):
    seen: list[str] = []

    async def first():
        app, words, counts = word_count_app(app_id, durable_broker_url, store, tmp_path / "d", seen)
        async with app:
            for w in WORDS:
                await words.send(key=w, value=w)
            await wait_for(lambda: len(seen) == len(WORDS))
            snapshot = dict(counts.items())
            assert counts["the"] == 3 and counts["nope"] == 0 and "nope" not in counts
        return snapshot

    assert run(first()) == dict(Counter(WORDS))

    async def second():
        app, words, counts = word_count_app(app_id, durable_broker_url, store, tmp_path / "d", seen)
        async with app:
            for w in ["the", "fox", "new"]:
                await words.send(key=w, value=w)
            await wait_for(lambda: len(seen) == len(WORDS) + 3)
            return dict(counts.items()), app.tables["counts"].recovered_records

    after, recovered = run(second())
    assert after == dict(Counter(WORDS + ["the", "fox", "new"]))
    if store == "memory://":
        # one changelog record per changed key per commit: at least one per distinct word
        assert recovered >= len(set(WORDS))
    else:
        assert recovered == 0  # the RocksDB store already reflected the changelog


def test_rocksdb_dir_deleted_recovers_from_the_changelog_alone(app_id, tmp_path):
    url = f"file://{tmp_path / 'log'}"
    seen: list[str] = []

    async def fill():
        app, words, _ = word_count_app(app_id, url, "rocksdb://", tmp_path / "d", seen)
        async with app:
            for w in WORDS * 20:
                await words.send(key=w, value=w)
            await wait_for(lambda: len(seen) == len(WORDS) * 20)

    run(fill())
    shutil.rmtree(tmp_path / "d" / "tables")

    async def reopen():
        app, _, counts = word_count_app(app_id, url, "rocksdb://", tmp_path / "d", seen)
        async with app:
            return dict(counts.items()), app.tables["counts"].recovered_records

    contents, recovered = run(reopen())
    assert contents == {w: n * 20 for w, n in Counter(WORDS).items()}
    assert recovered > 0


def test_table_api_delete_get_len_and_ansitable(app_id, tmp_path):
    app = streamlog.App(app_id, broker="memory://", topic_partitions=1, store="memory://")
    ops = app.topic(f"{app_id}-ops", value_type=list)
    table = app.Table("kv", key_type=str, value_type=dict)
    done = []

    @app.agent(ops)
    async def apply(stream):
        async for op, key, value in stream:
            if op == "set":
                table[key] = value
            else:
                del table[key]
            done.append(op)

    async def main():
        async with app:
            for item in [
                ["set", "a", {"n": 1}],
                ["set", "b", {"n": 2}],
                ["set", "c", {"n": 3}],
                ["del", "b", None],
            ]:
                await ops.send(value=item)
            await wait_for(lambda: len(done) == 4)
            with pytest.raises(KeyError):
                table["b"]
            return (dict(table.items()), len(table), table.get("zz", "dflt"), table.as_ansitable())

    items, size, missing, text = run(main())
    assert items == {"a": {"n": 1}, "c": {"n": 3}}
    assert (size, missing) == (2, "dflt")
    assert text.splitlines() == [
        "kv",
        "+-----+----------+",
        "| KEY | VALUE    |",
        "+-----+----------+",
        "| 'a' | {'n': 1} |",
        "| 'c' | {'n': 3} |",
        "+-----+----------+",
    ]


def test_changelog_holds_the_latest_value_per_key(app_id):
    seen: list[str] = []
    app, words, counts = word_count_app(app_id, "memory://", "memory://", "unused", seen)

    async def main():
        async with app:
            for w in ["a", "b", "a", "a"]:
                await words.send(key=w, value=w)
            await wait_for(lambda: len(seen) == 4)
            await app.conductor.commit()
            from tests.dsl.helpers import read_topic

            records = await read_topic(app, counts.changelog_topic.name, 2)
        return records

    records = run(main())
    latest = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        latest[r.key] = r.value
    assert latest == {b"a": b"3", b"b": b"1"}
    assert counts.changelog_topic.name == f"{app_id}-counts-changelog"


def test_writing_a_key_of_a_partition_not_owned_is_a_clear_error(app_id):
    app = streamlog.App(app_id, broker="memory://", topic_partitions=2, store="memory://")
    table = app.Table("t", key_type=str, value_type=int)

    async def main():
        async with app:
            await table.assign(set())
            table.revoke({0})
            with pytest.raises(PartitionNotOwnedError, match="Re-key the stream with group_by"):
                for key in ("a", "b", "c", "d"):
                    table[key] = 1

    run(main())


def test_an_event_using_a_key_of_a_partition_not_owned_says_how_to_fix_it(app_id):
    # An unkeyed topic counted by word: the event is read from one partition and the key
    # belongs to another, which a second worker owns. The error names the table, the key,
    # both partitions and the fix.
    from streamlog.transport import partition_for_key

    app = streamlog.App(app_id, broker="memory://", topic_partitions=2, store="memory://")
    lines = app.topic(f"{app_id}-lines", value_type=str, value_serializer="raw")
    counts = app.Table("counts", default=int, key_type=str, value_type=int, key_serializer="raw")
    errors: list[str] = []

    @app.agent(lines)
    async def count(stream):
        async for word in stream:
            try:
                counts[word] += 1
            except PartitionNotOwnedError as exc:
                errors.append(str(exc))

    home = partition_for_key(b"the", 2)
    read_from = 1 - home

    async def main():
        async with app:
            await wait_for(lambda: counts.active_partitions == [0, 1])
            counts.revoke({home})  # as if a second worker owned it
            await lines.send(value="the", partition=read_from)
            await wait_for(lambda: errors)

    run(main())
    assert errors == [
        f"table counts: key 'the' belongs to partition {home} of 2, which this worker does "
        f"not own (it owns [{read_from}]); the event using it was read from "
        f"{app_id}-lines[{read_from}]. Re-key the stream with group_by so each key is read "
        "from its own partition, e.g. "
        '`async for word in stream.group_by(lambda word: word, name="word"):`, or send '
        "records keyed by the table's key, e.g. `await words.send(key=word, value=word)`"
    ]


def test_a_table_not_partitioned_like_its_input_is_refused_at_start(app_id):
    from streamlog.dsl.errors import ImproperlyConfigured

    app = streamlog.App(app_id, broker="memory://", topic_partitions=4, store="memory://")
    words = app.topic(f"{app_id}-words", key_type=str, value_type=str, partitions=3)
    # a count given explicitly is kept, and refused when the source disagrees (a default
    # one follows the source: tests/dsl/tables/test_table_partitions.py)
    counts = app.Table("counts", default=int, key_type=str, value_type=int, partitions=4)

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
        f"{count.name} from topic '{app_id}-words', which has 3 partitions: they must be "
        "co-partitioned; give the table partitions=3 or re-key the stream with group_by(..., "
        "partitions=4)"
    )


def test_group_by_with_the_tables_partition_count_satisfies_the_check(app_id):
    app = streamlog.App(app_id, broker="memory://", topic_partitions=4, store="memory://")
    words = app.topic(f"{app_id}-words", value_type=dict, partitions=3)
    counts = app.Table("counts", default=int, key_type=str, value_type=int)
    seen = []

    @app.agent(words)
    async def count(stream):
        async for word in stream.group_by(lambda v: v["w"], name="w", partitions=4):
            counts[word["w"]] += 1
            seen.append(word["w"])

    async def main():
        async with app:
            for w in ["a", "b", "a"]:
                await words.send(value={"w": w})
            await wait_for(lambda: len(seen) == 3)
            return dict(counts.items())

    assert run(main()) == {"a": 2, "b": 1}
