"""Tables declared the Faust way: Faust's codecs (JSON keys and values, the ``__faust`` tag)
and Faust's placement of keys (the partition of the event that wrote them), as
``faust/tables/base.py`` (``_serializer_from_type``, ``partition_for_key``) and
``faust/stores/rocksdb.py`` (``_get``/``_set`` on the event's partition) define them."""

from __future__ import annotations

import itertools

import streamlog
from streamlog.transport import partition_for_key
from tests.dsl.helpers import read_topic, run, wait_for
from tests.serde.faust_models import Account, Point

_ids = itertools.count()


def new_app(name: str, partitions: int = 1) -> streamlog.App:
    return streamlog.App(
        f"ft{next(_ids)}-{name}",
        broker="memory://",
        store="memory://",
        topic_partitions=partitions,
        broker_commit_interval=0.1,
    )


def test_keys_and_values_use_fausts_json_and_records_come_back() -> None:
    app = new_app("codecs")
    source = app.topic(f"{app.conf.id}-in", value_type=dict)
    counts = app.Table("counts", default=int)  # no key_type: Faust's word count declares none
    latest = app.Table("latest")  # nor a value_type: Records come back by their tag
    done: list[int] = []

    @app.agent(source)
    async def update(stream):
        async for event in stream:
            counts[event["word"]] += 1
            counts[event["n"]] += 10
            latest[event["word"]] = Point(event["n"], -event["n"])
            done.append(event["n"])

    async def main():
        async with app:
            for n, word in enumerate(["über", "cat", "cat"], 1):
                await source.send(value={"word": word, "n": n})
            await wait_for(lambda: len(done) == 3)
            live = (dict(counts.items()), dict(latest.items()))
            await app.conductor.commit()
            changelog = await read_topic(app, counts.changelog_topic.name, 5)
            stored = await read_topic(app, latest.changelog_topic.name, 2)
        return live, changelog, stored

    (live_counts, live_latest), changelog, stored = run(main())
    assert live_counts == {"über": 1, "cat": 2, 1: 10, 2: 10, 3: 10}
    assert live_latest == {"über": Point(1, -1), "cat": Point(3, -3)}
    assert all(isinstance(v, Point) for v in live_latest.values())
    # Faust's bytes: JSON keys (ASCII-escaped, as Python's json writes them), JSON values
    final = {r.key: r.value for r in changelog}
    assert final == {b'"\\u00fcber"': b"1", b'"cat"': b"2", b"1": b"10", b"2": b"10", b"3": b"10"}
    assert stored[-1].key == b'"cat"'
    assert stored[-1].value == (b'{"x":3,"y":-3,"__faust":{"ns":"tests.serde.faust_models.Point"}}')


def test_each_event_partition_keeps_its_own_entry_as_in_faust() -> None:
    # Faust: table[k] inside an event reads and writes the event's partition only, so a
    # key seen on two input partitions has two independent entries
    app = new_app("placement", partitions=2)
    source = app.topic(f"{app.conf.id}-in", value_type=str)
    counts = app.Table("counts", default=int)
    seen: list[tuple[int, int]] = []

    @app.agent(source)
    async def count(stream):
        async for event in stream.events():
            counts["total"] += 1
            seen.append((event.message.partition, counts["total"]))

    async def main():
        async with app:
            for partition in (0, 1, 1, 0, 1):
                await source.send(value="x", partition=partition)
            await wait_for(lambda: len(seen) == 5)
            await app.conductor.commit()
            partitions = {
                n: dict(counts.store_partition(n).items()) for n in counts.active_partitions
            }
            outside = counts["total"]  # no event: the key's hash partition is read first
        return partitions, outside

    partitions, outside = run(main())
    assert sorted(seen) == [(0, 1), (0, 2), (1, 1), (1, 2), (1, 3)]
    assert partitions == {0: {b'"total"': b"2"}, 1: {b'"total"': b"3"}}
    home = partition_for_key(b'"total"', 2)
    assert outside == {0: 2, 1: 3}[home]


def test_use_partitioner_places_keys_by_hash() -> None:
    app = new_app("partitioner", partitions=2)
    source = app.topic(f"{app.conf.id}-in", value_type=str)
    counts = app.Table("counts", default=int, use_partitioner=True)
    done: list[str] = []

    @app.agent(source)
    async def count(stream):
        async for word in stream:
            counts[word] += 1
            done.append(word)

    async def main():
        async with app:
            await source.send(value="a", partition=0)
            await source.send(value="a", partition=1)
            await wait_for(lambda: len(done) == 2)
            await app.conductor.commit()
            return {n: dict(counts.store_partition(n).items()) for n in counts.active_partitions}

    partitions = run(main())
    home = partition_for_key(b'"a"', 2)
    assert partitions[home] == {b'"a"': b"2"}
    assert partitions[1 - home] == {}


def test_record_keys_and_bytes_types() -> None:
    app = new_app("types")
    by_account = app.Table("by_account", key_type=Account, value_type=int)
    blobs = app.Table("blobs", key_type=bytes, value_type=bytes)
    # Faust's _serializer_from_type: json for a Record, raw for bytes
    account = Account("a1", "Ann")
    assert by_account.key_bytes(account) == (
        b'{"id":"a1","name":"Ann","active":true,'
        b'"__faust":{"ns":"tests.serde.faust_models.Account"}}'
    )
    assert by_account.schema.loads_key(by_account.key_bytes(account)) == account
    assert blobs.key_bytes(b"\x00k") == b"\x00k"
    assert blobs.schema.value_serializer == "raw"


def test_a_global_table_reads_a_key_from_whichever_partition_wrote_it() -> None:
    # Faust's is_global lookups search every partition: a key written by an event of
    # partition 1 is read by an event of partition 0
    app = new_app("global", partitions=2)
    source = app.topic(f"{app.conf.id}-in", value_type=dict)
    prices = app.GlobalTable("prices")
    reads: list[object] = []

    @app.agent(source)
    async def use(stream):
        async for event in stream:
            if "set" in event:
                prices[event["set"]] = event["price"]
                reads.append("set")
            else:
                reads.append(prices.get(event["get"]))

    async def main():
        async with app:
            await source.send(value={"set": "apple", "price": 3}, partition=1)
            await wait_for(lambda: len(reads) == 1)
            await source.send(value={"get": "pear"}, partition=0)
            await wait_for(lambda: len(reads) == 2)
            await source.send(value={"get": "apple"}, partition=0)
            await wait_for(lambda: len(reads) == 3)

    run(main())
    assert reads == ["set", None, 3]
