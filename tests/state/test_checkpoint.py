"""The commit sequence over the embedded transport: its order, and what a failure at each
step leaves behind (never a committed source offset)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from streamlog.state.checkpoint import Checkpoint
from streamlog.state.errors import (
    CheckpointClosedError,
    CheckpointError,
    OffsetsNotCommittedError,
)
from streamlog.state.memory_store import MemoryStorePartition
from streamlog.state.stores import StorePartition
from streamlog.state.transaction import TransactionState
from streamlog.transport import TopicPartition, open_transport
from streamlog.transport.errors import GroupError, RecordTooLargeError, UnknownTopicError

from .conftest import read_topic, run

SOURCE = TopicPartition("orders", 0)
OUTPUT = TopicPartition("totals", 0)
CHANGELOG = TopicPartition("app-totals-changelog", 0)
GROUP = "app"


class Harness:
    """A memory:// transport with a producer, a group consumer whose ``commit`` is the
    checkpoint's, and a record of what was durable when step 4 ran."""

    def __init__(self, transport: Any, store: StorePartition) -> None:
        self.transport = transport
        self.store = store
        self.producer = transport.producer(linger_ms=5)
        self.consumer = transport.consumer(group_id=GROUP)
        self.at_commit: list[dict[str, Any]] = []

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        manager = self.transport.manager
        self.at_commit.append(
            {
                "offsets": dict(offsets),
                "store_offset": self.store.changelog_offset(),
                "store": dict(self.store.items()),
                "changelog_end": manager.partition(*CHANGELOG).log_end_offset,
                "output_end": manager.partition(*OUTPUT).log_end_offset,
            }
        )
        await self.consumer.commit(offsets)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.producer, self.commit)

    async def committed(self) -> int | None:
        return await self.consumer.committed(SOURCE)


async def started(store: StorePartition) -> tuple[Any, Harness]:
    transport = open_transport("memory://")
    await transport.start()
    admin = transport.admin()
    for tp in (SOURCE, OUTPUT, CHANGELOG):
        await admin.create_topic(tp.topic, 1)
    return transport, Harness(transport, store)


def test_commit_makes_changelog_outputs_and_store_durable_before_offsets(
    store: StorePartition,
) -> None:
    async def body() -> None:
        transport, h = await started(store)
        try:
            checkpoint = h.checkpoint()
            tx = checkpoint.transaction(store, CHANGELOG)
            assert checkpoint.transaction(store, CHANGELOG) is tx
            tx.set(b"alice", b"3")
            tx.set(b"bob", b"5")
            await checkpoint.send(OUTPUT.topic, b"3", key=b"alice")
            await checkpoint.send(OUTPUT.topic, b"5", key=b"bob")
            assert not checkpoint.empty
            await checkpoint.commit({SOURCE: 2})

            # at step 4, everything before it was already durable
            assert h.at_commit == [
                {
                    "offsets": {SOURCE: 2},
                    "store_offset": 1,
                    "store": {b"alice": b"3", b"bob": b"5"},
                    "changelog_end": 2,
                    "output_end": 2,
                }
            ]
            assert await h.committed() == 2
            assert tx.state is TransactionState.FLUSHED

            # (5) fresh transactions: the next commit starts from what is stored
            assert checkpoint.empty
            fresh = checkpoint.transaction(store, CHANGELOG)
            assert fresh is not tx and fresh.state is TransactionState.OPEN
            assert fresh.get(b"alice") == b"3"
            fresh.set(b"alice", b"4")
            fresh.delete(b"bob")
            await checkpoint.commit({SOURCE: 3})
            assert h.at_commit[1]["store_offset"] == 3
            assert h.at_commit[1]["store"] == {b"alice": b"4"}
            assert await h.committed() == 3
            changelog = await read_topic(transport.consumer(), CHANGELOG, 4)
            assert [(r.key, r.value) for r in changelog] == [
                (b"alice", b"3"),
                (b"bob", b"5"),
                (b"alice", b"4"),
                (b"bob", None),
            ]
        finally:
            await transport.close()

    run(body())


def test_offsets_alone_are_committed_and_an_empty_commit_is_harmless(
    store: StorePartition,
) -> None:
    async def body() -> None:
        transport, h = await started(store)
        try:
            checkpoint = h.checkpoint()
            assert checkpoint.empty
            await checkpoint.commit({})
            assert h.at_commit == []
            await checkpoint.commit({SOURCE: 7})
            assert await h.committed() == 7
            assert store.changelog_offset() is None
        finally:
            await transport.close()

    run(body())


async def first_commit(h: Harness, checkpoint: Checkpoint) -> None:
    """A successful commit: alice=1 at changelog offset 0, source offset 5."""
    checkpoint.transaction(h.store, CHANGELOG).set(b"alice", b"1")
    await checkpoint.commit({SOURCE: 5})
    assert await h.committed() == 5


async def assert_nothing_more_committed(h: Harness, checkpoint: Checkpoint) -> None:
    assert await h.committed() == 5
    assert checkpoint.closed
    with pytest.raises(CheckpointClosedError):
        checkpoint.transaction(h.store, CHANGELOG)
    with pytest.raises(CheckpointClosedError):
        await checkpoint.commit({SOURCE: 9})
    assert await h.committed() == 5


def test_a_failure_at_step_1_commits_nothing(store: StorePartition) -> None:
    async def body() -> None:
        transport, h = await started(store)
        try:
            checkpoint = h.checkpoint()
            await first_commit(h, checkpoint)
            checkpoint.transaction(store, CHANGELOG).set(b"alice", b"2")
            # the changelog has one partition: sending to partition 3 fails at once
            elsewhere = MemoryStorePartition()
            checkpoint.transaction(elsewhere, TopicPartition(CHANGELOG.topic, 3)).set(b"x", b"1")
            with pytest.raises(CheckpointError) as caught:
                await checkpoint.commit({SOURCE: 10})
            assert caught.value.step == 1
            assert isinstance(caught.value.__cause__, UnknownTopicError)
            assert list(store.items()) == [(b"alice", b"1")]
            assert store.changelog_offset() == 0
            await assert_nothing_more_committed(h, checkpoint)
        finally:
            await transport.close()

    run(body())


def test_a_rejected_output_fails_step_2_and_commits_nothing(store: StorePartition) -> None:
    async def body() -> None:
        transport, h = await started(store)
        try:
            await transport.admin().create_topic("small", 1, {"max.message.bytes": "200"})
            checkpoint = h.checkpoint()
            await first_commit(h, checkpoint)
            checkpoint.transaction(store, CHANGELOG).set(b"alice", b"2")
            await checkpoint.send("small", b"x" * 1000)  # too large for the topic
            with pytest.raises(CheckpointError) as caught:
                await checkpoint.commit({SOURCE: 10})
            assert caught.value.step == 2
            assert isinstance(caught.value.__cause__, RecordTooLargeError)
            # the changelog record was acknowledged, the store was not written
            assert transport.manager.partition(*CHANGELOG).log_end_offset == 2
            assert list(store.items()) == [(b"alice", b"1")]
            assert store.changelog_offset() == 0
            await assert_nothing_more_committed(h, checkpoint)
        finally:
            await transport.close()

    run(body())


def test_a_rejected_changelog_record_fails_step_2_and_commits_nothing(
    store: StorePartition,
) -> None:
    async def body() -> None:
        transport, h = await started(store)
        try:
            await transport.admin().create_topic(
                "app-big-changelog", 1, {"max.message.bytes": "200"}
            )
            checkpoint = h.checkpoint()
            await first_commit(h, checkpoint)
            big = MemoryStorePartition()
            checkpoint.transaction(big, TopicPartition("app-big-changelog", 0)).set(
                b"k", b"v" * 1000
            )
            checkpoint.transaction(store, CHANGELOG).set(b"alice", b"2")
            with pytest.raises(CheckpointError) as caught:
                await checkpoint.commit({SOURCE: 10})
            assert caught.value.step == 2
            assert isinstance(caught.value.__cause__, RecordTooLargeError)
            assert list(big.items()) == []
            assert list(store.items()) == [(b"alice", b"1")]
            await assert_nothing_more_committed(h, checkpoint)
        finally:
            await transport.close()

    run(body())


def test_a_failed_offset_commit_is_step_4_and_leaves_the_checkpoint_usable(
    store: StorePartition,
) -> None:
    """A refused offset commit (a rebalance, a coordinator that restarted) loses nothing:
    steps 1-3 made the work durable, and the next commit covers the offsets."""

    async def body() -> None:
        transport, h = await started(store)
        try:
            groupless = transport.consumer()  # commit() needs a group: it raises
            refusals = [groupless.commit]

            async def commit(offsets: Mapping[TopicPartition, int]) -> None:
                if refusals:
                    await refusals.pop()(offsets)
                await h.commit(offsets)

            checkpoint = Checkpoint(h.producer, commit)
            checkpoint.transaction(store, CHANGELOG).set(b"alice", b"1")
            with pytest.raises(OffsetsNotCommittedError) as caught:
                await checkpoint.commit({SOURCE: 10})
            assert isinstance(caught.value, CheckpointError)
            assert caught.value.step == 4
            assert isinstance(caught.value.__cause__, GroupError)
            assert str(caught.value).startswith("commit failed at step 4: GroupError: ")
            # steps 1-3 happened: the changelog and the store have the change
            assert list(store.items()) == [(b"alice", b"1")]
            assert store.changelog_offset() == 0
            assert await h.committed() is None
            assert not checkpoint.closed
            # the next commit goes through, with the work since
            checkpoint.transaction(store, CHANGELOG).set(b"bob", b"2")
            await checkpoint.commit({SOURCE: 12})
            assert await h.committed() == 12
            assert list(store.items()) == [(b"alice", b"1"), (b"bob", b"2")]
            assert store.changelog_offset() == 1
        finally:
            await transport.close()

    run(body())


def test_discard_drops_the_work_and_closes(store: StorePartition) -> None:
    async def body() -> None:
        transport, h = await started(store)
        try:
            checkpoint = h.checkpoint()
            tx = checkpoint.transaction(store, CHANGELOG)
            tx.set(b"a", b"1")
            checkpoint.discard()
            assert tx.state is TransactionState.FAILED
            assert list(store.items()) == []
            with pytest.raises(CheckpointClosedError, match="discarded"):
                await checkpoint.commit({SOURCE: 1})
            assert await h.committed() is None
            assert transport.manager.partition(*CHANGELOG).log_end_offset == 0
        finally:
            await transport.close()

    run(body())


def test_one_store_partition_has_one_changelog_per_checkpoint(store: StorePartition) -> None:
    async def body() -> None:
        transport, h = await started(store)
        try:
            checkpoint = h.checkpoint()
            checkpoint.transaction(store, CHANGELOG)
            with pytest.raises(ValueError, match="changelogged to"):
                checkpoint.transaction(store, TopicPartition(CHANGELOG.topic, 1))
        finally:
            await transport.close()

    run(body())
