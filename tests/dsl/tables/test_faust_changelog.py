"""Moving a Faust app to streamlog with its state, and back.

One program (``faust_programs/wordcount.py``, written as Faust's examples are) runs on a
real ``streamlog broker``: first under faust-streaming, which counts words into two
tables (one holding Records, with no value_type); it is stopped; then the same file runs
under ``streamlog worker``, which must recover both tables from Faust's changelogs (equal
contents, Records as Records) and go on counting from there; then Faust again, which must
recover what streamlog wrote. The only difference between the runs is where ``import
faust`` comes from: the real package in ``.venv-faust`` (``scripts/setup.sh`` builds it
from ``requirements-faust.txt``), then a two-name shim over streamlog
(``faust_programs/shim``), until the ``streamlog.faust`` namespace lands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.broker.brokerproc import STREAMLOG, BrokerProcess

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAM = os.path.join(HERE, "faust_programs", "wordcount.py")
SHIM = os.path.join(HERE, "faust_programs", "shim")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
FAUST_PYTHON = os.path.join(REPO, ".venv-faust", "bin", "python")

pytestmark = pytest.mark.slow

FIRST = ["the quick brown fox", "jumps over the lazy dog", "the end"]
SECOND = ["the fox is quick", "a dog"]


def counted(posts: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for post in posts:
        for word in post.split():
            counts[word] = counts.get(word, 0) + 1
    return counts


def tables(posts: list[str]) -> dict[str, Any]:
    """What the program's dump shows after ``posts``: the counts, and the Records."""
    counts = counted(posts)
    return {
        "word_counts": counts,
        "latest": {word: ["Count", count] for word, count in counts.items()},
    }


class Worker:
    """One run of the program: faust-streaming or streamlog, as a child process."""

    def __init__(self, kind: str, env: dict[str, str], log_path: str) -> None:
        self.kind = kind
        if kind == "faust":
            argv = [FAUST_PYTHON, PROGRAM, "worker", "--loglevel", "warn"]
        else:
            argv = [STREAMLOG, "worker", PROGRAM]
            env = {**env, "PYTHONPATH": SHIM}
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv, env=env, cwd=os.path.dirname(PROGRAM), stdout=log, stderr=log
            )

    def logs(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def wait_until(check: Callable[[], bool], what: str, worker: Worker, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if worker.process.poll() is not None:
            raise AssertionError(f"{worker.kind} exited while waiting for {what}:\n{worker.logs()}")
        time.sleep(0.2)
    raise AssertionError(f"{worker.kind}: no {what} within {timeout} s:\n{worker.logs()[-4000:]}")


def read_dump(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            data: dict[str, Any] = json.load(f)
            return data
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def produce(bootstrap: str, topic: str, posts: list[str]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for post in posts:
            producer.send(topic, json.dumps(post).encode())
        producer.flush(30)
    finally:
        producer.close(10)


def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    """The topics a Faust deployment creates beforehand: Faust creates only its internal
    topics, and a topic auto-created by a first send gets the broker's one partition, which
    Faust then refuses against its two-partition changelog (PartitionsMismatch)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        admin.close()


def committed_to_end(bootstrap: str, group: str, topics: list[str]) -> bool:
    """The group's committed offsets reach the end of every partition of ``topics``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tps = [
            TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())
        ]
        ends = consumer.end_offsets(tps)
        return all((consumer.committed(tp) or 0) >= ends[tp] for tp in tps)
    finally:
        consumer.close(autocommit=False)


def changelog(bootstrap: str, topic: str) -> dict[bytes, bytes | None]:
    """The latest value per key of a changelog topic, as raw bytes."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        latest: dict[bytes, bytes | None] = {}
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(1000).values():
                for record in records:
                    latest[record.key] = record.value
        return latest
    finally:
        consumer.close()


def test_a_faust_apps_tables_move_to_streamlog_and_back(tmp_path):
    if not os.path.exists(FAUST_PYTHON):
        pytest.skip("no .venv-faust (scripts/setup.sh builds it from requirements-faust.txt)")
    broker = BrokerProcess(
        str(tmp_path / "broker"), ("--group-initial-rebalance-delay-ms", "0")
    ).start()
    app_id = "wcmig"
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        "WC_APP_ID": app_id,
        "WC_BROKER": f"kafka://{broker.bootstrap}",
        "WC_DATADIR": str(tmp_path / "data"),
        "WC_DUMP": str(tmp_path / "tables.json"),
    }
    dump = env["WC_DUMP"]
    sources = [f"{app_id}-posts", f"{app_id}-words"]
    runs: list[Worker] = []

    def run(kind: str, posts_before: list[str], posts: list[str]) -> dict[str, Any]:
        """Start ``kind``, wait until it shows the tables of ``posts_before`` (what it
        recovered), send ``posts``, wait for their counts, stop it; the final tables."""
        if os.path.exists(dump):
            os.unlink(dump)
        worker = Worker(kind, env, str(tmp_path / f"{kind}-{len(runs)}.log"))
        runs.append(worker)
        recovered = tables(posts_before)
        wait_until(lambda: read_dump(dump) == recovered, "recovered tables", worker)
        produce(broker.bootstrap, sources[0], posts)
        final = tables(posts_before + posts)
        wait_until(lambda: read_dump(dump) == final, "the new counts", worker)
        wait_until(lambda: committed_to_end(broker.bootstrap, app_id, sources), "commits", worker)
        code = worker.stop()
        assert code == 0 or kind == "faust", f"{kind} exited with {code}:\n{worker.logs()}"
        return final

    try:
        create_topics(broker.bootstrap, sources, 2)
        run("faust", [], FIRST)
        faust_bytes = changelog(broker.bootstrap, f"{app_id}-word_counts-changelog")
        assert faust_bytes[b'"the"'] == b"3"  # Faust's own JSON key and value
        run("streamlog", FIRST, SECOND)
        both = changelog(broker.bootstrap, f"{app_id}-word_counts-changelog")
        assert both[b'"the"'] == b"4" and both[b'"a"'] == b"1"
        records = changelog(broker.bootstrap, f"{app_id}-latest-changelog")
        assert records[b'"a"'] == b'{"word":"a","count":1,"__faust":{"ns":"wordcount.Count"}}'
        run("faust", FIRST + SECOND, ["the last"])  # and back: Faust reads streamlog's writes
    finally:
        for worker in runs:
            worker.stop()
        code = broker.stop()
        assert code == 0, f"broker exited with {code}:\n{broker.logs()}"
