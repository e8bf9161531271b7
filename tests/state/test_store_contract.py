"""The ``StorePartition`` contract, run over every implementation (memory and RocksDB)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlog.state.errors import StoreClosedError
from streamlog.state.memory_store import MemoryStore, MemoryStorePartition
from streamlog.state.rocksdb_store import (
    FORMAT_KEY,
    OFFSET_KEY,
    RocksDBStore,
    RocksDBStorePartition,
)
from streamlog.state.stores import StorePartition, key_bounds, prefix_upper_bound

from .conftest import STORE_KINDS, StoreFactory

# -- reads and writes -------------------------------------------------------------------


def test_a_new_partition_is_empty_with_no_offset(store: StorePartition) -> None:
    assert store.get(b"k") is None
    assert list(store.items()) == []
    assert store.changelog_offset() is None
    assert store.is_empty()
    assert store.wipe_reason is None
    assert not store.closed


def test_write_puts_and_deletes(store: StorePartition) -> None:
    store.write({b"a": b"1", b"b": b"2", b"c": b"3"}, None)
    store.write({b"b": None, b"c": b"33", b"missing": None}, None)
    assert store.get(b"a") == b"1"
    assert store.get(b"b") is None
    assert store.get(b"c") == b"33"
    assert store.get(b"missing") is None
    assert list(store.items()) == [(b"a", b"1"), (b"c", b"33")]
    assert not store.is_empty()


def test_empty_key_and_empty_value_are_ordinary(store: StorePartition) -> None:
    store.write({b"": b"empty key", b"k": b""}, None)
    assert store.get(b"") == b"empty key"
    assert store.get(b"k") == b""
    assert list(store.items()) == [(b"", b"empty key"), (b"k", b"")]
    store.write({b"k": None}, None)
    assert store.get(b"k") is None


def test_changelog_offset_is_written_with_the_updates(store: StorePartition) -> None:
    store.write({b"a": b"1"}, 7)
    assert store.changelog_offset() == 7
    store.write({b"b": b"2"}, None)  # None leaves it
    assert store.changelog_offset() == 7
    store.write({}, 12)  # an offset alone
    assert store.changelog_offset() == 12
    assert list(store.items()) == [(b"a", b"1"), (b"b", b"2")]


def test_user_keys_cannot_reach_the_offset(store: StorePartition) -> None:
    store.write({b"x": b"1"}, 41)
    store.write({OFFSET_KEY: b"\x00" * 8, FORMAT_KEY: b"9", b"__streamlog_meta__": b"m"}, None)
    assert store.changelog_offset() == 41
    assert store.get(OFFSET_KEY) == b"\x00" * 8
    assert [k for k, _ in store.items()] == [b"__streamlog_meta__", OFFSET_KEY, FORMAT_KEY, b"x"]
    store.write({OFFSET_KEY: None}, None)
    assert store.changelog_offset() == 41


@pytest.mark.parametrize(
    "updates",
    [{"text": b"v"}, {b"k": "text"}, {b"k": bytearray(b"v")}, {memoryview(b"k"): b"v"}, {1: b"v"}],
)
def test_only_bytes_are_stored_and_a_bad_write_changes_nothing(
    store: StorePartition, updates: dict
) -> None:
    store.write({b"before": b"1"}, 3)
    mixed = {b"good": b"2", **updates}
    with pytest.raises(TypeError):
        store.write(mixed, 4)
    assert list(store.items()) == [(b"before", b"1")]
    assert store.changelog_offset() == 3


def test_get_refuses_a_key_that_is_not_bytes(store: StorePartition) -> None:
    with pytest.raises(TypeError):
        store.get("k")  # type: ignore[arg-type]


# -- ordered iteration ------------------------------------------------------------------

KEYS = [b"", b"\x00", b"\x00\xff", b"a", b"a\x00", b"a\xff", b"a\xff\xff", b"ab", b"b", b"\xff"]


@pytest.fixture
def filled(store: StorePartition) -> StorePartition:
    # written in reverse so insertion order cannot pass for key order
    store.write({k: b"v" + k for k in reversed(KEYS)}, None)
    return store


def keys_of(store: StorePartition, **bounds: bytes | None) -> list[bytes]:
    pairs = list(store.items(**bounds))
    assert all(v == b"v" + k for k, v in pairs)
    return [k for k, _ in pairs]


def test_items_are_in_byte_order(filled: StorePartition) -> None:
    assert keys_of(filled) == sorted(KEYS)


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        ({"start": b"a"}, [b"a", b"a\x00", b"ab", b"a\xff", b"a\xff\xff", b"b", b"\xff"]),
        ({"end": b"a"}, [b"", b"\x00", b"\x00\xff"]),
        ({"start": b"a\x00", "end": b"ab"}, [b"a\x00"]),
        ({"start": b"b", "end": b"a"}, []),
        ({"prefix": b"a"}, [b"a", b"a\x00", b"ab", b"a\xff", b"a\xff\xff"]),
        ({"prefix": b"a\xff"}, [b"a\xff", b"a\xff\xff"]),
        ({"prefix": b"\xff"}, [b"\xff"]),
        ({"prefix": b"\x00"}, [b"\x00", b"\x00\xff"]),
        ({"prefix": b""}, sorted(KEYS)),
        ({"prefix": b"zz"}, []),
        ({"prefix": b"a", "start": b"a\x01"}, [b"ab", b"a\xff", b"a\xff\xff"]),
        ({"prefix": b"a", "end": b"a\xff"}, [b"a", b"a\x00", b"ab"]),
        (
            {"prefix": b"a", "start": b"0", "end": b"c"},
            [b"a", b"a\x00", b"ab", b"a\xff", b"a\xff\xff"],
        ),
    ],
)
def test_items_bounds(filled: StorePartition, bounds: dict, expected: list[bytes]) -> None:
    assert keys_of(filled, **bounds) == expected


def test_long_scans_cross_every_read_chunk(store: StorePartition) -> None:
    keys = [b"key-%06d" % i for i in range(0, 30_000, 3)]
    store.write({k: b"v" + k for k in keys}, None)
    assert keys_of(store) == keys
    assert keys_of(store, start=b"key-000100", end=b"key-020000") == [
        k for k in keys if b"key-000100" <= k < b"key-020000"
    ]
    assert keys_of(store, prefix=b"key-01") == [k for k in keys if k.startswith(b"key-01")]


def test_writes_while_iterating_yield_no_key_twice(store: StorePartition) -> None:
    store.write({b"k%04d" % i: b"v" for i in range(500)}, None)
    seen = []
    for key, _ in store.items():
        seen.append(key)
        if len(seen) == 10:
            store.write({b"k%04d" % i: None for i in range(10, 20)}, None)
            store.write({b"k%04d" % i: b"new" for i in range(500, 600)}, None)
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen)
    # untouched keys are all seen; the changed ones may or may not be (the contract)
    assert set(seen) >= {b"k%04d" % i for i in range(20, 500)}


# -- lifecycle --------------------------------------------------------------------------


def test_wipe_empties_the_partition_and_keeps_it_open(store: StorePartition) -> None:
    store.write({b"a": b"1", b"b": b"2"}, 9)
    store.wipe()
    assert store.changelog_offset() is None
    assert list(store.items()) == []
    assert store.is_empty()
    store.write({b"c": b"3"}, 0)
    assert list(store.items()) == [(b"c", b"3")]
    assert store.changelog_offset() == 0


@pytest.mark.parametrize("ending", ["close", "destroy"])
def test_every_call_after_close_raises(store: StorePartition, ending: str) -> None:
    store.write({b"a": b"1"}, 1)
    scan = store.items()
    getattr(store, ending)()
    assert store.closed
    for call in (
        lambda: store.get(b"a"),
        lambda: store.items(),
        lambda: store.write({b"b": b"2"}, 2),
        lambda: store.changelog_offset(),
        lambda: store.is_empty(),
        lambda: store.wipe(),
        lambda: next(scan),
    ):
        with pytest.raises(StoreClosedError):
            call()
    store.close()  # twice is fine


def test_persistent_stores_keep_contents_and_offset_across_reopen(make_store: StoreFactory) -> None:
    first = make_store("p")
    first.write({b"a": b"1", b"b": b"2"}, 5)
    first.write({b"a": None}, 6)
    first.close()
    again = make_store("p")
    if make_store.persistent:
        assert list(again.items()) == [(b"b", b"2")]
        assert again.changelog_offset() == 6
    else:
        assert list(again.items()) == []
        assert again.changelog_offset() is None


def test_destroy_deletes_what_was_stored(make_store: StoreFactory) -> None:
    first = make_store("p")
    first.write({b"a": b"1"}, 5)
    first.destroy()
    again = make_store("p")
    assert list(again.items()) == []
    assert again.changelog_offset() is None
    assert again.wipe_reason is None


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_store_opens_each_partition_once_and_closes_them(tmp_path, kind: str) -> None:
    table = MemoryStore("counts") if kind == "memory" else RocksDBStore(str(tmp_path), "counts")
    assert table.name == "counts"
    zero = table.partition(0)
    assert table.partition(0) is zero
    two = table.partition(2)
    zero.write({b"k": b"v"}, 0)
    assert sorted(table.open_partitions()) == [0, 2]
    table.close_partition(0)
    assert zero.closed and not two.closed
    assert sorted(table.open_partitions()) == [2]
    reopened = table.partition(0)
    assert reopened is not zero
    assert reopened.get(b"k") == (b"v" if kind == "rocksdb" else None)
    table.close()
    assert reopened.closed and two.closed
    assert table.open_partitions() == {}
    with pytest.raises(ValueError):
        table.partition(-1)


# -- the bounds helper, and an oracle over random operations ----------------------------


def test_prefix_upper_bound() -> None:
    assert prefix_upper_bound(b"ab") == b"ac"
    assert prefix_upper_bound(b"a\xff") == b"b"
    assert prefix_upper_bound(b"a\xff\xff") == b"b"
    assert prefix_upper_bound(b"\xff\xff") is None
    assert prefix_upper_bound(b"") is None
    assert key_bounds(b"b", None, b"a") == (b"b", b"b")
    assert key_bounds(None, b"a\x05", b"a") == (b"a", b"a\x05")


small_bytes = st.binary(max_size=3).map(lambda b: bytes(x % 4 * 85 for x in b))  # 0, 85, 170, 255
operations = st.lists(
    st.tuples(small_bytes, st.one_of(st.none(), st.binary(max_size=2))), max_size=40
)
bounds = st.one_of(st.none(), small_bytes)


@pytest.fixture(scope="module")
def reused() -> Iterator[dict[str, StorePartition]]:
    """One partition of each kind for every Hypothesis example (opening RocksDB per
    example would cost ~0.1 s); each example starts by deleting what is there."""
    with tempfile.TemporaryDirectory() as directory:
        stores: dict[str, StorePartition] = {
            "memory": MemoryStorePartition(),
            "rocksdb": RocksDBStorePartition(directory + "/p"),
        }
        yield stores
        for store in stores.values():
            store.close()


@pytest.mark.parametrize("kind", STORE_KINDS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(operations, min_size=1, max_size=4),
    start=bounds,
    end=bounds,
    prefix=bounds,
)
def test_items_match_a_sorted_model(
    reused: dict[str, StorePartition],
    kind: str,
    batches: list[list[tuple[bytes, bytes | None]]],
    start: bytes | None,
    end: bytes | None,
    prefix: bytes | None,
) -> None:
    store = reused[kind]
    store.write({k: None for k, _ in store.items()}, None)
    model: dict[bytes, bytes] = {}
    for offset, batch in enumerate(batches):
        updates = dict(batch)
        store.write(updates, offset)
        for key, value in updates.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        assert list(store.items()) == sorted(model.items())
    expected = [
        (k, v)
        for k, v in sorted(model.items())
        if (start is None or k >= start)
        and (end is None or k < end)
        and (prefix is None or k.startswith(prefix))
    ]
    assert list(store.items(start=start, end=end, prefix=prefix)) == expected
    assert store.changelog_offset() == len(batches) - 1
    assert all(store.get(k) == v for k, v in model.items())
