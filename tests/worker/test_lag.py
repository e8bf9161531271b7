"""Consumer lag over HTTP, from a real ``streamlog worker`` process with a known backlog:
``apps/stuck.py`` (one partition) passes ``a`` on, then hangs for good on ``hang``, so with
``a hang b c d`` at offsets 0-4 the first unprocessed offset stays 1 and the worker is
exactly 4 records behind. ``/stats`` (JSON) and ``/metrics`` (Prometheus text) both say
so, per partition and in total, and the status page shows the total."""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

import pytest

from .workerproc import APPS, WorkerProcess, produce, read_values, wait_until

STUCK = os.path.join(APPS, "stuck.py")
JOBS = ["a", "hang", "b", "c", "d"]


def get(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.headers["Content-Type"], answer.read()


def stats(base: str) -> Any:
    kind, body = get(f"{base}/stats")
    assert kind.startswith("application/json")
    return json.loads(body)


@pytest.mark.timeout(90)
def test_stats_and_metrics_report_the_lag_of_a_known_backlog(tmp_path):
    worker = WorkerProcess(
        STUCK,
        f"file://{tmp_path / 'log'}",
        str(tmp_path),
        extra_args=("--web-port", "0"),
        env={"STUCK_SHUTDOWN_TIMEOUT": "1"},
    )
    try:
        worker.start()
        base = worker.wait_for_log(r"web endpoint on http://127\.0\.0\.1:\d+").split(" on ")[1]
        listener = worker.kafka_url
        before = stats(base)["lag"]
        assert before is not None and before["total"] == 0, before

        produce(listener, "jobs", JOBS)
        assert read_values(listener, "done", at_least=1) == ["a"]
        # the agent holds "hang" (offset 1) for good: 5 - 1 = 4 behind, once measured
        lag = wait_until(
            lambda: (s := stats(base)["lag"]) and s["total"] == 4 and s, 30, "lag of 4"
        )
        jobs = [p for p in lag["partitions"] if p["topic"] == "jobs"]
        assert jobs == [
            {"topic": "jobs", "partition": 0, "end_offset": 5, "processed_offset": 1, "lag": 4}
        ]
        assert lag["topics"] == {"jobs": 4, "stuck-__assignor-__leader": 0}

        kind, body = get(f"{base}/metrics")
        assert kind.startswith("text/plain")
        lines = body.decode().splitlines()
        assert "# TYPE streamlog_consumer_lag gauge" in lines
        assert 'streamlog_consumer_lag{app="stuck",partition="0",topic="jobs"} 4.0' in lines
        assert 'streamlog_consumer_lag_sum{app="stuck"} 4.0' in lines
        per_partition = [line for line in lines if line.startswith("streamlog_consumer_lag{")]
        assert len(per_partition) == len(lag["partitions"])

        kind, page = get(f"{base}/")
        assert kind.startswith("text/html")
        assert '<dt>records behind</dt><dd id="lag">4</dd>' in page.decode()
    finally:
        worker.kill()
