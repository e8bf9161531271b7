"""``streamlog tables APP [NAME]``: the list of tables, and a table's contents read from its
changelog (file://, kafka://, a running worker's listener) or from its RocksDB store."""

from __future__ import annotations

import time
import uuid

import pytest
from click.testing import CliRunner

from streamlog.cli.app_loader import load_app
from streamlog.cli.tables import render, table_rows, tables
from tests.cli.test_tools_harness import kafka_broker  # noqa: F401 - a fixture
from tests.dsl.helpers import run, wait_for
from tests.worker.workerproc import WorkerProcess, produce, wait_until

WORDS = "the quick brown fox jumps over the lazy dog the end".split()

APP = """\
import streamlog

app = streamlog.App(
    {app_id!r},
    broker={broker!r},
    datadir={datadir!r},
    store="rocksdb://",
    topic_partitions=2,
    broker_commit_interval=0.2,
    broker_session_timeout=6.0,
    shutdown_timeout=5.0,
)
words = app.topic({app_id!r} + "-words", value_type=str, value_serializer="raw")
# raw keys, placed by hash: "longest" is one key across both partitions (a Faust-style
# table would keep one "word" per input partition, as Faust does)
counts = app.Table(
    "counts", default=int, key_type=str, value_type=int, key_serializer="raw", help="Words so far."
)
longest = app.Table(
    "longest", store="memory://", key_type=str, value_type=str, key_serializer="raw"
)
per_10s = app.Table(
    "per_10s", default=int, key_type=str, value_type=int, key_serializer="raw"
).tumbling(10)


@app.agent(words)
async def count(stream):
    async for word in stream:
        counts[word] += 1
        best = longest.get("word", "")
        if (len(word), word) > (len(best), best):  # whatever the order of arrival
            longest["word"] = word
        per_10s[word[0]] += 1
"""


def write_app(tmp_path, broker: str) -> tuple[str, str]:
    """An app file (unique module name) and its id."""
    app_id = f"tables-{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{app_id.replace('-', '_')}.py"
    datadir = str(tmp_path / "data")
    path.write_text(APP.format(app_id=app_id, broker=broker, datadir=datadir))
    return str(path), app_id


def cli(*args: str, env: dict[str, str] | None = None):
    result = CliRunner().invoke(tables, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def recent_seconds() -> int:
    """A multiple of 10 s, ten minutes ago: a record timestamp that retention (of the
    words topic, of a windowed changelog) does not delete during the test."""
    return int(time.time()) // 10 * 10 - 600


def fill(spec: str, t0: int) -> tuple[str, str, str]:
    """Run the app in this process over WORDS (word i at t0 + i s); its tables as it
    printed them, live."""
    app = load_app(spec)

    async def main():
        async with app:
            for i, word in enumerate(WORDS):
                await app.topics[f"{app.conf.id}-words"].send(
                    key=word, value=word, timestamp=t0 + i
                )
            await wait_for(lambda: sum(v for _, v in app.tables["counts"].items()) == 11)
            await app.conductor.commit()
            return tuple(app.tables[n].as_ansitable() for n in ("counts", "longest", "per_10s"))

    return run(main())


COUNTS = """\
counts
+---------+-------+
| KEY     | VALUE |
+---------+-------+
| 'brown' | 1     |
| 'dog'   | 1     |
| 'end'   | 1     |
| 'fox'   | 1     |
| 'jumps' | 1     |
| 'lazy'  | 1     |
| 'over'  | 1     |
| 'quick' | 1     |
| 'the'   | 3     |
+---------+-------+
"""


@pytest.fixture(params=["file", "kafka"])
def url(request, tmp_path) -> str:
    if request.param == "file":
        return f"file://{tmp_path / 'log'}"
    broker = request.getfixturevalue("kafka_broker")
    return f"kafka://{broker.bootstrap}"


def test_contents_from_the_changelog_and_the_store_match_the_live_table(tmp_path, url):
    spec, _ = write_app(tmp_path, url)
    t0 = recent_seconds()
    live_counts, live_longest, live_windows = fill(spec, t0)
    assert live_counts + "\n" == COUNTS

    from_changelog = cli(spec, "counts")
    assert (from_changelog.exit_code, from_changelog.stdout) == (0, COUNTS)
    from_store = cli(spec, "counts", "--from", "store")
    assert (from_store.exit_code, from_store.stdout) == (0, COUNTS)
    # A memory table has no store on disk, but its changelog holds it.
    longest = cli(spec, "longest")
    assert (longest.exit_code, longest.stdout) == (0, live_longest + "\n")
    assert longest.stdout.splitlines()[4] == "| 'word' | 'quick' |"
    limited = cli(spec, "counts", "--limit", "2")
    assert limited.stdout.splitlines()[4:7] == [
        "| 'brown' | 1     |",
        "| 'dog'   | 1     |",
        "+---------+-------+",
    ]
    no_store = cli(spec, "longest", "--from", "store")
    assert no_store.exit_code == 1
    assert "keeps its store in memory: read it with --from changelog" in no_store.stderr
    # A windowed table: one row per live window, from either place.
    first = f"[{t0 * 1000}, {t0 * 1000 + 10_000})"
    second = f"[{t0 * 1000 + 10_000}, {t0 * 1000 + 20_000})"
    line = "+-----+--------------------------------+-------+"
    assert live_windows.splitlines()[3:] == [
        line,
        *(f"| {k!r} | {first} | 1     |" for k in "bd"),
        f"| 'e' | {second} | 1     |",
        *(f"| {k!r} | {first} | 1     |" for k in "fjloq"),
        f"| 't' | {first} | 3     |",
        line,
    ]
    for where in ("changelog", "store"):
        windows = cli(spec, "per_10s", "--from", where)
        assert (windows.exit_code, windows.stdout) == (0, live_windows + "\n"), where


def test_list_of_tables(tmp_path):
    spec, app_id = write_app(tmp_path, f"file://{tmp_path / 'log'}")
    result = cli(spec)
    width = len(f"{app_id}-longest-changelog")
    assert (result.exit_code, result.stdout.splitlines()) == (
        0,
        [
            "TABLE    KIND   WINDOW        PARTITIONS  STORE    "
            f"{'CHANGELOG'.ljust(width)}  DEFAULT  HELP",
            "counts   Table  -             2           rocksdb  "
            f"{app_id}-counts-changelog   int      Words so far.",
            f"longest  Table  -             2           memory   {app_id}-longest-changelog  -",
            f"per_10s  Table  tumbling 10s  2           rocksdb  {app_id}-per_10s-changelog  int",
        ],
    )


def test_errors_are_one_line(tmp_path):
    spec, app_id = write_app(tmp_path, f"file://{tmp_path / 'log'}")
    unknown = cli(spec, "nope")
    assert unknown.exit_code == 1
    assert unknown.stderr == (
        f"Error: app {app_id} has no table 'nope' (tables: counts, longest, per_10s)\n"
    )
    never_ran = cli(spec, "counts")
    assert never_ran.exit_code == 1
    assert never_ran.stderr.startswith(
        f"Error: changelog topic {app_id}-counts-changelog does not exist on file://"
    )
    no_store = cli(spec, "counts", "--from", "store")
    assert no_store.exit_code == 1
    assert "no store of table 'counts' under" in no_store.stderr
    memory = cli(spec, "counts", "--broker", "memory://")
    assert memory.exit_code == 1
    assert "memory://, whose log lives only inside its worker" in memory.stderr
    missing = cli(str(tmp_path / "missing.py"))
    assert missing.exit_code == 1
    assert missing.stderr == f"Error: no such file: {tmp_path / 'missing.py'}\n"


def test_a_running_worker_is_read_through_its_listener(tmp_path):
    log_dir = tmp_path / "log"
    spec, app_id = write_app(tmp_path, f"file://{log_dir}")
    worker = WorkerProcess(spec, f"file://{log_dir}", str(tmp_path)).start()
    try:
        produce(worker.kafka_url, f"{app_id}-words", WORDS)

        def shows_all(*args: str) -> bool:
            result = cli(spec, "counts", *args)
            return result.exit_code == 0 and result.stdout == COUNTS

        wait_until(shows_all, 30, "the table's changelog to hold every word")
        result = cli(spec, "counts")
        assert result.stderr.startswith(f"file://{log_dir} is in use by a worker; using its")
        # The store is readable while the worker holds it (opened read-only).
        wait_until(lambda: shows_all("--from", "store"), 30, "the store to hold every word")
    finally:
        assert worker.stop() == 0, worker.logs()


def test_decoding_falls_back_to_bytes_and_set_tables_show_sets(tmp_path):
    import streamlog

    app = streamlog.App("rows", broker="memory://", store="memory://")
    plain = app.Table("plain", key_type=str, value_type=int, key_serializer="raw")
    sets = app.SetTable("sets", key_type=str, key_serializer="raw")
    assert table_rows(plain, [(b"a", b"1"), (b"b", b"not json")]) == [
        ("a", 1),
        ("b", b"not json"),
    ]
    assert table_rows(sets, [(b"k", b'[[1, 2], "x"]')]) == [("k", {(1, 2), "x"})]
    assert render(plain, {0: [(b"b", b"2")], 1: [(b"a", b"1")]}, limit=1).splitlines() == [
        "plain",
        "+-----+-------+",
        "| KEY | VALUE |",
        "+-----+-------+",
        "| 'a' | 1     |",
        "+-----+-------+",
    ]
