"""``PartitionTransaction``: read-your-writes over every store kind, the merged ordered
scan, and prepare/acknowledge/flush against the embedded transport."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlog.state.errors import TransactionStateError
from streamlog.state.memory_store import MemoryStorePartition
from streamlog.state.rocksdb_store import RocksDBStorePartition
from streamlog.state.stores import StorePartition
from streamlog.state.transaction import PartitionTransaction, TransactionState
from streamlog.transport import TopicPartition
from streamlog.transport.errors import UnknownTopicError

from .conftest import STORE_KINDS, read_topic, run, started_transport

CHANGELOG = TopicPartition("app-table-changelog", 0)


def test_reads_see_the_transactions_own_writes(store: StorePartition) -> None:
    store.write({b"a": b"1", b"b": b"2"}, 4)
    tx = PartitionTransaction(store)
    tx.set(b"b", b"20")
    tx.delete(b"a")
    tx.set(b"c", b"30")
    tx.delete(b"never")
    assert [tx.get(k) for k in (b"a", b"b", b"c", b"never")] == [None, b"20", b"30", None]
    assert tx.changes == 4
    # the store is untouched until the commit
    assert list(store.items()) == [(b"a", b"1"), (b"b", b"2")]
    tx.set(b"a", b"back")
    assert tx.get(b"a") == b"back"
    assert tx.changes == 4


def test_set_refuses_none(store: StorePartition) -> None:
    with pytest.raises(TypeError, match="use delete"):
        PartitionTransaction(store).set(b"k", None)  # type: ignore[arg-type]


def test_items_merge_the_store_with_the_changes(store: StorePartition) -> None:
    store.write({b"a": b"1", b"b": b"2", b"d": b"4", b"f": b"6"}, None)
    tx = PartitionTransaction(store)
    tx.delete(b"b")  # deleted: gone
    tx.set(b"c", b"3")  # new, between stored keys
    tx.set(b"a", b"10")  # changed
    tx.set(b"g", b"7")  # new, after every stored key
    tx.set(b"0", b"0")  # new, before every stored key
    tx.delete(b"e")  # a delete of a key that never was
    assert list(tx.items()) == [
        (b"0", b"0"),
        (b"a", b"10"),
        (b"c", b"3"),
        (b"d", b"4"),
        (b"f", b"6"),
        (b"g", b"7"),
    ]
    assert list(tx.items(start=b"b", end=b"f")) == [(b"c", b"3"), (b"d", b"4")]
    assert list(tx.items(prefix=b"g")) == [(b"g", b"7")]
    assert list(tx.items(start=b"x")) == []


def test_items_see_changes_made_while_iterating(store: StorePartition) -> None:
    store.write({b"k%02d" % i: b"s" for i in range(0, 20, 2)}, None)
    tx = PartitionTransaction(store)
    tx.set(b"k05", b"t")
    seen = []
    for key, value in tx.items():
        seen.append((key, value))
        if key == b"k02":
            tx.delete(b"k08")
            tx.set(b"k10", b"changed")
            tx.set(b"k05", b"changed too")
    assert seen == [
        (b"k00", b"s"),
        (b"k02", b"s"),
        (b"k04", b"s"),
        (b"k05", b"changed too"),
        (b"k06", b"s"),
        (b"k10", b"changed"),
        (b"k12", b"s"),
        (b"k14", b"s"),
        (b"k16", b"s"),
        (b"k18", b"s"),
    ]


@pytest.fixture(scope="module")
def reused() -> Iterator[dict[str, StorePartition]]:
    with tempfile.TemporaryDirectory() as directory:
        stores: dict[str, StorePartition] = {
            "memory": MemoryStorePartition(),
            "rocksdb": RocksDBStorePartition(directory + "/p"),
        }
        yield stores
        for store in stores.values():
            store.close()


keys = st.binary(max_size=2).map(lambda b: bytes(x % 3 * 127 for x in b))
bounds = st.one_of(st.none(), keys)


@pytest.mark.parametrize("kind", STORE_KINDS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stored=st.dictionaries(keys, st.binary(max_size=2), max_size=12),
    changes=st.lists(st.tuples(keys, st.one_of(st.none(), st.binary(max_size=2))), max_size=12),
    start=bounds,
    end=bounds,
    prefix=bounds,
)
def test_items_and_get_match_a_model(
    reused: dict[str, StorePartition],
    kind: str,
    stored: dict[bytes, bytes],
    changes: list[tuple[bytes, bytes | None]],
    start: bytes | None,
    end: bytes | None,
    prefix: bytes | None,
) -> None:
    store = reused[kind]
    store.write({k: None for k, _ in store.items()}, None)
    store.write(stored, None)
    model = dict(stored)
    tx = PartitionTransaction(store)
    for key, value in changes:
        if value is None:
            tx.delete(key)
            model.pop(key, None)
        else:
            tx.set(key, value)
            model[key] = value
    expected = [
        (k, v)
        for k, v in sorted(model.items())
        if (start is None or k >= start)
        and (end is None or k < end)
        and (prefix is None or k.startswith(prefix))
    ]
    assert list(tx.items(start=start, end=end, prefix=prefix)) == expected
    for key, _ in changes:
        assert tx.get(key) == model.get(key)


# -- the commit steps -------------------------------------------------------------------


def test_prepare_acknowledge_flush_writes_changelog_then_store(store: StorePartition) -> None:
    async def body() -> None:
        async with started_transport() as transport:
            producer = transport.producer(linger_ms=0)
            store.write({b"gone": b"x", b"kept": b"k"}, None)
            tx = PartitionTransaction(store, CHANGELOG)
            tx.set(b"b", b"1")
            tx.set(b"a", b"1")
            tx.delete(b"gone")
            tx.set(b"b", b"2")  # a key changed twice is sent once, with its last value
            assert await tx.prepare(producer) == 3
            assert tx.state is TransactionState.PREPARED
            with pytest.raises(TransactionStateError):
                tx.set(b"c", b"3")
            with pytest.raises(TransactionStateError):
                tx.flush()
            assert list(store.items()) == [(b"gone", b"x"), (b"kept", b"k")]
            assert await tx.acknowledged() == 2
            assert tx.state is TransactionState.ACKNOWLEDGED
            assert tx.changelog_offset == 2
            tx.flush()
            assert tx.state is TransactionState.FLUSHED
            assert list(store.items()) == [(b"a", b"1"), (b"b", b"2"), (b"kept", b"k")]
            assert store.changelog_offset() == 2
            records = await read_topic(transport.consumer(), CHANGELOG, 3)
            assert [(r.offset, r.key, r.value) for r in records] == [
                (0, b"b", b"2"),
                (1, b"a", b"1"),
                (2, b"gone", None),
            ]
            with pytest.raises(TransactionStateError):
                tx.flush()  # at most once

    run(body())


def test_the_store_offset_is_the_highest_acknowledged(store: StorePartition) -> None:
    async def body() -> None:
        async with started_transport() as transport:
            producer = transport.producer(linger_ms=0)
            for _ in range(5):  # another writer's records before ours
                await producer.send_and_wait(CHANGELOG.topic, b"x", key=b"other", partition=0)
            tx = PartitionTransaction(store, CHANGELOG)
            for i in range(1000):
                tx.set(b"k%04d" % i, b"v")
            assert await tx.prepare(producer) == 1000
            assert await tx.acknowledged() == 1004
            tx.flush()
            assert store.changelog_offset() == 1004

    run(body())


def test_a_transaction_without_changes_writes_nothing(store: StorePartition) -> None:
    async def body() -> None:
        async with started_transport() as transport:
            store.write({b"a": b"1"}, 17)
            tx = PartitionTransaction(store, CHANGELOG)
            assert await tx.prepare(transport.producer()) == 0
            assert await tx.acknowledged() is None
            tx.flush()
            assert store.changelog_offset() == 17
            assert list(store.items()) == [(b"a", b"1")]

    run(body())


def test_a_transaction_without_changelog_flushes_without_offset(store: StorePartition) -> None:
    async def body() -> None:
        async with started_transport() as transport:
            store.write({}, 5)
            tx = PartitionTransaction(store, None)
            tx.set(b"a", b"1")
            assert await tx.prepare(transport.producer()) == 0
            assert await tx.acknowledged() is None
            tx.flush()
            assert list(store.items()) == [(b"a", b"1")]
            assert store.changelog_offset() == 5

    run(body())


def test_steps_out_of_order_are_refused(store: StorePartition) -> None:
    async def body() -> None:
        tx = PartitionTransaction(store, CHANGELOG)
        with pytest.raises(TransactionStateError):
            await tx.acknowledged()
        with pytest.raises(TransactionStateError):
            tx.flush()

    run(body())


def test_a_failed_send_fails_the_transaction_and_spares_the_store(store: StorePartition) -> None:
    async def body() -> None:
        async with started_transport() as transport:
            store.write({b"a": b"1"}, 3)
            # the changelog topic has one partition: partition 4 does not exist
            tx = PartitionTransaction(store, TopicPartition(CHANGELOG.topic, 4))
            tx.set(b"a", b"2")
            with pytest.raises(UnknownTopicError):
                await tx.prepare(transport.producer())
            assert tx.state is TransactionState.FAILED
            with pytest.raises(TransactionStateError):
                await tx.acknowledged()
            with pytest.raises(TransactionStateError):
                tx.flush()
            assert list(store.items()) == [(b"a", b"1")]
            assert store.changelog_offset() == 3

    run(body())


# -- insert and before_prepare ------------------------------------------------------------


class RecordingStore:
    """A real store partition that also keeps what each ``write`` was given."""

    def __init__(self, store: StorePartition) -> None:
        self.store = store
        self.writes: list[tuple[dict[bytes, bytes | None], int | None]] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def write(self, updates: Mapping[bytes, bytes | None], changelog_offset: int | None) -> None:
        self.writes.append((dict(updates), changelog_offset))
        self.store.write(updates, changelog_offset)


def test_an_inserted_key_deleted_again_reaches_the_changelog_but_not_the_store(
    store: StorePartition,
) -> None:
    async def body() -> None:
        async with started_transport() as transport:
            store.write({b"old": b"o"}, None)
            recording = RecordingStore(store)
            tx = PartitionTransaction(recording, CHANGELOG)  # type: ignore[arg-type]
            tx.insert(b"brief", b"1")  # new, then gone within the transaction
            tx.insert(b"kept", b"2")
            assert tx.get(b"brief") == b"1"
            tx.delete(b"brief")
            tx.delete(b"old")
            assert tx.get(b"brief") is None
            assert await tx.prepare(transport.producer(linger_ms=0)) == 3
            assert await tx.acknowledged() == 2
            tx.flush()
            # the store is told only what changes it: "brief" it never had
            assert recording.writes == [({b"kept": b"2", b"old": None}, 2)]
            assert list(store.items()) == [(b"kept", b"2")]
            records = await read_topic(transport.consumer(), CHANGELOG, 3)
            assert [(r.key, r.value) for r in records] == [
                (b"brief", None),
                (b"kept", b"2"),
                (b"old", None),
            ]

    run(body())


def test_a_stored_key_deleted_reinserted_and_deleted_is_deleted_from_the_store(
    store: StorePartition,
) -> None:
    async def body() -> None:
        async with started_transport() as transport:
            store.write({b"k": b"stored"}, None)
            tx = PartitionTransaction(store, CHANGELOG)
            tx.delete(b"k")
            tx.insert(b"k", b"again")  # not in view, but among the changes: not "fresh"
            tx.delete(b"k")
            await tx.prepare(transport.producer(linger_ms=0))
            await tx.acknowledged()
            tx.flush()
            assert store.get(b"k") is None

    run(body())


def test_insert_refuses_none_and_closed_transactions(store: StorePartition) -> None:
    async def body() -> None:
        async with started_transport() as transport:
            tx = PartitionTransaction(store, CHANGELOG)
            with pytest.raises(TypeError):
                tx.insert(b"k", None)  # type: ignore[arg-type]
            await tx.prepare(transport.producer(linger_ms=0))
            with pytest.raises(TransactionStateError):
                tx.insert(b"k", b"v")
            with pytest.raises(TransactionStateError):
                tx.before_prepare(lambda t: None)

    run(body())


def test_before_prepare_writes_once_at_the_commit_in_order(store: StorePartition) -> None:
    async def body() -> None:
        async with started_transport() as transport:
            tx = PartitionTransaction(store, CHANGELOG)
            state = {"time": 1}
            calls: list[str] = []

            def first(t: PartitionTransaction) -> None:
                calls.append("first")
                assert t.open  # still writable
                t.set(b"time", b"%d" % state["time"])

            tx.before_prepare(first)
            tx.before_prepare(lambda t: calls.append("second"))
            tx.set(b"a", b"1")
            state["time"] = 7  # what counts is the state at the commit
            assert await tx.prepare(transport.producer(linger_ms=0)) == 2
            assert calls == ["first", "second"]
            await tx.acknowledged()
            tx.flush()
            assert store.get(b"time") == b"7"
            records = await read_topic(transport.consumer(), CHANGELOG, 2)
            assert [(r.key, r.value) for r in records] == [(b"a", b"1"), (b"time", b"7")]

    run(body())


def test_a_failing_before_prepare_fails_the_prepare_and_sends_nothing(
    store: StorePartition,
) -> None:
    async def body() -> None:
        async with started_transport() as transport:
            tx = PartitionTransaction(store, CHANGELOG)
            tx.set(b"a", b"1")

            def broken(_t: PartitionTransaction) -> None:
                raise RuntimeError("cannot save")

            tx.before_prepare(broken)
            await transport.admin().create_topic(CHANGELOG.topic, 1, {})
            producer = transport.producer(linger_ms=0)
            with pytest.raises(RuntimeError, match="cannot save"):
                await tx.prepare(producer)
            assert tx.state is TransactionState.FAILED and not tx.open
            await producer.flush()
            consumer = transport.consumer()
            assert await consumer.end_offsets([CHANGELOG]) == {CHANGELOG: 0}
            await consumer.close()

    run(body())
