"""The database connectors end to end in ``streamlog connect`` (a worker process, a real
PostgreSQL server): a PostgreSQL table polled into a topic and written back out to a
PostgreSQL table and a SQLite file, the worker killed with SIGKILL twice mid-stream and
restarted while rows keep arriving. Every source row is counted at the end: exactly once
on the topic, once in each table (or, for the rows the typed table refuses, in the
sink's dead-letter topic)."""

from __future__ import annotations

import json
import sqlite3

import psycopg
import pytest

from tests.broker.brokerproc import STREAMLOG
from tests.connect.pgserver import pg_server  # noqa: F401 - the fixture
from tests.worker.workerproc import WorkerProcess, read_topic, wait_until

pytest.importorskip("streamlog.connect.sink_runner", reason="needs the connector runner")

CONFIG = """
[app]
id = "db-pipe"
broker_commit_interval = 0.3

[topic.signups]
partitions = 3

[[source]]
name = "signups-in"
type = "postgres"
topic = "signups"
dsn = "{dsn}"
table = "signups"
column = "id"
key = "email"
batch = 500
poll_interval = 0.2

[[sink]]
name = "signups-pg"
type = "postgres"
topic = "signups"
dsn = "{dsn}"
table = "signups_copy"
key_column = "email"
columns = {{ id = "bigint", qty = "integer" }}

[[sink]]
name = "signups-sqlite"
type = "sqlite"
topic = "signups"
path = "{db}"
table = "signups"
"""


def qty(i: int) -> str:
    return "many" if i % 1000 == 7 else str(i % 50)  # the typed table refuses "many"


def insert(dsn: str, start: int, count: int) -> None:
    with psycopg.connect(dsn) as db:
        db.execute(
            "INSERT INTO signups (id, email, qty) SELECT g, 'user' || g || '@example.com',"
            " CASE WHEN g %% 1000 = 7 THEN 'many' ELSE (g %% 50)::text END"
            " FROM generate_series(%s::bigint, %s::bigint) g",
            (start, start + count - 1),
        )


def pg_rows(dsn: str) -> dict[str, tuple[int, int]]:
    with psycopg.connect(dsn) as db:
        try:
            found = db.execute("SELECT email, id, qty FROM signups_copy").fetchall()
        except psycopg.errors.UndefinedTable:
            return {}
    return {email: (i, q) for email, i, q in found}


def sqlite_rows(path) -> dict[str, dict]:
    try:
        with sqlite3.connect(path) as db:
            return {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM signups")}
    except sqlite3.OperationalError:
        return {}


def dead_letters(url: str) -> list:
    try:
        return read_topic(url, "db-pipe-signups-pg-dlq", 0, timeout=10)
    except Exception:  # noqa: BLE001 - not created yet
        return []


@pytest.mark.slow
def connect_pipeline(pg_server, tmp_path, rows: int):  # type: ignore[no-untyped-def]  # noqa: F811
    """A database holding ``rows`` signups and a ``streamlog connect`` worker (not started)
    for CONFIG's pipeline: (dsn, the SQLite file, the log's URL, the worker)."""
    dsn = pg_server.new_database()
    with psycopg.connect(dsn) as db:
        db.execute("CREATE TABLE signups (id bigint PRIMARY KEY, email text, qty text)")
    insert(dsn, 1, rows)
    sqlite_path = tmp_path / "signups.db"
    config = tmp_path / "connect.toml"
    config.write_text(CONFIG.format(dsn=dsn, db=sqlite_path))
    url = f"file://{tmp_path}/log"
    worker = WorkerProcess(
        str(config),
        broker=url,
        workdir=str(tmp_path),
        command=(STREAMLOG, "connect", str(config)),
        extra_args=("--web-port", "0"),
    )
    return dsn, sqlite_path, url, worker


@pytest.mark.timeout(240)
def test_a_table_through_a_topic_into_two_databases_survives_kill_9(pg_server, tmp_path):  # noqa: F811
    dsn, sqlite_path, url, worker = connect_pipeline(pg_server, tmp_path, 12_000)
    total, refused = 20_000, {i for i in range(1, 20_001) if qty(i) == "many"}

    def done() -> bool:
        return len(pg_rows(dsn)) == total - len(refused) and len(sqlite_rows(sqlite_path)) == total

    try:
        worker.start()
        wait_until(lambda: len(pg_rows(dsn)) > 2000, 60, "a first part in PostgreSQL")
        worker.kill()  # SIGKILL: mid-stream, sinks between commits
        worker.start()
        insert(dsn, 12_001, 8_000)  # rows keep arriving while it runs
        wait_until(lambda: len(sqlite_rows(sqlite_path)) > 13_000, 90, "more rows in SQLite")
        worker.kill()
        worker.start()
        wait_until(done, 120, "every row in both tables")
        wait_until(
            lambda: {json.loads(r.value)["id"] for r in dead_letters(worker.kafka_url)} == refused,
            60,
            "the refused rows dead-lettered",
        )
        assert worker.stop() == 0, worker.logs()
    finally:
        worker.kill()

    on_topic = [json.loads(r.value)["id"] for r in read_topic(url, "signups", total)]
    assert sorted(on_topic) == list(range(1, total + 1))  # each row once on the topic
    expected = {f"user{i}@example.com": (i, qty(i)) for i in range(1, total + 1)}
    assert pg_rows(dsn) == {email: (i, int(q)) for email, (i, q) in expected.items() if q != "many"}
    assert sqlite_rows(sqlite_path) == {
        email: {"id": i, "email": email, "qty": q} for email, (i, q) in expected.items()
    }
    letters = dead_letters(url)
    assert {json.loads(r.value)["id"] for r in letters} == refused
    assert all(b"invalid input syntax" in b"".join(v for _, v in r.headers) for r in letters)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_database_going_away_and_back_loses_no_row(pg_server, tmp_path):  # noqa: F811
    """PostgreSQL stopped under a running ``streamlog connect`` (its source polling, its
    sink writing) and started again: the worker rides it out, every row arrives once."""
    dsn, sqlite_path, url, worker = connect_pipeline(pg_server, tmp_path, 6_000)
    total, refused = 9_000, {i for i in range(1, 9_001) if qty(i) == "many"}
    try:
        worker.start()
        wait_until(lambda: len(sqlite_rows(sqlite_path)) > 1000, 60, "a first part")
        pg_server.stop("immediate")
        try:
            # the runner sees the outage and retries; the worker keeps running
            worker.wait_for_log(r"sink signups-pg: unavailable", timeout=60)
            assert worker.process is not None and worker.process.poll() is None
        finally:
            pg_server.start()
        insert(dsn, 6_001, 3_000)
        wait_until(
            lambda: (
                len(pg_rows(dsn)) == total - len(refused) and len(sqlite_rows(sqlite_path)) == total
            ),
            120,
            "every row in both tables",
        )
        assert worker.stop() == 0, worker.logs()
    finally:
        worker.kill()
    on_topic = [json.loads(r.value)["id"] for r in read_topic(url, "signups", total)]
    assert sorted(on_topic) == list(range(1, total + 1))
    assert sorted(pg_rows(dsn)) == sorted(
        f"user{i}@example.com" for i in range(1, total + 1) if i not in refused
    )
