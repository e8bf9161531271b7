"""The PostgreSQL sink against a real server (Debian's, a throwaway cluster started by
``tests.connect.pgserver``): upserts by key and deletes on tombstones in both table
shapes, typed and json columns, the server stopped under a pending batch and under a
write and started again (nothing lost), a value the table refuses (a bad record, named
for the dead-letter topic), and a driver process killed -9 mid-batch whose restart
leaves exactly the stream's end state."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlog.connect.base import SinkRecord
from streamlog.connect.errors import (
    BadRecordError,
    ConnectorConfigError,
    SinkUnavailableError,
)
from streamlog.connect.postgres import PostgresSink, sink_from_config
from tests.connect import sinkdriver
from tests.connect.killing import driver, kill_after_commits, run_to_end
from tests.connect.pgserver import pg_server  # noqa: F401 - the fixture

_tables = itertools.count()


@pytest.fixture
def table() -> str:
    return f"orders_{next(_tables)}"


def rec(offset: int, key, value) -> SinkRecord:
    return SinkRecord("orders", 0, offset, 1_700_000_000_000, key, value)


def rows(dsn: str, table: str) -> list[tuple]:
    with psycopg.connect(dsn) as db:
        return db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def test_documents_upserted_by_key_and_deleted_on_tombstones(pg_server, table):  # noqa: F811
    async def main():
        sink = PostgresSink(pg_server.dsn, table)
        await sink.start()
        await sink.write([rec(0, "a", {"qty": 1}), rec(1, "b", {"qty": 2})])
        await sink.write([rec(2, "a", {"qty": 3}), rec(3, "c", '"text"'), rec(4, "b", None)])
        assert rows(pg_server.dsn, table) == []  # nothing before flush
        await sink.flush()
        await sink.write([rec(5, "c", None), rec(6, "d", b'{"x": null}')])
        await sink.flush()
        status = sink.status()
        await sink.close()
        return status

    status = asyncio.run(main())
    assert rows(pg_server.dsn, table) == [("a", {"qty": 3}), ("d", {"x": None})]
    assert status["records"] == 7 and status["flushed"] == 7 and status["pending"] == 0
    assert status["type"] == "postgres" and status["errors"] == 0


def test_an_existing_typed_table_gets_its_columns(pg_server, table):  # noqa: F811
    with psycopg.connect(pg_server.dsn) as db:
        db.execute(
            f"CREATE TABLE {table} (id text PRIMARY KEY, qty integer, price numeric(10, 2),"
            " item text, meta jsonb, seen timestamptz)"
        )

    async def main():
        sink = PostgresSink(
            pg_server.dsn,
            table,
            key_column="id",
            columns=["qty", "price", "item", "meta", "seen"],
            create=False,
        )
        await sink.start()
        await sink.write(
            [
                rec(0, "o1", {"qty": 5, "price": 1.25, "item": "pen", "meta": "plain",
                              "seen": "2026-12-01T10:00:00+00:00"}),
                rec(1, "o2", {"qty": 7, "item": {"nested": [1]}, "meta": {"a": [1, None]}}),
            ]
        )  # fmt: skip
        await sink.flush()
        await sink.close()

    asyncio.run(main())
    got = rows(pg_server.dsn, table)
    assert [r[:5] for r in got] == [
        ("o1", 5, Decimal("1.25"), "pen", "plain"),  # a jsonb column keeps a JSON string
        ("o2", 7, None, '{"nested":[1]}', {"a": [1, None]}),  # text column: JSON text
    ]
    assert got[0][5].isoformat() == "2026-12-01T10:00:00+00:00"


def test_a_created_columns_table_uses_the_given_types(pg_server, table):  # noqa: F811
    async def main():
        sink = PostgresSink(pg_server.dsn, table, columns={"qty": "bigint", "tags": ""})
        await sink.start()
        await sink.write([rec(0, "a", {"qty": 2**40, "tags": ["x"]})])
        await sink.flush()
        await sink.close()

    asyncio.run(main())
    with psycopg.connect(pg_server.dsn) as db:
        types = db.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
    assert types == [("key", "text"), ("qty", "bigint"), ("tags", "jsonb")]
    assert rows(pg_server.dsn, table) == [("a", 2**40, ["x"])]


def test_the_server_going_away_keeps_the_batch_for_the_retry(pg_server, table):  # noqa: F811
    async def main():
        sink = PostgresSink(pg_server.dsn, table)
        await sink.start()
        await sink.write([rec(i, f"k{i}", {"i": i}) for i in range(500)])
        await sink.flush()
        await sink.write([rec(500 + i, f"k{i}", {"i": -i}) for i in range(1000)])
        pg_server.stop("immediate")
        try:
            for _ in range(2):  # the runner retries; each fails while the server is down
                with pytest.raises(SinkUnavailableError):
                    await sink.flush()
            status = sink.status()
        finally:
            pg_server.start()
        await sink.flush()  # back: the whole pending batch is written
        await sink.close()
        return status

    status = asyncio.run(main())
    assert status["errors"] == 2 and status["pending"] == 1000 and status["flushed"] == 500
    assert not status["connected"]
    assert rows(pg_server.dsn, table) == sorted((f"k{i}", {"i": -i}) for i in range(1000))


def test_a_value_the_table_refuses_is_a_bad_record_found_in_its_batch(pg_server, table):  # noqa: F811
    with psycopg.connect(pg_server.dsn) as db:
        db.execute(f"CREATE TABLE {table} (key text PRIMARY KEY, qty integer CHECK (qty >= 0))")
    batch = [rec(i, f"k{i}", {"qty": i}) for i in range(200)]
    batch[137] = rec(137, "k137", {"qty": "many"})

    async def main():
        sink = PostgresSink(pg_server.dsn, table, columns=["qty"], create=False)
        await sink.start()
        await sink.write([rec(i, f"early{i}", {"qty": i}) for i in range(3)])
        with pytest.raises(BadRecordError) as caught:
            await sink.write(batch)
        assert str(caught.value).startswith("orders[0]@137 (key 'k137'): invalid input syntax")
        assert caught.value.record is batch[137]
        assert sink.status()["pending"] == 3 + 137  # the records before it taken
        await sink.write(batch[138:])  # what the runner hands next
        with pytest.raises(BadRecordError, match=r"@201 \(key 'k5'\).*check constraint") as caught:
            await sink.write(
                [rec(200, "k4", None), rec(201, "k5", {"qty": -1}), rec(202, "k6", None)]
            )
        assert caught.value.record.offset == 201
        await sink.write([rec(202, "k6", None)])
        with pytest.raises(BadRecordError, match="not a JSON object") as caught:
            await sink.write([rec(203, "k7", None), rec(204, "k8", 5), rec(205, "k9", None)])
        assert caught.value.record.offset == 204 and sink.status()["pending"] == 3 + 199 + 2 + 1
        await sink.write([rec(205, "k9", None)])
        await sink.flush()
        status = sink.status()
        await sink.close()
        return status

    status = asyncio.run(main())
    assert (status["rejected"], status["flushed"], status["errors"]) == (3, 3 + 199 + 4, 2)
    expected = {f"k{i}": i for i in range(200) if i not in (137, 4, 6, 7, 9)}
    assert dict(rows(pg_server.dsn, table)) == expected | {f"early{i}": i for i in range(3)}


def test_a_write_while_the_server_is_away_is_retried_whole(pg_server, table):  # noqa: F811
    async def main():
        sink = PostgresSink(pg_server.dsn, table, columns={"qty": "integer"})
        await sink.start()
        await sink.write([rec(0, "a", {"qty": 1})])
        await sink.flush()
        batch = [rec(1, "a", {"qty": 2}), rec(2, "b", {"qty": "many"}), rec(3, "c", {"qty": 3})]
        pg_server.stop("immediate")
        try:
            with pytest.raises(SinkUnavailableError):
                await sink.write(batch)
            assert sink.status()["pending"] == 0  # nothing taken: the runner writes it again
        finally:
            pg_server.start()
        await sink.discard()  # what the runner does before writing again
        with pytest.raises(BadRecordError, match="many") as caught:
            await sink.write(batch)  # checked now that the server is back
        assert caught.value.record is batch[1]
        await sink.write(batch[2:])
        await sink.flush()
        await sink.close()

    asyncio.run(main())
    assert rows(pg_server.dsn, table) == [("a", 2), ("c", 3)]


def test_a_sink_started_while_the_server_is_away_waits_for_it(pg_server, table):  # noqa: F811
    with psycopg.connect(pg_server.dsn) as db:  # an integer key, a jsonb column
        db.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, doc jsonb, note text)")
        db.execute(f"INSERT INTO {table} VALUES (7, '1', 'old'), (8, '2', 'old')")

    async def main():
        sink = PostgresSink(pg_server.dsn, table, key_column="id", columns=["doc", "note"])
        pg_server.stop("immediate")
        try:
            await sink.start()  # not an error yet: a worker starting during an outage
            with pytest.raises(SinkUnavailableError):
                await sink.write([rec(0, 1, {"doc": "pen"})])
            status = sink.status()
        finally:
            pg_server.start()
        await sink.write([rec(0, 1, {"doc": "pen", "note": "n"}), rec(1, "7", None)])
        await sink.flush()
        await sink.close()
        return status

    status = asyncio.run(main())
    assert status["errors"] == 2 and not status["connected"] and status["pending"] == 0
    # "pen" went into the jsonb column as a JSON string; the tombstone's key "7" matched 7
    assert rows(pg_server.dsn, table) == [(1, "pen", "n"), (8, 2, "old")]


def test_a_write_waiting_on_locks_held_elsewhere_is_retried_not_stuck(pg_server, table):  # noqa: F811
    """Two sinks of one app on the same rows: the first holds the rows' locks until the
    app's commit, the second's write waits for them; if the commit flushes the second
    first, it would wait forever. lock_timeout turns the wait into SinkUnavailableError
    (the runner discards, backs off, and writes again after the first committed)."""

    async def main():
        first = PostgresSink(pg_server.dsn, table)
        second = PostgresSink(pg_server.dsn, table, name="second")
        await first.start()
        await second.start()
        await first.write([rec(0, "a", {"by": "first"})])
        with pytest.raises(SinkUnavailableError, match="lock timeout"):
            await second.write([rec(0, "a", {"by": "second"})])
        await second.discard()
        await first.flush()
        await second.write([rec(0, "a", {"by": "second"})])
        await second.flush()
        await first.close()
        await second.close()

    asyncio.run(main())
    assert rows(pg_server.dsn, table) == [("a", {"by": "second"})]


def test_config_keys_are_checked():
    sink = sink_from_config("db", {"dsn": "host=x", "table": "t", "schema": "public"})
    assert (sink.name, sink.table, sink.schema) == ("db", "t", "public")
    with pytest.raises(ConnectorConfigError, match="unknown key.*colums"):
        sink_from_config("db", {"dsn": "host=x", "table": "t", "colums": ["a"]})
    with pytest.raises(ConnectorConfigError, match="dsn is required"):
        sink_from_config("db", {"table": "t"})
    with pytest.raises(ConnectorConfigError, match="each name once"):
        sink_from_config("db", {"dsn": "host=x", "table": "t", "columns": ["a", "a"]})


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_kill_9_mid_batch_loses_and_duplicates_nothing(pg_server, table, tmp_path):  # noqa: F811
    offsets, total = tmp_path / "offsets", 20_000
    kills = []
    for commits in (2, 5, 3):
        process = driver("postgres", pg_server.dsn, table, offsets, total)
        kills.append(kill_after_commits(process, commits))
    run_to_end(driver("postgres", pg_server.dsn, table, offsets, total))
    assert kills == sorted(kills) and kills[-1] < total
    assert sinkdriver.committed(offsets) == total
    expected = sinkdriver.final_rows(total)
    got = rows(pg_server.dsn, table)
    assert len(got) == len(expected)
    assert {key: {"n": n, "label": label, "tags": tags} for key, n, label, tags in got} == expected


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
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
def test_the_table_is_the_records_applied_one_by_one(pg_server, operations, sizes, flushes):  # noqa: F811
    """Oracle: whatever the batch sizes and where the flushes fall, the table after the
    last flush is a dict updated record by record (value: upsert, None: delete)."""
    table = f"oracle_{next(_tables)}"
    records = [
        rec(offset, key, None if value is None else {"v": value})
        for offset, (key, value) in enumerate(operations)
    ]

    async def main():
        sink = PostgresSink(pg_server.dsn, table, columns={"v": "integer"})
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
    assert dict(rows(pg_server.dsn, table)) == model
