"""Recovery over the embedded transport: full and partial replays, broken stores, empty,
missing, recreated, truncated and compacted changelogs, stalls, and progress lines."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from streamlog.state.checkpoint import Checkpoint
from streamlog.state.errors import RecoveryStalledError
from streamlog.state.memory_store import MemoryStorePartition
from streamlog.state.recovery import RecoveryResult, recover_partition
from streamlog.state.rocksdb_store import RocksDBStorePartition
from streamlog.state.stores import StorePartition
from streamlog.transport import TopicPartition
from streamlog.transport.embedded import EmbeddedTransport

from .conftest import StoreFactory, run, started_transport

CHANGELOG = TopicPartition("app-table-changelog", 0)
LOGGER = "streamlog.state.recovery"

Changes = Mapping[bytes, bytes | None]


async def no_sources(offsets: Mapping[TopicPartition, int]) -> None:
    raise AssertionError("these tests commit no source offsets")


async def commit_all(transport: Any, store: StorePartition, commits: list[Changes]) -> int:
    """Apply ``commits`` through checkpoints, one commit each; the records produced."""
    checkpoint = Checkpoint(transport.producer(linger_ms=0), no_sources)
    records = 0
    for changes in commits:
        tx = checkpoint.transaction(store, CHANGELOG)
        for key, value in changes.items():
            if value is None:
                tx.delete(key)
            else:
                tx.set(key, value)
        records += len(changes)
        await checkpoint.commit({})
    return records


def model_of(commits: list[Changes]) -> list[tuple[bytes, bytes]]:
    state: dict[bytes, bytes] = {}
    for changes in commits:
        for key, value in changes.items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
    return sorted(state.items())


def workload(rounds: int = 5, keys: int = 400) -> list[Changes]:
    """Rounds of updates over ``keys`` keys; every round deletes some of the last one's."""
    commits: list[Changes] = []
    for r in range(rounds):
        changes: dict[bytes, bytes | None] = {
            b"key-%05d" % k: b"r%d-%d" % (r, k) for k in range(r, keys, 1 + r % 3)
        }
        if r:
            changes.update({b"key-%05d" % k: None for k in range(0, keys, 7)})
        commits.append(changes)
    return commits


async def recover(transport: Any, store: StorePartition, **options: Any) -> RecoveryResult:
    return await recover_partition(transport.consumer(), store, CHANGELOG, **options)


def test_a_dropped_store_is_rebuilt_from_the_whole_changelog(make_store: StoreFactory) -> None:
    commits = workload()

    async def body() -> None:
        async with started_transport() as transport:
            first = make_store("first")
            records = await commit_all(transport, first, commits)
            assert list(first.items()) == model_of(commits)
            first.destroy()
            fresh = make_store("fresh")
            result = await recover(transport, fresh, batch_records=500)
            assert list(fresh.items()) == model_of(commits)
            assert fresh.changelog_offset() == records - 1
            assert result == RecoveryResult(
                changelog=CHANGELOG,
                start_offset=0,
                end_offset=records,
                records=records,
                skipped=0,
                batches=-(-records // 500),
                full=True,
                wiped=None,
                elapsed_ms=result.elapsed_ms,
            )
            # again: nothing to do
            again = await recover(transport, fresh)
            assert (again.start_offset, again.end_offset, again.records) == (records, records, 0)
            assert list(fresh.items()) == model_of(commits)

    run(body())


def test_a_store_behind_its_changelog_replays_only_the_rest(make_store: StoreFactory) -> None:
    commits = workload(rounds=6)

    async def body() -> None:
        async with started_transport() as transport:
            store = make_store("behind")
            done = await commit_all(transport, store, commits[:3])
            if make_store.persistent:
                store.close()
            # another owner of the partition carried on (its own store, same changelog)
            rest = await commit_all(transport, MemoryStorePartition(), commits[3:])
            if make_store.persistent:
                store = make_store("behind")
            assert store.changelog_offset() == done - 1
            assert list(store.items()) == model_of(commits[:3])
            result = await recover(transport, store)
            assert (result.start_offset, result.end_offset) == (done, done + rest)
            assert (result.records, result.full, result.wiped) == (rest, False, None)
            assert list(store.items()) == model_of(commits)
            assert store.changelog_offset() == done + rest - 1

    run(body())


def test_a_corrupt_rocksdb_directory_is_rebuilt_in_full(tmp_path: Path) -> None:
    commits = workload(rounds=3)

    async def body() -> None:
        async with started_transport() as transport:
            store = RocksDBStorePartition(str(tmp_path / "p"))
            records = await commit_all(transport, store, commits)
            store.close()
            (tmp_path / "p" / "CURRENT").write_bytes(b"\x00garbage")
            store = RocksDBStorePartition(str(tmp_path / "p"))
            assert store.wipe_reason is not None
            result = await recover(transport, store)
            assert (result.start_offset, result.records, result.full) == (0, records, True)
            assert result.wiped == store.wipe_reason
            assert list(store.items()) == model_of(commits)
            store.close()

    run(body())


def test_an_empty_changelog_recovers_nothing_at_once(store: StorePartition) -> None:
    async def body() -> None:
        async with started_transport() as transport:
            await transport.admin().create_topic(CHANGELOG.topic, 1)
            result = await recover(transport, store)
            assert result == RecoveryResult(
                CHANGELOG, 0, 0, 0, 0, 0, True, None, elapsed_ms=result.elapsed_ms
            )
            assert store.is_empty()

    run(body())


def test_a_missing_changelog_empties_the_store(store: StorePartition, caplog) -> None:
    async def body() -> RecoveryResult:
        async with started_transport() as transport:
            store.write({b"stale": b"1"}, 41)
            return await recover(transport, store)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        result = run(body())
    reason = (
        "the store is ahead of its changelog: it reflects changelog records up to offset 41, "
        "but app-table-changelog-0 is empty (no records, or no such topic). The changelog was "
        "deleted or recreated after the store was written (for example the log's directory "
        "was removed and the table stores were kept), so the store no longer matches it"
    )
    assert (result.records, result.full, result.wiped) == (0, True, reason)
    assert store.is_empty() and store.changelog_offset() is None
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        "table store for app-table-changelog-0 discarded and rebuilt from its changelog "
        f"because {reason}"
    ]


def test_a_recreated_shorter_changelog_is_replayed_into_a_wiped_store(
    store: StorePartition,
) -> None:
    async def body() -> None:
        async with started_transport() as transport:
            await commit_all(transport, store, workload(rounds=2, keys=50))
            assert store.changelog_offset() == 78  # 50 + 29 records
            admin = transport.admin()
            await admin.delete_topic(CHANGELOG.topic)
            await admin.create_topic(CHANGELOG.topic, 1)
            renewed: list[Changes] = [{b"a": b"1", b"b": b"2"}, {b"a": None, b"c": b"3"}]
            await commit_all(transport, MemoryStorePartition(), renewed)
            result = await recover(transport, store)
            assert result.wiped is not None
            assert (
                "it reflects changelog records up to offset 78, but app-table-changelog-0 "
                "holds records only up to offset 3. The changelog was deleted or recreated"
            ) in result.wiped
            assert (result.start_offset, result.records, result.full) == (0, 4, True)
            assert list(store.items()) == [(b"b", b"2"), (b"c", b"3")]
            assert store.changelog_offset() == 3

    run(body())


def test_keys_without_an_offset_are_wiped_before_a_full_replay(store: StorePartition) -> None:
    async def body() -> None:
        async with started_transport() as transport:
            await commit_all(transport, MemoryStorePartition(), [{b"a": b"1"}])
            store.write({b"leftover": b"x"}, None)
            result = await recover(transport, store)
            assert result.wiped == (
                "the store holds keys but records no changelog offset, so which changelog "
                "records it reflects is unknown"
            )
            assert list(store.items()) == [(b"a", b"1")]

    run(body())


def test_an_offset_below_the_log_start_replays_from_the_start(
    store: StorePartition, caplog
) -> None:
    commits: list[Changes] = [{b"k%d" % i: b"%d" % i} for i in range(10)]

    async def body() -> RecoveryResult:
        async with started_transport() as transport:
            await commit_all(transport, MemoryStorePartition(), commits)
            store.write(dict(model_of(commits[:3])), 2)
            assert isinstance(transport, EmbeddedTransport)
            # what DeleteRecords does: the log now starts at offset 6
            transport.manager.partition(*CHANGELOG).delete_records_before(6)
            return await recover(transport, store)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        result = run(body())
    assert (result.start_offset, result.end_offset, result.records) == (6, 10, 4)
    assert list(store.items()) == [(b"k%d" % i, b"%d" % i) for i in (0, 1, 2, 6, 7, 8, 9)]
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        "changelog app-table-changelog-0 starts at 6, after the store's offset 2: records "
        "in between were deleted; replaying from 6"
    ]


def test_tombstones_delete_and_keyless_records_are_ignored(store: StorePartition) -> None:
    async def body() -> None:
        async with started_transport() as transport:
            producer = transport.producer(linger_ms=0)
            store.write({b"x": b"old", b"y": b"old"}, 0)
            await producer.send_and_wait(CHANGELOG.topic, b"old", key=b"x", partition=0)
            await producer.send_and_wait(CHANGELOG.topic, None, key=b"x", partition=0)
            await producer.send_and_wait(CHANGELOG.topic, b"no key", partition=0)
            await producer.send_and_wait(CHANGELOG.topic, b"new", key=b"y", partition=0)
            result = await recover(transport, store)
            assert (result.start_offset, result.records, result.skipped) == (1, 2, 1)
            assert list(store.items()) == [(b"y", b"new")]
            assert store.changelog_offset() == 3

    run(body())


def test_a_compacted_changelog_rebuilds_the_same_table(store: StorePartition) -> None:
    commits = workload(rounds=8, keys=300)

    async def body() -> None:
        transport = EmbeddedTransport("memory://", maintenance_interval_ms=3_600_000)
        async with transport:
            await transport.admin().create_topic(
                CHANGELOG.topic,
                1,
                {
                    "cleanup.policy": "compact",
                    "segment.bytes": "4096",
                    "min.cleanable.dirty.ratio": "0.01",
                    "delete.retention.ms": "0",
                },
            )
            records = await commit_all(transport, MemoryStorePartition(), commits)
            transport.manager.run_maintenance()
            plog = transport.manager.partition(*CHANGELOG)
            left = await count_records(transport, records)
            assert left < records  # compaction removed superseded records
            assert plog.log_end_offset == records
            result = await recover(transport, store)
            assert result.records == left
            assert list(store.items()) == model_of(commits)
            assert store.changelog_offset() is not None

    run(body())


async def count_records(transport: Any, end: int) -> int:
    """Records left in the changelog (compaction leaves gaps in the offsets)."""
    consumer = transport.consumer()
    consumer.assign([CHANGELOG])
    consumer.seek(CHANGELOG, 0)
    count = 0
    for _ in range(1000):
        count += len((await consumer.getmany(timeout_ms=100)).get(CHANGELOG, []))
        if await consumer.position(CHANGELOG) >= end:
            return count
    raise AssertionError("the changelog was not read to its end")


def test_recovery_gives_up_when_the_changelog_stops_answering() -> None:
    async def body() -> None:
        async with started_transport() as transport:
            producer = transport.producer()
            for i in range(3000):  # 3 MB: more than one 1 MiB read of the consumer
                await producer.send(CHANGELOG.topic, b"v" * 1000, key=b"k%d" % i, partition=0)
            await producer.flush()
            store = MemoryStorePartition()

            async def delete_after_the_first_batch() -> None:
                while store.changelog_offset() is None:
                    await asyncio.sleep(0)
                await transport.admin().delete_topic(CHANGELOG.topic)

            deleter = asyncio.create_task(delete_after_the_first_batch())
            with pytest.raises(RecoveryStalledError, match=r"no progress for \d+ ms at offset"):
                await recover(
                    transport, store, batch_records=100, fetch_timeout_ms=20, idle_timeout_ms=300
                )
            await deleter
            applied = store.changelog_offset()
            assert applied is not None and 100 <= applied < 2999
            assert len(list(store.items())) == applied + 1  # what was applied stays

    run(body())


class SteppingClock:
    """A fake clock that moves ``step_ms`` each time it is read."""

    def __init__(self, step_ms: int) -> None:
        self.now = 0
        self.step_ms = step_ms

    def monotonic_ms(self) -> int:
        now = self.now
        self.now += self.step_ms
        return now

    def time_ms(self) -> int:
        return self.monotonic_ms()


def test_progress_is_logged_by_the_clock_then_a_final_line(caplog) -> None:
    async def body() -> RecoveryResult:
        async with started_transport() as transport:
            producer = transport.producer()
            for i in range(1000):
                await producer.send(CHANGELOG.topic, b"v", key=b"k%d" % i, partition=0)
            await producer.flush()
            return await recover(
                transport, MemoryStorePartition(), clock=SteppingClock(250), batch_records=100
            )

    with caplog.at_level(logging.INFO, logger=LOGGER):
        result = run(body())
    assert (result.records, result.batches, result.elapsed_ms) == (1000, 10, 3000)
    assert result.rate == pytest.approx(333.33, abs=0.01)
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        "recovering app-table-changelog-0: offsets 0 to 1000 (1000) into an empty store",
        "recovering app-table-changelog-0: 30% (offset 300 of 1000, 300 records, 300 records/s)",
        "recovering app-table-changelog-0: 70% (offset 700 of 1000, 700 records, 350 records/s)",
        "recovered app-table-changelog-0: 1000 records in 3.00 s (333 records/s)",
    ]
