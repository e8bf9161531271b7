"""``streamlog migrate``'s local parts, without a second log: which topics an app owns,
the refusals, and the table stores' changelog offsets rewritten for the target.

The offset translation is fed a function keeping the ``OffsetMap.translate`` contract
over a given copy (``copy_translate``), so each case states its source and target
offsets; the end-to-end tests (``test_migrate.py``) run the real mirror. A rewritten
store is then recovered from a real changelog (memory:// log) laid out as the target's:
it must end equal to the whole table, having replayed exactly the records it lacked.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from streamlog.cli.app_loader import load_app
from streamlog.mirror import Mirror, MirrorOptions
from streamlog.mirror.errors import AppRunningError, MigrationRefusedError
from streamlog.mirror.footprint import AppFootprint, TableFootprint, app_footprint
from streamlog.mirror.migrate import check_group_idle, check_target_fresh, migrate, open_log
from streamlog.mirror.table_stores import (
    BEFORE_MIGRATE_SUFFIX,
    StoreLocations,
    check_stores_movable,
    move_stores,
    rewrite_store_offsets,
    store_locations,
    store_offset_on_target,
)
from streamlog.state.recovery import recover_partition
from streamlog.state.rocksdb_store import RocksDBStorePartition
from streamlog.transport import TopicPartition
from streamlog.transport.embedded import EmbeddedTransport

APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps")
CHANGELOG = "app-counts-changelog"
TP = TopicPartition(CHANGELOG, 0)

Translate = Callable[[TopicPartition, int], "int | None"]

# An exactly-once changelog on the source: data records and commit markers (M).
#   source offset  0  1  2  3M 4  5  6M
#   target offset  0  1  2     3  4        (markers are not copied; position 7, next 5)
EOS_COPIED = {0: 0, 1: 1, 2: 2, 4: 3, 5: 4}
EOS_POSITION = 7


def copy_translate(copied: dict[int, int], position: int, *, between: str = "none") -> Translate:
    """``OffsetMap.translate`` (mirror_api.md) for one partition ``TP`` whose records at
    the source offsets of ``copied`` went to its target offsets, up to source ``position``:
    the target offset of the first copied record at or after ``c``; the target's next
    offset when ``c`` is the position; None beyond it or for another partition.

    ``between``: the answer for a ``c`` past the last copied record but before the
    position (only markers there), which the contract leaves open: ``"none"`` or
    ``"next"`` (the target's next offset). The rewrite must be right either way."""
    target_next = max(copied.values()) + 1 if copied else 0

    def translate(tp: TopicPartition, c: int) -> int | None:
        if tp != TP:
            return None
        later = [target for source, target in sorted(copied.items()) if source >= c]
        if later:
            return later[0]
        if c == position:
            return target_next
        if c < position and between == "next":
            return target_next
        return None

    return translate


# ---------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("between", ["none", "next"])
@pytest.mark.parametrize(
    ("applied", "expected"),
    [
        (0, 0),
        (2, 2),  # followed by a marker: resume at source 4 = target 3
        (4, 3),
        (5, 4),  # the last record, then a marker: the position is past it
    ],
)
def test_a_store_offset_names_the_same_record_on_the_target(
    applied: int, expected: int, between: str
) -> None:
    translate = copy_translate(EOS_COPIED, EOS_POSITION, between=between)
    assert store_offset_on_target(translate, TP, applied) == expected


def test_a_compacted_away_record_resumes_at_the_next_one() -> None:
    # source 0..9 with 3..6 compacted away before the copy: a store that applied 4 (then
    # compacted) must resume at source 7, target 3
    copied = {0: 0, 1: 1, 2: 2, 7: 3, 8: 4, 9: 5}
    assert store_offset_on_target(copy_translate(copied, 10), TP, 4) == 2


def test_an_offset_that_was_not_copied_does_not_translate() -> None:
    assert store_offset_on_target(copy_translate(EOS_COPIED, EOS_POSITION), TP, 9) is None
    other = TopicPartition(CHANGELOG, 1)
    assert store_offset_on_target(copy_translate(EOS_COPIED, EOS_POSITION), other, 2) is None


# ---------------------------------------------------------------------------- stores

FOOTPRINT = AppFootprint(
    "app",
    "app",
    (CHANGELOG,),
    (TableFootprint("counts", CHANGELOG, "rocksdb"), TableFootprint("cache", "c", "memory")),
    "tables",
)
# the table's changes, in changelog order: key -> value (the target changelog's records)
CHANGES = [(b"a", b"1"), (b"b", b"1"), (b"a", b"2"), (b"c", b"1"), (b"b", b"2")]


def write_store(path: str, applied_records: int, source_offset: int | None) -> None:
    store = RocksDBStorePartition(path)
    try:
        store.write(dict(CHANGES[:applied_records]), source_offset)
    finally:
        store.close()


def stored(path: str) -> tuple[int | None, dict[bytes, bytes]]:
    store = RocksDBStorePartition(path)
    try:
        return store.changelog_offset(), dict(store.items())
    finally:
        store.close()


async def recover_from_target(path: str) -> tuple[int, int, dict[bytes, bytes]]:
    """Replay a changelog laid out as on the target (CHANGES at offsets 0..4) into the
    store at ``path``: (first offset replayed, records replayed, contents)."""
    transport = EmbeddedTransport("memory://")
    await transport.start()
    try:
        producer = transport.producer(linger_ms=0)
        for key, value in CHANGES:
            await (await producer.send(CHANGELOG, value, key=key, partition=0))
        await producer.close()
        consumer = transport.consumer()
        store = RocksDBStorePartition(path)
        try:
            result = await recover_partition(consumer, store, TP, idle_timeout_ms=5000)
            return result.start_offset, result.records, dict(store.items())
        finally:
            store.close()
            await consumer.close()
    finally:
        await transport.close()


def test_rewritten_stores_recover_exactly_the_records_they_lack(tmp_path: str) -> None:
    tables = os.path.join(tmp_path, "tables")
    # partition 0: applied source 0, 1, 2 (then marker 3); 1: all (source 5, marker 6);
    # 2: nothing recorded; 3: an offset the copy never reached
    os.makedirs(os.path.join(tables, "counts"))
    write_store(os.path.join(tables, "counts", "0"), 3, 2)
    write_store(os.path.join(tables, "counts", "1"), 5, 5)
    write_store(os.path.join(tables, "counts", "2"), 0, None)
    write_store(os.path.join(tables, "counts", "3"), 5, 42)
    translate = copy_translate(EOS_COPIED, EOS_POSITION)
    # partitions 1..3 are other changelog partitions for translate: give them the same map
    by_partition: Translate = lambda tp, c: translate(TP, c) if tp.partition < 3 else None  # noqa: E731

    rewritten = rewrite_store_offsets(tables, FOOTPRINT, by_partition)

    assert [(r.table, r.partition, r.source_offset, r.target_offset) for r in rewritten] == [
        ("counts", 0, 2, 2),
        ("counts", 1, 5, 4),
        ("counts", 2, None, None),
        ("counts", 3, 42, None),
    ]
    assert [r.wiped is not None for r in rewritten] == [False, False, False, True]
    assert stored(os.path.join(tables, "counts", "3")) == (None, {})  # wiped
    whole = dict(CHANGES)
    # partition 0 lacks target records 3 and 4; partition 1 lacks nothing
    assert asyncio.run(recover_from_target(os.path.join(tables, "counts", "0"))) == (3, 2, whole)
    assert asyncio.run(recover_from_target(os.path.join(tables, "counts", "1"))) == (5, 0, whole)
    # (the next test shows partition 1 kept at its source offset going wrong)


def test_an_unrewritten_eos_store_would_be_wrong_on_the_target(tmp_path: str) -> None:
    """The check above can fail: a store keeping its source offset 5 looks ahead of the
    5-record target changelog (recovery wipes it and replays everything)."""
    path = os.path.join(tmp_path, "p")
    write_store(path, 5, 5)
    start, records, contents = asyncio.run(recover_from_target(path))
    assert (start, records) == (0, 5)  # replayed from scratch, not 0 records
    assert contents == dict(CHANGES)


def test_stores_move_to_the_target_datadir_and_the_source_stays(tmp_path: str) -> None:
    where = StoreLocations(
        os.path.join(tmp_path, "src", "tables"), os.path.join(tmp_path, "dst", "tables")
    )
    write_store(os.path.join(where.source, "counts", "0"), 3, 2)
    os.makedirs(os.path.join(where.source, "other"))  # not the app's: not moved
    check_stores_movable(FOOTPRINT, where)

    rewritten = move_stores(FOOTPRINT, where, copy_translate(EOS_COPIED, EOS_POSITION))

    assert [(r.source_offset, r.target_offset) for r in rewritten] == [(2, 2)]
    assert stored(os.path.join(where.target, "counts", "0")) == (2, dict(CHANGES[:3]))
    assert stored(os.path.join(where.source, "counts", "0")) == (2, dict(CHANGES[:3]))
    assert sorted(os.listdir(where.target)) == ["counts"]
    assert not os.path.exists(where.target + ".migrating")
    with pytest.raises(MigrationRefusedError, match="already exist"):
        check_stores_movable(FOOTPRINT, where)


def test_a_staging_copy_left_by_an_interrupted_run_is_replaced(tmp_path: str) -> None:
    where = StoreLocations(
        os.path.join(tmp_path, "src", "tables"), os.path.join(tmp_path, "dst", "tables")
    )
    write_store(os.path.join(where.source, "counts", "0"), 5, 5)
    staging = where.target + ".migrating"
    write_store(os.path.join(staging, "counts", "0"), 1, 0)  # half a copy, half rewritten
    check_stores_movable(FOOTPRINT, where)

    move_stores(FOOTPRINT, where, copy_translate(EOS_COPIED, EOS_POSITION))

    assert stored(os.path.join(where.target, "counts", "0")) == (4, dict(CHANGES))
    assert not os.path.exists(staging)


def test_a_shared_datadir_keeps_the_stores_as_they_were_aside(tmp_path: str) -> None:
    tables = os.path.join(tmp_path, "tables")
    where = StoreLocations(tables, tables)
    write_store(os.path.join(tables, "counts", "0"), 5, 5)

    move_stores(FOOTPRINT, where, copy_translate(EOS_COPIED, EOS_POSITION))

    assert stored(os.path.join(tables, "counts", "0")) == (4, dict(CHANGES))
    kept = tables + BEFORE_MIGRATE_SUFFIX
    assert stored(os.path.join(kept, "counts", "0")) == (5, dict(CHANGES))
    with pytest.raises(MigrationRefusedError, match="migrated once already"):
        check_stores_movable(FOOTPRINT, where)


# ---------------------------------------------------------------------------- the app


def test_the_footprint_holds_every_topic_the_app_owns() -> None:
    app = load_app(os.path.join(APPS, "shop.py"))
    footprint = app_footprint(app)
    assert footprint.group_id == "shop"
    assert footprint.mirror_name == "migrate-shop"
    assert footprint.topics == (
        "shop-__assignor-__leader",
        "shop-bill-dlq",
        "shop-items-changelog",
        "shop-orders",
        "shop-receipts",
        "shop-stock-item-repartition",
        "shop-totals-changelog",
    )
    assert footprint.tables == (
        TableFootprint("items", "shop-items-changelog", "memory"),
        TableFootprint("totals", "shop-totals-changelog", "rocksdb"),
    )


def test_store_locations_follow_the_broker(tmp_path: str) -> None:
    app = load_app(os.path.join(APPS, "shop.py"))
    before = (app.conf.broker, app.conf.datadir)
    where = store_locations(app, f"file://{tmp_path}/log", "kafka://127.0.0.1:9")
    assert where == StoreLocations(
        os.path.join(str(tmp_path), "log", "state", "shop", "tables"),
        os.path.join("shop-data", "tables"),
    )
    assert (app.conf.broker, app.conf.datadir) == before
    app.conf.datadir = str(tmp_path)  # set (the worker's --data-dir): the same on both logs
    try:
        where = store_locations(app, f"file://{tmp_path}/log", "kafka://127.0.0.1:9")
        assert where.shared and where.source == os.path.join(str(tmp_path), "tables")
    finally:
        app.conf.datadir = None


# ---------------------------------------------------------------------------- refusals


def test_a_file_log_held_by_another_process_is_refused(tmp_path: str) -> None:
    async def run() -> None:
        holder = EmbeddedTransport(f"file://{tmp_path}")
        await holder.start()  # holds the directory's lock, as a worker does
        try:
            with pytest.raises(AppRunningError, match="is in use by process"):
                await open_log(f"file://{tmp_path}", None, source=True)
        finally:
            await holder.close()
        transport = await open_log(f"file://{tmp_path}", None, source=True)
        await transport.close()

    asyncio.run(run())


def test_one_log_on_both_sides_is_refused(tmp_path: str) -> None:
    footprint = AppFootprint("app", "app", ("t",), (), "tables")
    where = StoreLocations(str(tmp_path), str(tmp_path))
    for target in (f"file://{tmp_path}", f"file://{tmp_path}/./"):
        with pytest.raises(MigrationRefusedError, match="the source and the target are both"):
            asyncio.run(migrate(footprint, f"file://{tmp_path}", target, where))


def test_a_missing_source_directory_is_refused(tmp_path: str) -> None:
    with pytest.raises(MigrationRefusedError, match="no log there"):
        asyncio.run(open_log(f"file://{tmp_path}/nothing", None, source=True))
    assert not os.path.exists(os.path.join(tmp_path, "nothing"))


def test_a_group_with_members_is_refused(tmp_path: str) -> None:
    async def run() -> None:
        transport = EmbeddedTransport(f"file://{tmp_path}")
        await transport.start()
        try:
            admin = transport.admin()
            await admin.create_topic("t", 1)
            await admin.close()
            await check_group_idle(transport, "app", "here")  # no such group yet: idle
            consumer = transport.consumer(group_id="app")
            await consumer.subscribe(["t"])
            await consumer.getmany(timeout_ms=100)
            try:
                with pytest.raises(AppRunningError, match="group app has 1 active member"):
                    await check_group_idle(transport, "app", "here")
            finally:
                await consumer.close()
            await check_group_idle(transport, "app", "here")
        finally:
            await transport.close()

    asyncio.run(run())


def test_a_target_topic_holding_records_of_its_own_is_refused(tmp_path: str) -> None:
    async def send(transport: EmbeddedTransport, topic: str, values: list[bytes]) -> None:
        producer = transport.producer(linger_ms=0)
        for value in values:
            await (await producer.send(topic, value, partition=0))
        await producer.close()

    async def run() -> None:
        source = EmbeddedTransport(f"file://{tmp_path}/source")
        target = EmbeddedTransport(f"file://{tmp_path}/target")
        await source.start()
        await target.start()
        try:
            for transport in (source, target):
                admin = transport.admin()
                await admin.create_topic("events", 1)
                await admin.create_topic("empty", 1)
                await admin.close()
            await send(source, "events", [b"1", b"2"])
            # empty topics on the target (a worker started there created them): fine
            await check_target_fresh(target, ["events", "empty", "absent"], "migrate-app")
            # this migration's own earlier run: resumed, not refused
            options = MirrorOptions(topics=["events"], once=True, name="migrate-app")
            await Mirror(source, target, options).run()
            await check_target_fresh(target, ["events", "empty"], "migrate-app")
            # records another writer put there
            await send(target, "empty", [b"x"])
            with pytest.raises(MigrationRefusedError, match=r"topic\(s\) empty already hold"):
                await check_target_fresh(target, ["events", "empty"], "migrate-app")
            # and another mirror's records are not this migration's
            with pytest.raises(MigrationRefusedError, match=r"topic\(s\) events already hold"):
                await check_target_fresh(target, ["events"], "migrate-other")
        finally:
            await source.close()
            await target.close()

    asyncio.run(run())
