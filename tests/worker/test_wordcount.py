"""``streamlog worker`` as a real process running a word count, on ``file://`` (fed and
read through the worker's Kafka listener by other processes) and on ``kafka://`` (a
``streamlog broker`` process): exact outputs, a clean SIGTERM stop with its lifecycle
lines, and no re-processing after a restart."""

from __future__ import annotations

import os
import re

import pytest

from streamlog.log.partitioner import partition_for_key
from tests.broker.brokerproc import BrokerProcess

from .workerproc import APPS, WorkerProcess, group_offsets, read_topic, read_values, run_cli

WORDCOUNT = os.path.join(APPS, "wordcount.py")

FIRST = "the cat\nthe dog the end\n"
FIRST_COUNTS = ["cat=1", "dog=1", "end=1", "the=1", "the=2", "the=3"]
SECOND = "a b a\n"  # after a restart the counter starts again from zero
SECOND_COUNTS = ["a=1", "a=2", "b=1"]
ALL_COUNTS = sorted(FIRST_COUNTS + SECOND_COUNTS + ["x=1", "x=2", "y=1"])

LIFECYCLE = [
    r"app wordcount starting on ",
    r"partitions assigned: wordcount-__assignor-__leader \[0\]; words \[0, 1, 2, 3\]",
    r"app wordcount started: 1 agent\(s\), 0 timer\(s\)/task\(s\)",
    r"worker ready",
    r"received SIGTERM",
    r"app wordcount stopping",
    r"agent wordcount\.count stopped",
    r"final commit: \d+ partition\(s\)",
    r"app wordcount stopped",
]


def assert_lifecycle(log: str) -> None:
    """Every lifecycle line is there, in order."""
    position = 0
    for line in LIFECYCLE:
        match = re.compile(line).search(log, position)
        assert match, f"{line!r} missing after position {position}:\n{log}"
        position = match.end()


def consume(url: str, topic: str, count: int, cwd=None) -> list[str]:
    """``streamlog consume``: the first ``count`` records, waiting for the worker to write them."""
    out = run_cli(
        "consume", topic, "--from-beginning", "--max", str(count), "--timeout-ms", "20000",
        "--broker", url, cwd=cwd,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return sorted(out.stdout.splitlines())


def committed_words(url: str) -> int:
    return sum(o for tp, o in group_offsets(url, "wordcount").items() if tp.topic == "words")


@pytest.mark.timeout(90)
def test_wordcount_on_file_through_the_listener(tmp_path):
    # The worker runs on the app's default log, file://./.streamlog in its directory;
    # the commands below run in the same directory.
    default = "file://./.streamlog"
    url = f"file://{tmp_path / '.streamlog'}"
    worker = WorkerProcess(WORDCOUNT, None, str(tmp_path))
    try:
        worker.start()
        address = worker.listener()
        served = worker.wait_for_log(r"over the Kafka protocol on 127\.0\.0\.1:\d+")
        assert served.endswith(address)

        # another process feeds it: `streamlog produce` finds the listener in DIR/.listener
        out = run_cli("produce", "words", "--broker", default, input=FIRST, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert (
            out.stderr == f"{default} is in use by a worker; using its listener kafka://{address}\n"
        )
        assert consume(default, "counts", 6, cwd=tmp_path) == FIRST_COUNTS

        assert worker.stop() == 0, worker.logs()
        assert_lifecycle(worker.logs())
        assert not os.path.exists(os.path.join(worker.data_dir, ".listener"))
        assert committed_words(url) == 2  # both lines, committed by the clean stop
        assert read_values(url, "counts") == FIRST_COUNTS

        # restart: the committed lines are not read again. New input comes from a Kafka
        # client (confluent-kafka) on the new listener and from `streamlog send`, which
        # finds the listener through the app's own broker setting.
        from confluent_kafka import Producer

        worker.start()
        address = worker.listener()
        producer = Producer({"bootstrap.servers": address, "log.connection.close": False})
        producer.produce("words", value=SECOND.strip().encode())
        assert producer.flush(20) == 0
        del producer  # closes its connections before the worker goes away
        out = run_cli("send", WORDCOUNT, "words", "x y x", "--key", "k", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        sent = re.fullmatch(r"words\[(\d+)\]@(\d+)\n", out.stdout)
        assert sent and int(sent.group(1)) == partition_for_key(b"k", 4), out.stdout
        assert (
            out.stderr == f"{default} is in use by a worker; using its listener kafka://{address}\n"
        )
        assert consume(default, "counts", 12, cwd=tmp_path) == ALL_COUNTS
        assert worker.stop() == 0, worker.logs()
        assert_lifecycle(worker.logs())
    finally:
        worker.kill()
    assert read_values(url, "counts") == ALL_COUNTS
    assert committed_words(url) == 4
    inputs = read_topic(url, "words")
    assert sorted(r.value for r in inputs) == [b"a b a", b"the cat", b"the dog the end", b"x y x"]
    [keyed] = [(r.partition, r.offset, r.key) for r in inputs if r.value == b"x y x"]
    assert keyed == (int(sent.group(1)), int(sent.group(2)), b"k")


@pytest.mark.timeout(90)
def test_wordcount_on_a_kafka_broker(tmp_path):
    broker = BrokerProcess(
        str(tmp_path / "broker"), extra_args=("--group-initial-rebalance-delay-ms", "0")
    ).start()
    url = f"kafka://{broker.bootstrap}"
    worker = WorkerProcess(WORDCOUNT, url, str(tmp_path))
    try:
        worker.start()
        assert "over the Kafka protocol" not in worker.logs()  # no listener on kafka://
        out = run_cli("produce", "words", "--broker", url, input=FIRST)
        assert out.returncode == 0, out.stderr
        assert consume(url, "counts", 6) == FIRST_COUNTS
        assert worker.stop() == 0, worker.logs()
        assert_lifecycle(worker.logs())
        assert committed_words(url) == 2

        worker.start()
        out = run_cli("produce", "words", "--broker", url, input=SECOND)
        assert out.returncode == 0, out.stderr
        assert consume(url, "counts", 9) == sorted(FIRST_COUNTS + SECOND_COUNTS)
        assert worker.stop() == 0, worker.logs()
        assert_lifecycle(worker.logs())
        assert read_values(url, "counts") == sorted(FIRST_COUNTS + SECOND_COUNTS)
        assert committed_words(url) == 3
    finally:
        worker.kill()
        code = broker.stop()
    assert code == 0, broker.logs()
