"""``streamlog connect CONFIG``: connectors from a TOML file in a worker process. A bad
file is refused before anything opens; a running one serves ``/connect/`` and connector
counters on ``/metrics``; killed with SIGKILL mid-stream and restarted, no input line is
lost, none reaches the topic twice, and the database holds every row once."""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.request

import click
import pytest

from streamlog.cli.connect import app_from_config
from tests.broker.brokerproc import STREAMLOG
from tests.worker.workerproc import WorkerProcess, read_topic, run_cli, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {"PYTHONPATH": ROOT}


def write_config(path, body: str) -> str:
    path.write_text(body)
    return str(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[app\n", "not valid TOML"),
        ('[[source]]\nname = "a"\ntopic = "t"\ntype = "file"\n', "[app] needs id"),
        ('[app]\nid = "x"\n', "nothing to run"),
        ('[app]\nid = "x"\nbrokr = "memory://"\n[[sink]]\n', "did you mean 'broker'"),
        ('[app]\nid = "x"\n[[sink]]\ntopic = "t"\ntype = "sqlite"\n', "'name' is required"),
        ('[app]\nid = "x"\n[[sink]]\nname = "s"\ntype = "sqlite"\n', "'topic' is required"),
        (
            '[app]\nid = "x"\n[[source]]\nname = "s"\ntopic = "t"\ntype = "ftp"\n',
            "unknown source type 'ftp'",
        ),
        (
            '[app]\nid = "x"\n[[source]]\nname = "s"\ntopic = "t"\ntype = "file"\nclass = "a:b"\n',
            "exactly one of 'type' and 'class'",
        ),
        (
            '[app]\nid = "x"\n[[sink]]\nname = "s"\ntopic = "t"\nclass = "nosuchmod:Sink"\n',
            "cannot import nosuchmod",
        ),
        (
            '[app]\nid = "x"\n[[sink]]\nname = "s"\ntopic = "t"\n'
            'class = "tests.connect.fileconnectors:SqliteRowsSink"\n',
            "'path' only",
        ),
        ('[app]\nid = "x"\n[surce]\n', "unknown section(s) surce"),
    ],
)
def test_a_bad_config_is_refused_naming_what_is_wrong(tmp_path, body, message):
    config = write_config(tmp_path / "c.toml", body)
    with pytest.raises(click.ClickException) as raised:
        app_from_config(config)
    assert message in raised.value.message


def test_the_command_refuses_a_bad_config_before_anything_starts(tmp_path):
    config = write_config(
        tmp_path / "c.toml", '[app]\nid = "x"\n[[source]]\nname = "s"\ntopic = "t"\ntype = "ftp"\n'
    )
    result = run_cli("connect", config, "--broker", f"file://{tmp_path}/log", env=ENV)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "unknown source type 'ftp'" in result.stderr
    assert not os.path.exists(tmp_path / "log")  # nothing was opened


def test_a_missing_config_file_is_named(tmp_path):
    result = run_cli("connect", str(tmp_path / "none.toml"))
    assert result.returncode == 1
    assert "none.toml" in result.stderr


def rows(db: str) -> dict[int, dict]:
    if not os.path.exists(db):
        return {}
    with sqlite3.connect(db) as conn:
        try:
            return {i: json.loads(v) for i, v in conn.execute("SELECT id, value FROM rows")}
        except sqlite3.OperationalError:
            return {}


def append_lines(path, start: int, count: int) -> None:
    with open(path, "a") as file:
        for i in range(start, start + count):
            file.write(json.dumps({"id": i, "text": f"line {i}", "pad": "x" * 40}) + "\n")


CONFIG = """
[app]
id = "files-to-db"
broker_commit_interval = 0.5

[topic.lines]
partitions = 3

[[source]]
name = "lines-in"
class = "tests.connect.fileconnectors:LinesSource"
topic = "lines"
path = "{input}"
chunk = 200
checkpoint_interval = {interval}

[[sink]]
name = "rows-db"
class = "tests.connect.fileconnectors:SqliteRowsSink"
topic = "lines"
path = "{db}"
"""


@pytest.mark.slow
def test_killed_mid_stream_and_restarted_every_line_arrives_once(tmp_path):
    """Three runs of ``streamlog connect``, the first two killed with SIGKILL: once after
    the log acknowledged records the source never checkpointed (the source checkpoints
    once an hour here: only its first checkpoint exists), once while the sink is half
    way through its rows. Every input line is counted at the end: on the topic exactly
    once, in the table exactly once."""
    input_path = tmp_path / "in.jsonl"
    db = str(tmp_path / "rows.db")
    append_lines(input_path, 0, 6000)
    config = write_config(
        tmp_path / "connect.toml", CONFIG.format(input=input_path, db=db, interval=3600)
    )
    url = f"file://{tmp_path}/log"
    worker = WorkerProcess(
        config,
        broker=url,
        workdir=str(tmp_path),
        command=(STREAMLOG, "connect", config),
        extra_args=("--web-port", "0"),
        env=ENV,
    )
    try:
        worker.start()
        # every line produced and acknowledged (the first run's records are all in the log)
        wait_until(lambda: _count(worker.kafka_url, "lines") >= 6000, 60, "6000 records")
        worker.kill()
        append_lines(input_path, 6000, 20000)
        worker.start()
        wait_until(lambda: 100 < len(rows(db)) < 26000 or len(rows(db)) == 26000, 60, "rows")
        worker.kill()
        second_log = worker.logs()
        worker.start()
        port = int(worker.wait_for_log(r"web endpoint on http://[^ ]+:(\d+)").rsplit(":", 1)[1])
        wait_until(lambda: len(rows(db)) == 26000, 90, "26000 rows")
        status = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/connect/", timeout=10))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
        wait_until(lambda: _count(worker.kafka_url, "lines") >= 26000, 60, "26000 records")
        assert worker.stop() == 0, worker.logs()
    finally:
        worker.kill()
    assert "after its checkpoint: matched" in second_log
    records = read_topic(url, "lines", 26000)
    ids = sorted(json.loads(r.value)["id"] for r in records)
    assert ids == list(range(26000))  # every line once on the topic
    table = rows(db)
    assert sorted(table) == list(range(26000))
    assert table[12345] == {"id": 12345, "text": "line 12345", "pad": "x" * 40}
    assert status["sources"]["lines-in"]["kind"] == "source"
    assert status["sinks"]["rows-db"]["topic"] == "lines"
    assert b'streamlog_connector_records_total{app="files-to-db",connector="rows-db"' in metrics
    assert '<tr data-connector="lines-in"><td>lines-in</td><td>source</td><td>lines</td>' in page
    assert '<tr data-connector="rows-db"><td>rows-db</td><td>sink</td><td>lines</td>' in page


def _count(url: str, topic: str) -> int:
    try:
        return len(read_topic(url, topic, 0, timeout=10))
    except Exception:  # noqa: BLE001 - not created yet
        return 0


@pytest.mark.slow
def test_the_source_moves_to_the_next_leader_and_the_sink_is_shared(tmp_path):
    """Two ``streamlog connect`` workers of one app on a broker: the source runs on the
    leader only; when the leader stops, the other takes the source over from its
    checkpoint. Every line reaches the topic once and the table once."""
    from tests.broker.brokerproc import BrokerProcess

    input_path = tmp_path / "in.jsonl"
    db = str(tmp_path / "rows.db")
    append_lines(input_path, 0, 3000)
    config = write_config(
        tmp_path / "connect.toml", CONFIG.format(input=input_path, db=db, interval=0.5)
    )
    broker = BrokerProcess(str(tmp_path / "broker"), ("--group-initial-rebalance-delay-ms", "0"))
    broker.start()
    workers = [
        WorkerProcess(
            config,
            broker=f"kafka://{broker.bootstrap}",
            workdir=str(tmp_path / name),
            command=(STREAMLOG, "connect", config),
            env=ENV,
        )
        for name in ("a", "b")
    ]
    url = f"kafka://{broker.bootstrap}"
    try:
        for worker in workers:
            os.makedirs(worker.workdir)
        first, second = workers
        first.start()
        wait_until(lambda: len(rows(db)) == 3000, 60, "3000 rows")
        second.start()
        append_lines(input_path, 3000, 3000)
        wait_until(lambda: len(rows(db)) == 6000, 60, "6000 rows")
        assert first.stop() == 0, first.logs()
        append_lines(input_path, 6000, 3000)
        wait_until(lambda: len(rows(db)) == 9000, 60, "9000 rows after the hand-over")
        assert second.stop() == 0, second.logs()
        records = read_topic(url, "lines", 9000)
    finally:
        for worker in workers:
            worker.kill()
        broker.stop()
    assert "source lines-in started at None" in first.logs()
    assert "source lines-in started at None" not in second.logs()
    assert "source lines-in started at" in second.logs()  # after the first one stopped
    assert sorted(json.loads(r.value)["id"] for r in records) == list(range(9000))
    assert sorted(rows(db)) == list(range(9000))
