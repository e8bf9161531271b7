"""``streamlog connect`` with the file connectors from a config file: a CSV file (quoted
commas and newlines, a bad row) read once into a topic and written out as JSON lines; the
worker's ``/connect/`` shows both connectors' counts."""

from __future__ import annotations

import importlib.util
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.broker.brokerproc import STREAMLOG
from tests.worker.workerproc import WorkerProcess, wait_until

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("streamlog.cli.connect") is None,
    reason="needs streamlog connect (issue 18's core part)",
)

CONFIG = """\
[app]
id = "csv-copy"
broker_commit_interval = 0.2

[[source]]
name = "orders-in"
type = "file"
topic = "orders"
path = "in/orders.csv"
format = "csv"
key_field = "id"

[[sink]]
name = "orders-out"
type = "file"
topic = "orders"
path = "out/orders.jsonl"
"""

ROWS = 'id,item,note\n1,book,"a, b"\n2,pen,"two\nlines"\nbroken,row\n3,lamp,""""\n'


def connectors(body: Any) -> dict[str, dict[str, Any]]:
    """Every status dict with a name in the /connect/ answer, by name."""
    found: dict[str, dict[str, Any]] = {}
    if isinstance(body, dict):
        if isinstance(body.get("name"), str) and "kind" in body:
            found[body["name"]] = body
        for value in body.values():
            found.update(connectors(value))
    elif isinstance(body, list):
        for value in body:
            found.update(connectors(value))
    return found


def lines(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    data = path.read_text()
    return [json.loads(line) for line in data[: data.rfind("\n") + 1].splitlines()]


@pytest.mark.timeout(90)
def test_streamlog_connect_copies_a_csv_file_to_json_lines(tmp_path):
    (tmp_path / "connect.toml").write_text(CONFIG)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "orders.csv").write_text(ROWS)
    worker = WorkerProcess(
        "connect.toml",
        broker=None,
        workdir=str(tmp_path),
        extra_args=("--web-port", "0"),
        command=(STREAMLOG, "connect", "connect.toml"),
    )
    out = tmp_path / "out" / "orders.jsonl"
    try:
        worker.start()
        base = worker.wait_for_log(r"web endpoint on http://127\.0\.0\.1:\d+").split(" on ")[1]
        wait_until(lambda: len(lines(out)) >= 3, 60, "3 rows in the output")
        with urllib.request.urlopen(f"{base}/connect/", timeout=10) as answer:
            status = connectors(json.loads(answer.read()))
        assert worker.stop() == 0
    finally:
        worker.kill()
    assert sorted(lines(out), key=lambda row: row["id"]) == [
        {"id": "1", "item": "book", "note": "a, b"},
        {"id": "2", "item": "pen", "note": "two\nlines"},
        {"id": "3", "item": "lamp", "note": '"'},
    ]
    source, sink = status["orders-in"], status["orders-out"]
    assert (source["kind"], source["records"], source["errors"]) == ("source", 3, 1)
    assert "2 fields where the header has 3" in source["last_error"]
    assert (sink["kind"], sink["type"]) == ("sink", "file")
