"""The SQLite sink against real SQLite files: upserts by key, deletes on tombstones, both
table shapes, bad records refused whole-batch, a locked database that comes back, config
checking, and a driver process killed -9 mid-batch whose restart leaves exactly the
stream's end state (no row lost, no duplicate)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlog.connect.base import Sink, SinkRecord
from streamlog.connect.errors import (
    BadRecordError,
    ConnectorConfigError,
    SinkUnavailableError,
)
from streamlog.connect.sqlite import SqliteSink, sink_from_config
from tests.connect import sinkdriver
from tests.connect.killing import driver, kill_after_commits, run_to_end


def rec(offset: int, key, value) -> SinkRecord:
    return SinkRecord("orders", 0, offset, 1_700_000_000_000, key, value)


def rows(path, table: str = "orders") -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def test_documents_upserted_by_key_and_deleted_on_tombstones(tmp_path):
    path = tmp_path / "db.sqlite"

    async def main():
        sink = SqliteSink(path, "orders")
        assert isinstance(sink, Sink)
        await sink.start()
        await sink.write([rec(0, "a", {"qty": 1}), rec(1, "b", {"qty": 2})])
        await sink.write([rec(2, "a", {"qty": 3}), rec(3, "c", [1, "x"]), rec(4, "b", None)])
        assert rows(path) == [("a", '{"qty":3}'), ("c", '[1,"x"]')]  # committed on write
        await sink.flush()
        status = sink.status()
        await sink.close()
        return status

    status = asyncio.run(main())
    assert rows(path) == [("a", '{"qty":3}'), ("c", '[1,"x"]')]
    assert status["records"] == 5 and status["flushed"] == 5 and status["pending"] == 0
    assert (status["name"], status["kind"], status["type"]) == ("sqlite-orders", "sink", "sqlite")


def test_columns_table_takes_named_fields(tmp_path):
    path = tmp_path / "db.sqlite"

    async def main():
        sink = SqliteSink(
            path, "orders", key_column="id", columns={"qty": "INTEGER", "item": "TEXT", "meta": ""}
        )
        await sink.start()
        await sink.write(
            [
                rec(0, "o1", {"qty": 5, "item": "pen", "meta": {"a": [1]}, "ignored": 1}),
                rec(1, b"o2", b'{"qty": 7}'),  # raw JSON bytes, missing fields NULL
                rec(2, 42, '{"item": "ink", "qty": true}'),  # a JSON key, a str value
            ]
        )
        await sink.flush()
        await sink.close()

    asyncio.run(main())
    assert rows(path) == [
        ("42", 1, "ink", None),
        ("o1", 5, "pen", '{"a":[1]}'),
        ("o2", 7, None, None),
    ]
    with sqlite3.connect(path) as db:
        info = {row[1]: (row[2], row[5]) for row in db.execute("PRAGMA table_info(orders)")}
    assert info == {"id": ("TEXT", 1), "qty": ("INTEGER", 0), "item": ("TEXT", 0), "meta": ("", 0)}


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (rec(1, None, {"qty": 1}), "null key"),
        (rec(1, None, None), "null key"),
        (rec(1, "x", b"\xffnot json"), "not JSON"),
        (rec(1, "x", [1, 2]), "not a JSON object"),
        (rec(1, b"\xff", {"qty": 1}), "key is not UTF-8"),
    ],
)
def test_a_bad_record_is_named_after_the_records_before_it_are_taken(tmp_path, record, reason):
    path = tmp_path / "db.sqlite"

    async def main():
        sink = SqliteSink(path, "orders", columns=["qty"])
        await sink.start()
        await sink.write([rec(0, "ok", {"qty": 1})])
        with pytest.raises(BadRecordError, match=reason) as caught:
            await sink.write([rec(0, "before", {"qty": 2}), record, rec(2, "after", {"qty": 3})])
        assert "orders[0]@1" in str(caught.value)  # names the record
        assert caught.value.record is record  # for the runner's dead-letter topic
        status = sink.status()
        assert status["pending"] == 2 and status["rejected"] == 1  # "before" taken, not "after"
        await sink.write([rec(2, "after", {"qty": 3})])  # the runner hands the rest
        await sink.flush()
        await sink.close()

    asyncio.run(main())
    assert rows(path) == [("after", 3), ("before", 2), ("ok", 1)]


def test_a_rewind_writes_the_same_rows_again(tmp_path):
    path = tmp_path / "db.sqlite"
    again = [rec(1, "a", None), rec(2, "b", {"v": 2})]

    async def main():
        sink = SqliteSink(path, "orders")
        await sink.start()
        await sink.write([rec(0, "a", {"v": 1})])
        await sink.flush()
        await sink.write(again)
        await sink.discard()  # the app rewinds: the records come again
        assert sink.status()["pending"] == 0
        await sink.write(again)
        await sink.flush()
        status = sink.status()
        await sink.close()
        return status

    status = asyncio.run(main())
    assert rows(path) == [("b", '{"v":2}')]
    assert status["records"] == 5 and status["flushed"] == 3


def test_two_sinks_on_one_file_take_turns(tmp_path):
    """Each write holds SQLite's write lock only while it writes: two sinks on tables of
    one file, written and flushed in any order (as two agents and the app's commit do),
    never wait for each other."""
    path = tmp_path / "db.sqlite"

    async def main():
        orders = SqliteSink(path, "orders", timeout=0.5)
        customers = SqliteSink(path, "customers", timeout=0.5)
        await orders.start()
        await customers.start()
        for i in range(20):
            await orders.write([rec(i, f"o{i}", {"i": i})])
            await customers.write([rec(i, f"c{i}", {"i": i})])
            if i % 3 == 0:
                await customers.flush()
                await orders.flush()
        await asyncio.gather(
            orders.write([rec(20, "o20", {"i": 20})]),
            customers.write([rec(20, "c20", {"i": 20})]),
        )
        await orders.flush()
        await customers.flush()
        statuses = orders.status(), customers.status()
        await orders.close()
        await customers.close()
        return statuses

    statuses = asyncio.run(main())
    assert [s["errors"] for s in statuses] == [0, 0]
    assert len(rows(path, "orders")) == 21 and len(rows(path, "customers")) == 21


def test_a_locked_database_is_unavailable_until_released(tmp_path):
    path = tmp_path / "db.sqlite"
    other = sqlite3.connect(path, isolation_level=None)
    batch = [rec(i, f"k{i}", {"i": i}) for i in range(100)]

    async def main():
        sink = SqliteSink(path, "orders", timeout=0.2)
        await sink.start()
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        with pytest.raises(SinkUnavailableError, match="locked"):
            await sink.write(batch)
        status = sink.status()
        assert status["errors"] == 1 and "locked" in status["last_error"]
        assert status["pending"] == 0  # nothing taken: the runner writes it again
        other.execute("ROLLBACK")
        await sink.discard()
        await sink.write(batch)  # the runner's retry: nothing lost
        await sink.flush()
        await sink.close()

    asyncio.run(main())
    other.close()
    assert rows(path) == sorted(
        (f"k{i}", json.dumps({"i": i}).replace(" ", "")) for i in range(100)
    )


def test_a_sink_started_while_the_file_is_locked_waits_for_it(tmp_path):
    path = tmp_path / "db.sqlite"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("BEGIN IMMEDIATE")

    async def main():
        sink = SqliteSink(path, "orders", timeout=0.2)
        await sink.start()  # not an error yet: the table is made on the first write
        with pytest.raises(SinkUnavailableError, match="locked"):
            await sink.write([rec(0, "a", {"v": 1})])
        other.execute("ROLLBACK")
        await sink.write([rec(0, "a", {"v": 1})])
        await sink.flush()
        status = sink.status()
        await sink.close()
        return status

    status = asyncio.run(main())
    other.close()
    assert status["errors"] == 2 and status["flushed"] == 1
    assert rows(path) == [("a", '{"v":1}')]


def test_a_row_the_table_refuses_is_a_bad_record(tmp_path):
    path = tmp_path / "db.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE orders (key TEXT PRIMARY KEY, qty INTEGER NOT NULL CHECK (qty >= 0),"
            " item TEXT) STRICT"
        )
    batch = [rec(i, f"k{i}", {"qty": i, "item": "pen"}) for i in range(300)]
    batch[211] = rec(211, "k211", {"item": "no qty"})  # NOT NULL
    batch[250] = rec(250, "k250", {"qty": "many"})  # STRICT: not an integer

    async def main():
        sink = SqliteSink(path, "orders", columns=["qty", "item"], create=False)
        await sink.start()
        rest, dead = batch, []
        while rest:  # what the runner does: dead-letter the named record, hand the rest
            try:
                await sink.write(rest)
                rest = []
            except BadRecordError as error:
                dead.append((error.record.offset, str(error)))
                rest = rest[rest.index(error.record) + 1 :]
        with pytest.raises(BadRecordError, match="CHECK constraint") as caught:
            await sink.write([rec(300, "k0", None), rec(301, "neg", {"qty": -1})])
        assert caught.value.record.offset == 301
        await sink.flush()
        status = sink.status()
        await sink.close()
        return dead, status

    dead, status = asyncio.run(main())
    assert [offset for offset, _ in dead] == [211, 250]
    assert "NOT NULL" in dead[0][1] and "orders[0]@211" in dead[0][1]
    assert status["rejected"] == 3 and status["flushed"] == 298 + 1
    expected = [(f"k{i}", i, "pen") for i in range(1, 300) if i not in (211, 250)]
    assert rows(path) == sorted(expected)


def test_an_existing_table_is_checked(tmp_path):
    path = tmp_path / "db.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE orders (key TEXT PRIMARY KEY, qty INTEGER)")

    async def start(**options):
        sink = SqliteSink(path, **options)
        try:
            await sink.start()
        finally:
            await sink.close()

    with pytest.raises(ConnectorConfigError, match="no column.*item"):
        asyncio.run(start(table="orders", columns=["qty", "item"]))
    with pytest.raises(ConnectorConfigError, match="no table missing"):
        asyncio.run(start(table="missing", create=False))
    asyncio.run(start(table="orders", columns=["qty"]))  # matches: fine


def test_config_keys_are_checked():
    sink = sink_from_config(
        "orders-db", {"path": "x.db", "table": "orders", "columns": {"qty": "INTEGER"}}
    )
    assert (sink.name, sink.table, sink.shape.columns) == ("orders-db", "orders", ("qty",))
    with pytest.raises(ConnectorConfigError, match="unknown key.*tabel"):
        sink_from_config("s", {"path": "x.db", "table": "t", "tabel": "t"})
    with pytest.raises(ConnectorConfigError, match="path is required"):
        sink_from_config("s", {"table": "t"})
    with pytest.raises(ConnectorConfigError, match="timeout = 'soon' is not"):
        sink_from_config("s", {"path": "x.db", "table": "t", "timeout": "soon"})
    with pytest.raises(ConnectorConfigError, match="not a plain identifier"):
        sink_from_config("s", {"path": "x.db", "table": "t; DROP TABLE t"})
    with pytest.raises(ConnectorConfigError, match="not a plain SQL type"):
        sink_from_config("s", {"path": "x.db", "table": "t", "columns": {"a": "int); --"}})


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_kill_9_mid_batch_loses_and_duplicates_nothing(tmp_path):
    path, offsets, total = tmp_path / "db.sqlite", tmp_path / "offsets", 20_000
    kills = []
    for commits in (2, 5, 3):
        process = driver("sqlite", str(path), "orders", offsets, total)
        kills.append(kill_after_commits(process, commits))
    run_to_end(driver("sqlite", str(path), "orders", offsets, total))
    assert kills == sorted(kills) and kills[-1] < total  # each run resumed further on
    assert sinkdriver.committed(offsets) == total
    expected = sinkdriver.final_rows(total)
    got = rows(path)
    assert len(got) == len(expected)  # no row twice (the key is the primary key)
    assert {
        key: {"n": n, "label": label, "tags": json.loads(tags)} for key, n, label, tags in got
    } == expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d", "e"]),
            st.one_of(st.none(), st.integers(-5, 5)),
        ),
        max_size=40,
    ),
    st.lists(st.integers(1, 7), min_size=1, max_size=10),
    st.lists(st.booleans(), min_size=1, max_size=10),
)
def test_the_table_is_the_records_applied_one_by_one(operations, sizes, flushes):
    """Oracle: whatever the batch sizes and where the flushes fall, the table after the
    last flush is a dict updated record by record (value: upsert, None: delete)."""
    with tempfile.TemporaryDirectory() as directory:
        path = f"{directory}/db.sqlite"
        records = [
            rec(offset, key, None if value is None else {"v": value})
            for offset, (key, value) in enumerate(operations)
        ]

        async def main():
            sink = SqliteSink(path, "orders", columns=["v"])
            await sink.start()
            start, i = 0, 0
            while start < len(records):
                size = sizes[i % len(sizes)]
                await sink.write(records[start : start + size])
                if flushes[i % len(flushes)]:
                    await sink.flush()
                start, i = start + size, i + 1
            await sink.flush()
            await sink.close()

        asyncio.run(main())
        model: dict[str, int] = {}
        for key, value in operations:
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        assert dict(rows(path)) == model
