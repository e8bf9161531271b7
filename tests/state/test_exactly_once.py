"""The exactly-once commit over the embedded transport's transactions (memory://): a
checkpoint's outputs, changelog records and source offsets become visible to
read_committed readers together, stores are written only after the transaction commits,
and a commit that cannot (a stale group generation, a fenced producer, a failed send)
leaves nothing visible and no store written."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streamlog.state.checkpoint import Checkpoint
from streamlog.state.errors import CheckpointError, ExactlyOnceError, TransactionAbortedError
from streamlog.state.exactly_once import TransactionalSends
from streamlog.state.stores import StorePartition
from streamlog.state.transaction import TransactionState
from streamlog.transport import TopicPartition, open_transport
from streamlog.transport.types import ConsumerGroupMetadata

from .conftest import run

SOURCE = TopicPartition("orders", 0)
OUTPUT = TopicPartition("totals", 0)
CHANGELOG = TopicPartition("app-totals-changelog", 0)
GROUP = "app"


async def _no_offsets(offsets: Any) -> None:
    raise AssertionError("under exactly-once offsets go into the transaction")


class Harness:
    """A memory:// transport, a group member of ``orders``, and a transactional producer
    whose transaction carries the member's offsets."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.member = transport.consumer(group_id=GROUP)
        self.group: ConsumerGroupMetadata | None = None
        self.sends = self.new_sends()

    def new_sends(self) -> TransactionalSends:
        producer = self.transport.producer(transactional_id="app-worker-0", linger_ms=5)
        return TransactionalSends(producer, lambda: self.group or self.member.group_metadata())

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.sends, _no_offsets, transaction=self.sends)

    async def read(self, tp: TopicPartition, isolation: str) -> list[tuple[bytes, bytes]]:
        reader = self.transport.consumer(isolation_level=isolation)
        try:
            reader.assign([tp])
            await reader.seek_to_beginning(tp)
            end = (await reader.end_offsets([tp]))[tp]
            found: list[tuple[bytes, bytes]] = []
            while await reader.position(tp) < end:
                for records in (await reader.getmany(timeout_ms=50)).values():
                    found.extend((r.key, r.value) for r in records)
            return found
        finally:
            await reader.close()

    async def committed(self) -> int | None:
        return await self.member.committed(SOURCE)


async def started() -> tuple[Any, Harness]:
    transport = open_transport("memory://")
    await transport.start()
    admin = transport.admin()
    for tp in (SOURCE, OUTPUT, CHANGELOG):
        await admin.create_topic(tp.topic, 1)
    h = Harness(transport)
    await h.member.subscribe([SOURCE.topic])
    await h.member.getmany(timeout_ms=10)
    await h.sends.start()
    return transport, h


def test_outputs_changelog_and_offsets_commit_together_and_the_store_after(
    store: StorePartition,
) -> None:
    async def body() -> None:
        transport, h = await started()
        try:
            checkpoint = h.checkpoint()
            tx = checkpoint.transaction(store, CHANGELOG)
            tx.set(b"alice", b"3")
            await checkpoint.send(OUTPUT.topic, b"3", key=b"alice")
            await h.sends.flush()
            # written in the open transaction: read_uncommitted sees the output, read_committed not
            assert await h.read(OUTPUT, "read_uncommitted") == [(b"alice", b"3")]
            assert await h.read(OUTPUT, "read_committed") == []
            await checkpoint.commit({SOURCE: 1})
            assert await h.read(OUTPUT, "read_committed") == [(b"alice", b"3")]
            assert await h.read(CHANGELOG, "read_committed") == [(b"alice", b"3")]
            assert await h.committed() == 1
            assert tx.state is TransactionState.FLUSHED
            assert dict(store.items()) == {b"alice": b"3"}
            assert store.changelog_offset() == 0  # the change's record, before its marker
            assert h.sends.transactions_committed == 1

            # the next transaction is open at once: the producer sends on
            again = checkpoint.transaction(store, CHANGELOG)
            again.set(b"alice", b"4")
            await checkpoint.commit({SOURCE: 2})
            assert await h.read(CHANGELOG, "read_committed") == [
                (b"alice", b"3"),
                (b"alice", b"4"),
            ]
            assert await h.committed() == 2
            assert dict(store.items()) == {b"alice": b"4"}
        finally:
            await transport.close()

    run(body())


def test_a_send_during_a_commit_waits_for_the_next_transaction() -> None:
    async def body() -> None:
        transport, h = await started()
        try:
            late: list[asyncio.Task[Any]] = []
            metadata = h.member.group_metadata()

            def group_during_the_commit() -> ConsumerGroupMetadata:
                # called by commit() with the gate closed: a timer's send at this moment
                late.append(asyncio.create_task(h.sends.send(OUTPUT.topic, b"late", key=b"k")))
                return metadata

            producer = transport.producer(transactional_id="app-worker-1", linger_ms=5)
            sends = h.sends = TransactionalSends(producer, group_during_the_commit)
            await sends.start()
            await sends.send(OUTPUT.topic, b"first", key=b"k")
            await sends.commit({SOURCE: 1})
            assert len(late) == 1
            await (await late[0])  # held at the gate, then sent: not refused
            assert await h.read(OUTPUT, "read_committed") == [(b"k", b"first")]
            assert await h.read(OUTPUT, "read_uncommitted") == [(b"k", b"first"), (b"k", b"late")]
            await sends.commit({})
            assert await h.read(OUTPUT, "read_committed") == [(b"k", b"first"), (b"k", b"late")]
        finally:
            await transport.close()

    run(body())


def test_a_stale_generation_aborts_the_commit_and_the_producer_goes_on(
    store: StorePartition,
) -> None:
    async def body() -> None:
        transport, h = await started()
        try:
            current = h.member.group_metadata()
            h.group = current._replace(generation_id=current.generation_id + 7)  # a zombie's
            checkpoint = h.checkpoint()
            tx = checkpoint.transaction(store, CHANGELOG)
            tx.set(b"alice", b"1")
            await checkpoint.send(OUTPUT.topic, b"1", key=b"alice")
            await h.sends.flush()
            with pytest.raises(TransactionAbortedError, match="step 4.*transaction aborted"):
                await checkpoint.commit({SOURCE: 1})
            assert checkpoint.closed and h.sends.usable  # the producer goes on
            assert tx.state is TransactionState.FAILED
            assert store.is_empty() and store.changelog_offset() is None  # never written
            assert await h.read(OUTPUT, "read_committed") == []
            assert await h.read(CHANGELOG, "read_committed") == []
            assert await h.read(OUTPUT, "read_uncommitted") == [(b"alice", b"1")]
            assert await h.committed() is None
            assert h.sends.transactions_aborted == 1

            h.group = None  # the member's own metadata again: a new checkpoint commits
            retry = h.checkpoint()
            retry.transaction(store, CHANGELOG).set(b"alice", b"1")
            await retry.send(OUTPUT.topic, b"1", key=b"alice")
            await retry.commit({SOURCE: 1})
            assert await h.read(OUTPUT, "read_committed") == [(b"alice", b"1")]
            assert await h.committed() == 1
        finally:
            await transport.close()

    run(body())


def test_a_fenced_producer_cannot_commit_or_send_again(store: StorePartition) -> None:
    async def body() -> None:
        transport, h = await started()
        try:
            checkpoint = h.checkpoint()
            checkpoint.transaction(store, CHANGELOG).set(b"alice", b"9")
            await checkpoint.send(OUTPUT.topic, b"9", key=b"alice")
            successor = h.new_sends()
            await successor.start()  # same transactional id: fences, aborts the open one
            with pytest.raises(CheckpointError, match="step 2: ProducerFencedError") as failed:
                await checkpoint.commit({SOURCE: 1})
            assert not isinstance(failed.value, TransactionAbortedError)
            assert not h.sends.usable
            with pytest.raises(ExactlyOnceError, match="unusable"):
                await h.sends.send(OUTPUT.topic, b"zombie", key=b"alice")
            assert store.is_empty()
            assert await h.read(OUTPUT, "read_committed") == []
            assert await h.committed() is None
            await successor.send(OUTPUT.topic, b"fresh", key=b"alice")
            await successor.commit({SOURCE: 1})
            assert await h.read(OUTPUT, "read_committed") == [(b"alice", b"fresh")]
        finally:
            await transport.close()

    run(body())


def test_a_failed_send_aborts_before_the_commit(store: StorePartition) -> None:
    async def body() -> None:
        transport, h = await started()
        try:
            checkpoint = h.checkpoint()
            checkpoint.transaction(store, CHANGELOG).set(b"alice", b"2")
            await checkpoint.send(OUTPUT.topic, b"2", key=b"alice")
            checkpoint.track(_failed_ack())
            with pytest.raises(CheckpointError, match="step 2"):
                await checkpoint.commit({SOURCE: 1})
            assert store.is_empty()
            assert await h.read(OUTPUT, "read_committed") == []
            assert await h.read(CHANGELOG, "read_committed") == []
            assert await h.committed() is None
            assert h.sends.transactions_aborted == 1
        finally:
            await transport.close()

    run(body())


def _failed_ack() -> asyncio.Future[Any]:
    failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    failed.set_exception(OSError("the record was not written"))
    return failed
