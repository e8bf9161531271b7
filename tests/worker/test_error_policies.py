"""Agent error policies through a real worker process (``apps/policies.py``): a negative
job makes the agent raise. ``restart`` skips it and goes on, ``dlq`` sends it to
``<app-id>-<agent>-dlq`` with the error in its headers and goes on, ``crash`` (the
default) stops the worker with exit code 1 and leaves the failing job uncommitted."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest

from .workerproc import APPS, WorkerProcess, group_offsets, produce, read_topic, read_values

POLICIES = os.path.join(APPS, "policies.py")
JOBS = ["1", "-2", "3"]  # JSON ints: the second one fails


def start(tmp_path, app: str, *extra: str) -> tuple[WorkerProcess, str]:
    """A worker running ``app`` on its own file:// log, fed JOBS through its listener."""
    url = f"file://{tmp_path / 'log'}"
    worker = WorkerProcess(f"{POLICIES}:{app}", url, str(tmp_path), extra_args=extra)
    worker.start()
    produce(worker.kafka_url, "jobs", JOBS)
    return worker, url


def get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


@pytest.mark.timeout(60)
def test_restart_policy_skips_the_failing_event_and_goes_on(tmp_path):
    worker, url = start(tmp_path, "restart_app", "--log-format", "json")
    try:
        assert read_values(worker.kafka_url, "done", at_least=2) == ["2", "6"]
        assert worker.stop() == 0, worker.logs()
    finally:
        worker.kill()
    lines = [json.loads(line) for line in worker.logs().splitlines()]  # JSON, every line
    assert all({"ts", "level", "logger", "message"} <= line.keys() for line in lines)
    errors = [line for line in lines if line["level"] == "error"]
    assert [e["message"] for e in errors] == [
        "agent work#0 failed on jobs[0]@1: ValueError: negative job -2 (policy: restart)"
    ]
    assert errors[0]["logger"] == "streamlog.dsl.agents.actor"
    assert 'raise ValueError(f"negative job {n}")' in errors[0]["exception"]
    assert lines[-1]["message"] == "app policy-restart stopped"
    assert read_values(url, "done") == ["2", "6"]
    assert group_offsets(url, "policy-restart")[("jobs", 0)] == 3


@pytest.mark.timeout(60)
def test_dlq_policy_dead_letters_the_failing_event(tmp_path):
    worker, url = start(tmp_path, "dlq_app", "--web-port", "0")
    try:
        assert read_values(worker.kafka_url, "done", at_least=2) == ["2", "6"]
        port = int(
            worker.wait_for_log(r"web endpoint on http://127\.0\.0\.1:(\d+)").rsplit(":")[-1]
        )
        assert get(port, "/health") == (200, "text/plain", "ok\n")
        status, ctype, body = get(port, "/stats")
        assert (status, ctype) == (200, "application/json")
        stats = json.loads(body)
        assert stats["app"] == "policy-dlq"
        assert stats["agents"] == {"work": {"errors": 1, "dead_lettered": 1, "events_in": 3}}
        assert stats["records_fetched"] == 3
        assert stats["assignment"] == ["jobs[0]", "policy-dlq-__assignor-__leader[0]"]
        status, ctype, body = get(port, "/metrics")
        assert (status, ctype) == (200, "text/plain; version=0.0.4; charset=utf-8")
        assert 'streamlog_agent_errors_total{agent="work",app="policy-dlq"} 1.0\n' in body
        assert 'streamlog_agent_dead_lettered_total{agent="work",app="policy-dlq"} 1.0\n' in body
        assert 'streamlog_records_fetched_total{app="policy-dlq"} 3.0\n' in body
        assert get(port, "/nope")[0] == 404
        assert worker.stop() == 0, worker.logs()
    finally:
        worker.kill()
    log = worker.logs()
    assert "agent work#0 failed on jobs[0]@1: ValueError: negative job -2 (policy: dlq)" in log
    assert read_values(url, "done") == ["2", "6"]
    [dead] = read_topic(url, "policy-dlq-work-dlq")
    assert dead.value == b"-2"
    assert dead.key is None
    headers = {k: v for k, v in dead.headers}
    assert headers["streamlog-error"] == b"ValueError('negative job -2')"
    assert headers["streamlog-error-type"] == b"ValueError"
    assert headers["streamlog-source-topic"] == b"jobs"
    assert headers["streamlog-source-partition"] == b"0"
    assert headers["streamlog-source-offset"] == b"1"
    assert headers["streamlog-agent"] == b"work"
    assert b"negative job -2" in headers["streamlog-error-traceback"]
    assert group_offsets(url, "policy-dlq")[("jobs", 0)] == 3


@pytest.mark.timeout(60)
def test_crash_policy_stops_the_worker_with_exit_code_1(tmp_path):
    worker, url = start(tmp_path, "crash_app")
    try:
        code = worker.wait(30)
    finally:
        worker.kill()
    log = worker.logs()
    assert code == 1, log
    assert (
        "app policy-crash crashed: agent work failed on jobs[0]@1: "
        "ValueError('negative job -2')" in log
    )
    assert "worker exits because: agent work failed on jobs[0]@1" in log
    assert "app policy-crash stopped" in log
    assert read_values(url, "done") == ["2"]
    # the failing job is not committed: a fixed worker will read it again
    assert group_offsets(url, "policy-crash")[("jobs", 0)] == 1
