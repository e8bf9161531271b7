"""The file connectors in a real worker process: a JSON lines file followed into a topic
(``FileSource``), the topic written to rotated files (``FileSink``), the worker killed with
SIGKILL mid-stream twice and restarted, the input file rotated under it: every input
line reaches the topic once and the output files once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import streamlog
from tests.worker.workerproc import WorkerProcess, read_topic, read_values, wait_until

pytestmark = pytest.mark.skipif(
    not hasattr(streamlog.App, "source"),
    reason="needs app.source/app.sink (the connect runner, issue 18's core part)",
)

APP = """\
import streamlog
from streamlog.connect.files import FileSink, FileSource

app = streamlog.App(
    "filepipe",
    topic_partitions=3,
    broker_commit_interval=0.2,
    shutdown_timeout=5.0,
)
app.topic("orders", value_serializer="json")
app.source(
    FileSource("in/orders.jsonl", follow=True, key_field="id", batch_size=300,
               poll_interval=0.05, name="orders-in"),
    topic="orders",
    checkpoint_interval=0.2,
)
app.sink("orders", FileSink("out/orders.jsonl", max_bytes=100_000, name="orders-out"))
"""  # fmt: skip


def append_lines(path: Path, start: int, stop: int) -> None:
    with open(path, "a", encoding="utf-8") as out:
        for n in range(start, stop):
            out.write(json.dumps({"id": f"o-{n}", "n": n, "pad": "p" * 40}) + "\n")


def output_numbers(directory: Path) -> list[int]:
    """The ``n`` of every complete line in the sink's files (read again when a file is
    rotated away while being listed)."""
    while True:
        numbers: list[int] = []
        try:
            for path in sorted(directory.glob("orders*.jsonl")):
                data = path.read_bytes()
                complete = data[: data.rfind(b"\n") + 1]
                numbers += [json.loads(line)["n"] for line in complete.splitlines()]
        except FileNotFoundError:
            continue
        return numbers


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_file_to_topic_to_files_through_kill_9_and_rotation(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    inbox = tmp_path / "in"
    inbox.mkdir()
    source_file = inbox / "orders.jsonl"
    out = tmp_path / "out"
    worker = WorkerProcess("app.py", broker=None, workdir=str(tmp_path))
    total = 0

    def grow(count: int) -> None:
        nonlocal total
        append_lines(source_file, total, total + count)
        total += count

    def written_at_least(count: int) -> bool:
        return out.is_dir() and len(output_numbers(out)) >= count

    try:
        grow(3000)
        worker.start()
        for round_ in range(2):
            wait_until(lambda: written_at_least(total - 1500), 60, "output files growing")
            if round_ == 0:
                # a position saved: a source with none reads the path's file from its
                # start, and would not know the file renamed away while it was down
                read_topic(worker.kafka_url, "filepipe-connect-offsets", 1)
            grow(2000)
            wait_until(lambda: written_at_least(total - 1800), 60, "the new lines coming")
            worker.kill()  # mid-stream: reading, producing and writing
            if round_ == 0:
                os.rename(source_file, inbox / "orders.jsonl.1")  # rotated while it is down
                grow(1000)
            worker.start()
        grow(500)
        os.rename(source_file, inbox / "orders.jsonl.2")  # rotated while it runs
        grow(500)
        wait_until(lambda: written_at_least(total), 90, f"all {total} lines in the files")
        assert worker.stop() == 0
    finally:
        worker.kill()

    numbers = output_numbers(out)
    assert len(numbers) == total == 9000
    assert sorted(numbers) == list(range(total))  # each line once in the files
    assert len(list(out.glob("orders.0*.jsonl"))) > 3  # rotated along the way
    values = read_values(f"file://{tmp_path}/.streamlog", "orders", total)
    assert sorted(json.loads(v)["n"] for v in values) == list(range(total))  # once in the log
