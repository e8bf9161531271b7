"""``PartitionTransaction.open`` (what lets tables keep a transaction between events),
``delete_many``, and the checkpoint's promise about transactions it lets go of."""

from __future__ import annotations

import pytest

from streamlog.state.checkpoint import Checkpoint
from streamlog.state.errors import CheckpointClosedError, TransactionStateError
from streamlog.state.stores import StorePartition
from streamlog.state.transaction import PartitionTransaction, TransactionState
from streamlog.transport import TopicPartition

from .conftest import read_topic, run, started_transport

CHANGELOG = TopicPartition("app-table-changelog", 0)


def test_open_until_prepare_and_never_again(store: StorePartition) -> None:
    async def body() -> None:
        async with started_transport() as transport:
            tx = PartitionTransaction(store, CHANGELOG)
            assert tx.open and tx.state is TransactionState.OPEN
            tx.set(b"a", b"1")
            assert await tx.prepare(transport.producer(linger_ms=0)) == 1
            assert not tx.open
            assert await tx.acknowledged() == 0
            assert not tx.open
            tx.flush()
            assert not tx.open and tx.state is TransactionState.FLUSHED

    run(body())


def test_a_failed_transaction_is_not_open(store: StorePartition) -> None:
    tx = PartitionTransaction(store, CHANGELOG)
    tx.fail()
    assert not tx.open
    with pytest.raises(TransactionStateError):
        tx.delete_many([b"a"])


@pytest.mark.parametrize("scanned", [False, True])
def test_delete_many_is_delete_of_each(store: StorePartition, scanned: bool) -> None:
    store.write({b"a": b"1", b"c": b"3", b"e": b"5"}, None)
    tx = PartitionTransaction(store)
    tx.set(b"b", b"2")
    if scanned:  # a ranged read keeps the changed keys sorted from then on
        assert [k for k, _ in tx.items()] == [b"a", b"b", b"c", b"e"]
    tx.delete_many([b"c", b"b", b"x"])
    assert list(tx.items()) == [(b"a", b"1"), (b"e", b"5")]
    assert [tx.get(k) for k in (b"b", b"c", b"x")] == [None, None, None]
    assert tx.changes == 3


def test_the_checkpoint_lets_go_only_of_transactions_that_are_not_open(
    store: StorePartition,
) -> None:
    async def body() -> None:
        async with started_transport() as transport:
            producer = transport.producer(linger_ms=0)
            committed: list[dict[TopicPartition, int]] = []

            async def commit(offsets):
                committed.append(dict(offsets))

            checkpoint = Checkpoint(producer, commit)
            first = checkpoint.transaction(store, CHANGELOG)
            assert checkpoint.transaction(store, CHANGELOG) is first
            first.set(b"k", b"1")
            await checkpoint.commit({TopicPartition("in", 0): 1})
            assert not first.open
            second = checkpoint.transaction(store, CHANGELOG)
            assert second is not first and second.open
            second.delete_many([b"k"])
            checkpoint.discard()
            assert not second.open
            with pytest.raises(CheckpointClosedError):
                checkpoint.transaction(store, CHANGELOG)
            records = await read_topic(transport.consumer(), CHANGELOG, 1)
            assert [(r.key, r.value) for r in records] == [(b"k", b"1")]
            assert store.get(b"k") == b"1"  # the discarded delete never reached the store

    run(body())
