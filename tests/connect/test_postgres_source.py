"""The PostgreSQL source against a real server: rows in column order with their
positions, a restart from any record's position reading on without loss, runs of equal
timestamps never split across a position, values turned into JSON, the server stopped
and started under a polling source, and config checking."""

from __future__ import annotations

import asyncio
import itertools
import json

import psycopg
import pytest

from streamlog.connect.base import Source
from streamlog.connect.errors import ConnectorConfigError, SourceError
from streamlog.connect.postgres import PostgresSource, source_from_config
from tests.connect.pgserver import pg_server  # noqa: F401 - the fixture

_tables = itertools.count()


@pytest.fixture
def table() -> str:
    return f"events_{next(_tables)}"


def execute(dsn: str, sql: str, params=None) -> None:
    with psycopg.connect(dsn) as db:
        db.execute(sql, params)


async def read_all(source: PostgresSource, position=None, idle_polls: int = 1) -> list:
    """Everything the source reads from ``position`` until ``idle_polls`` polls in a row
    come back empty."""
    await source.start(position)
    out, idle = [], 0
    for _ in range(1000):
        records = await source.poll()
        idle = 0 if records else idle + 1
        out.extend(records)
        if idle >= idle_polls:
            return out
    raise AssertionError(f"still reading after 1000 polls ({len(out)} records)")


def test_rows_in_order_and_a_restart_at_any_position_reads_on(pg_server, table):  # noqa: F811
    execute(pg_server.dsn, f"CREATE TABLE {table} (id bigint, body text)")
    execute(
        pg_server.dsn,
        f"INSERT INTO {table} SELECT g, 'row ' || g FROM generate_series(1, 250) g",
    )
    execute(pg_server.dsn, f"INSERT INTO {table} VALUES (NULL, 'no id: never read')")

    async def main():
        source = PostgresSource(pg_server.dsn, table, "id", key="id", batch=64, poll_interval=0.01)
        assert isinstance(source, Source)
        everything = await read_all(source)
        status = source.status()
        await source.close()
        whole = PostgresSource(pg_server.dsn, table, "id", batch=1000, poll_interval=0.01)
        assert len(await read_all(whole, idle_polls=2)) == 250  # the NULL row never
        await whole.close()
        resumed = {}
        for at in (0, 63, 64, 200, 249):
            again = PostgresSource(pg_server.dsn, table, "id", batch=64, poll_interval=0.01)
            resumed[at] = await read_all(again, everything[at].position)
            await again.close()
        return everything, status, resumed

    everything, status, resumed = asyncio.run(main())
    assert [r.value for r in everything] == [{"id": i, "body": f"row {i}"} for i in range(1, 251)]
    assert [r.position for r in everything] == list(range(1, 251))
    assert [r.key for r in everything] == [str(i) for i in range(1, 251)]
    assert status["records"] == 250 and status["position"] == 250 and status["errors"] == 0
    for at, records in resumed.items():
        assert [r.value["id"] for r in records] == list(range(at + 2, 251))


def test_equal_values_are_never_split_across_a_position(pg_server, table):  # noqa: F811
    # 40 rows on 9 distinct timestamps, in runs of 1 to 9; batches of 4 end inside runs
    execute(pg_server.dsn, f"CREATE TABLE {table} (n int, at timestamptz)")
    sizes = [1, 9, 2, 5, 4, 3, 7, 1, 8]
    n = 0
    for second, size in enumerate(sizes):
        for _ in range(size):
            execute(
                pg_server.dsn,
                f"INSERT INTO {table} VALUES (%s, timestamptz '2026-12-01 00:00:00+00'"
                " + make_interval(secs => %s))",
                (n, second),
            )
            n += 1

    async def main():
        source = PostgresSource(pg_server.dsn, table, "at", batch=4, poll_interval=0.01)
        everything = await read_all(source)
        await source.close()
        resumed = []
        for record in everything:
            again = PostgresSource(pg_server.dsn, table, "at", batch=4, poll_interval=0.01)
            resumed.append(await read_all(again, record.position))
            await again.close()
        return everything, resumed

    everything, resumed = asyncio.run(main())
    assert sorted(r.value["n"] for r in everything) == list(range(40))  # each row once
    assert everything[0].value["at"] == "2026-12-01T00:00:00+00:00"
    run_start = {}
    for i, record in enumerate(everything):
        run_start.setdefault(record.value["at"], i)
    for i, records in enumerate(resumed):
        # from record i's position: every row after it, plus at most the rows of its own
        # run already read (the runner's matching drops those), never an earlier run
        j = len(everything) - len(records)
        assert sorted(r.value["n"] for r in records) == sorted(r.value["n"] for r in everything[j:])
        assert run_start[everything[i].value["at"]] <= j <= i + 1


def test_values_become_json(pg_server, table):  # noqa: F811
    execute(
        pg_server.dsn,
        f"CREATE TABLE {table} (id int, price numeric(10, 3), at timestamptz, day date,"
        " uid uuid, raw bytea, doc jsonb, flag boolean, ratio float8, nothing text)",
    )
    execute(
        pg_server.dsn,
        f"INSERT INTO {table} VALUES (1, 12.5, '2026-12-01 10:00:00.123456+00', '2026-12-02',"
        " 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff', '{\"a\": [1, null]}', true, 0.5,"
        " NULL)",
    )

    async def main():
        source = PostgresSource(
            pg_server.dsn, table, "id", columns=["id", "price", "at", "day", "uid", "raw",
                                                  "doc", "flag", "ratio", "nothing"]
        )  # fmt: skip
        records = await read_all(source)
        await source.close()
        return records

    (record,) = asyncio.run(main())
    assert record.value == {
        "id": 1,
        "price": "12.500",
        "at": "2026-12-01T10:00:00.123456+00:00",
        "day": "2026-12-02",
        "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "raw": "AP8=",
        "doc": {"a": [1, None]},
        "flag": True,
        "ratio": 0.5,
        "nothing": None,
    }
    json.dumps(record.value)  # JSON as it is
    assert record.key is None and record.position == 1


def test_the_server_going_away_and_back_loses_no_row(pg_server, table):  # noqa: F811
    execute(pg_server.dsn, f"CREATE TABLE {table} (id bigserial PRIMARY KEY, v int)")
    execute(pg_server.dsn, f"INSERT INTO {table} (v) SELECT g FROM generate_series(1, 100) g")

    async def main():
        source = PostgresSource(pg_server.dsn, table, "id", batch=30, poll_interval=0.01)
        first = await read_all(source)
        pg_server.stop("immediate")
        try:
            for _ in range(3):
                assert await source.poll() == []  # counted, retried, not raised
            away = source.status()
        finally:
            pg_server.start()
        execute(pg_server.dsn, f"INSERT INTO {table} (v) SELECT g FROM generate_series(101, 150) g")
        rest = await read_all(source, source.status()["position"])
        await source.close()
        return first, away, rest

    first, away, rest = asyncio.run(main())
    assert away["errors"] >= 1 and not away["connected"] and away["last_error"]
    assert [r.value["v"] for r in first + rest] == list(range(1, 151))


def test_delay_holds_back_young_rows(pg_server, table):  # noqa: F811
    execute(pg_server.dsn, f"CREATE TABLE {table} (n int, at timestamptz)")
    execute(
        pg_server.dsn,
        f"INSERT INTO {table} VALUES (1, now() - interval '1 hour'), (2, now() - interval '2 s'),"
        " (3, now() + interval '1 hour')",
    )

    async def main():
        held = PostgresSource(pg_server.dsn, table, "at", delay=600, poll_interval=0.01)
        first = await read_all(held)
        await held.close()
        on = PostgresSource(pg_server.dsn, table, "at", poll_interval=0.01)
        rest = await read_all(on, first[-1].position)
        await on.close()
        return first, rest

    first, rest = asyncio.run(main())
    assert [r.value["n"] for r in first] == [1]  # 2 and 3 are younger than 10 minutes
    assert [r.value["n"] for r in rest] == [2, 3]


def test_a_missing_table_is_an_error_not_a_retry(pg_server):  # noqa: F811
    async def main():
        source = PostgresSource(pg_server.dsn, "no_such_table", "id")
        await source.start(None)
        try:
            with pytest.raises(SourceError, match="no_such_table"):
                await source.poll()
        finally:
            await source.close()

    asyncio.run(main())


def test_config_keys_are_checked():
    source = source_from_config(
        "events-in", {"dsn": "host=x", "table": "events", "column": "id", "batch": 10}
    )
    assert (source.name, source.column, source.batch) == ("events-in", "id", 10)
    with pytest.raises(ConnectorConfigError, match="column is required"):
        source_from_config("s", {"dsn": "host=x", "table": "events"})
    with pytest.raises(ConnectorConfigError, match="unknown key.*intervall"):
        source_from_config("s", {"dsn": "x", "table": "t", "column": "id", "intervall": 1})
    with pytest.raises(ConnectorConfigError, match="delay = -1.0"):
        source_from_config("s", {"dsn": "x", "table": "t", "column": "at", "delay": -1})
    with pytest.raises(ConnectorConfigError, match="batch = 0"):
        source_from_config("s", {"dsn": "x", "table": "t", "column": "id", "batch": 0})
    with pytest.raises(ConnectorConfigError, match="columns must include id"):
        source_from_config("s", {"dsn": "x", "table": "t", "column": "id", "columns": ["v"]})
