"""Transactions on the embedded transport, beyond the contract suite
(``test_transactions_contract.py``, which runs on every transport): interleaved
transactions read one batch at a time, timeouts aborted by the transport's coordinator,
``send_many`` in a transaction, the ``latest`` reset and ``end_offsets`` at the last
stable offset, a failed batch, and the KIP-447 check against a member in the middle of
a rebalance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from streamlog.transport.embedded import EmbeddedTransport
from streamlog.transport.errors import (
    ProducerFencedError,
    RecordTooLargeError,
    TransactionAbortableError,
)
from streamlog.transport.types import TopicPartition

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def values(consumer: Any, timeout_ms: int = 100) -> list[tuple[int, bytes | None]]:
    """(offset, value) of every record the consumer hands out until a poll is empty."""
    out: list[tuple[int, bytes | None]] = []
    while True:
        batches = await consumer.getmany(timeout_ms=timeout_ms)
        if not batches:
            return out
        for records in batches.values():
            out.extend((r.offset, r.value) for r in records)


def test_interleaved_transactions_read_one_batch_at_a_time() -> None:
    """Two producers' transactions interleaved on one partition, A's aborted and B's
    committed: a read_committed reader fetching one batch per read drops exactly A's."""

    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            await transport.admin().create_topic("t", 1)
            a = transport.producer(transactional_id="a", linger_ms=0)
            b = transport.producer(transactional_id="b", linger_ms=0)
            await a.init_transactions()
            await b.init_transactions()
            a.begin_transaction()
            b.begin_transaction()
            await a.send_and_wait("t", b"a0", partition=0)
            await b.send_and_wait("t", b"b0", partition=0)
            await a.send_and_wait("t", b"a1", partition=0)
            await a.abort_transaction()  # marker at 3
            await b.send_and_wait("t", b"b1", partition=0)
            await b.commit_transaction()  # marker at 5
            a.begin_transaction()
            await a.send_and_wait("t", b"a2", partition=0)
            await a.commit_transaction()  # marker at 7
            tp = TopicPartition("t", 0)
            for fetch_bytes in (1, 1 << 20):  # one batch per read, then all at once
                committed = transport.consumer(
                    isolation_level="read_committed", fetch_max_bytes=fetch_bytes
                )
                committed.assign([tp])
                assert await values(committed) == [(1, b"b0"), (4, b"b1"), (6, b"a2")]
                assert await committed.position(tp) == 8
            everything = transport.consumer()
            everything.assign([tp])
            assert await values(everything) == [
                (0, b"a0"),
                (1, b"b0"),
                (2, b"a1"),
                (4, b"b1"),
                (6, b"a2"),
            ]

    run(body())


def test_a_transaction_open_past_its_timeout_is_aborted_and_its_producer_fenced() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://", maintenance_interval_ms=50) as transport:
            await transport.admin().create_topic("t", 1)
            tp = TopicPartition("t", 0)
            producer = transport.producer(transactional_id="slow", transaction_timeout_ms=200)
            await producer.init_transactions()
            producer.begin_transaction()
            await producer.send_and_wait("t", b"late", partition=0)
            committed = transport.consumer(isolation_level="read_committed")
            committed.assign([tp])
            assert await committed.end_offsets([tp]) == {tp: 0}  # held by the open one
            # Until the coordinator's abort moves the last stable offset (bounded by
            # the run's timeout): nothing is handed out meanwhile.
            while (await committed.end_offsets([tp]))[tp] != 2:
                assert await committed.getmany(timeout_ms=50) == {}
            assert await values(committed) == []
            assert await committed.position(tp) == 2  # past the abort marker
            with pytest.raises(ProducerFencedError):
                await producer.commit_transaction()
            with pytest.raises(ProducerFencedError):
                producer.begin_transaction()
            everything = transport.consumer()
            everything.assign([tp])
            assert await values(everything) == [(0, b"late")]

    run(body())


def test_send_many_in_a_transaction() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            await transport.admin().create_topic("t", 3)
            producer = transport.producer(transactional_id="many", batch_size=64)
            await producer.init_transactions()
            producer.begin_transaction()
            keys = [b"k%d" % (i % 5) for i in range(40)]
            sent = await producer.send_many("t", [b"v%d" % i for i in range(40)], keys=keys)
            await producer.commit_transaction()
            metadata = await sent
            assert len(metadata) == 40
            committed = transport.consumer(isolation_level="read_committed")
            committed.assign([TopicPartition("t", p) for p in range(3)])
            seen = sorted(await values(committed), key=lambda pair: pair[1] or b"")
            expected = sorted(
                ((m.offset, b"v%d" % i) for i, m in enumerate(metadata)), key=lambda pair: pair[1]
            )
            assert seen == expected
            by_partition: dict[int, list[int]] = {}
            for m in metadata:
                by_partition.setdefault(m.partition, []).append(m.offset)
            # batch_size=64 split them: several batches per partition, one sequence each
            for partition, offsets in by_partition.items():
                assert offsets == list(range(len(offsets))), partition
                end = await committed.end_offsets([TopicPartition("t", partition)])
                assert end == {TopicPartition("t", partition): len(offsets) + 1}

    run(body())


def test_latest_and_end_offsets_are_the_last_stable_offset_for_read_committed() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            await transport.admin().create_topic("t", 1)
            tp = TopicPartition("t", 0)
            plain = transport.producer()
            await plain.send_and_wait("t", b"before", partition=0)
            producer = transport.producer(transactional_id="lso")
            await producer.init_transactions()
            producer.begin_transaction()
            for i in range(3):
                await producer.send("t", b"open-%d" % i, partition=0)
            await producer.flush()
            committed = transport.consumer(
                isolation_level="read_committed", auto_offset_reset="latest"
            )
            committed.assign([tp])
            uncommitted = transport.consumer(auto_offset_reset="latest")
            uncommitted.assign([tp])
            assert await committed.position(tp) == 1  # the open transaction's first offset
            assert await uncommitted.position(tp) == 4
            assert await committed.end_offsets([tp]) == {tp: 1}
            assert await uncommitted.end_offsets([tp]) == {tp: 4}
            await producer.commit_transaction()
            assert await values(committed) == [(1, b"open-0"), (2, b"open-1"), (3, b"open-2")]
            assert await committed.end_offsets([tp]) == {tp: 5}
            await committed.seek_to_end(tp)
            assert await committed.position(tp) == 5

    run(body())


def test_a_failed_batch_makes_the_transaction_abortable() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            await transport.admin().create_topic("t", 1, {"max.message.bytes": "200"})
            tp = TopicPartition("t", 0)
            producer = transport.producer(transactional_id="spoilt")
            await producer.init_transactions()
            producer.begin_transaction()
            kept = await producer.send("t", b"small", partition=0)
            await producer.flush()
            too_big = await producer.send("t", b"x" * 500, partition=0)
            await producer.flush()
            with pytest.raises(RecordTooLargeError):
                await too_big
            with pytest.raises(TransactionAbortableError, match="must be aborted"):
                await producer.send("t", b"more", partition=0)
            with pytest.raises(TransactionAbortableError, match="must be aborted"):
                await producer.commit_transaction()
            await producer.abort_transaction()
            assert (await kept).offset == 0
            producer.begin_transaction()
            await producer.send("t", b"after", partition=0)
            await producer.commit_transaction()
            committed = transport.consumer(isolation_level="read_committed")
            committed.assign([tp])
            assert await values(committed) == [(2, b"after")]  # small's abort marker at 1

    run(body())


def test_a_member_metadata_commits_until_the_member_completes_a_newer_generation() -> None:
    """KIP-447 on the embedded groups: while a rebalance the member has not taken part in
    is under way it still owns its partitions, and its metadata commits them (as Kafka's
    coordinator takes the current generation until the rebalance completes); once the
    member has completed the next generation, the old metadata is refused."""

    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            await transport.admin().create_topic("src", 2)
            member = transport.consumer(group_id="g")
            await member.subscribe(["src"])
            assert member.assignment() == {TopicPartition("src", 0), TopicPartition("src", 1)}
            metadata = member.group_metadata()
            other = transport.consumer(group_id="g")
            await other.subscribe(["src"])  # a rebalance the first has not completed
            producer = transport.producer(transactional_id="zombie-check")
            await producer.init_transactions()
            kept = sorted(member.assignment())
            results: dict[TopicPartition, str] = {}
            for tp in kept:
                producer.begin_transaction()
                try:
                    await producer.send_offsets_to_transaction({tp: 1}, metadata)
                except TransactionAbortableError as exc:
                    results[tp] = str(exc)
                    await producer.abort_transaction()
                else:
                    await producer.commit_transaction()
                    results[tp] = "committed"
            # Both partitions are still the first member's until it polls (it keeps one
            # and gives up the other then): both commits are taken.
            assert set(results.values()) == {"committed"}
            await member.getmany(timeout_ms=0)  # revokes one, completes the generation
            given_up = (set(kept) - member.assignment()).pop()
            producer.begin_transaction()
            with pytest.raises(TransactionAbortableError, match="ILLEGAL_GENERATION"):
                await producer.send_offsets_to_transaction({given_up: 2}, metadata)
            await producer.abort_transaction()
            await other.close()
            await member.close()

    run(body())
