"""How a worker process stops when it cannot simply finish: an agent stuck on an event
(bounded by ``shutdown_timeout``, the stuck event stays uncommitted), a second signal
while stopping (exit 130), and a start that fails (exit 1, one log line, no traceback)."""

from __future__ import annotations

import os
import re
import signal
import socket

import pytest

from .workerproc import APPS, WorkerProcess, group_offsets, produce, read_values

STUCK = os.path.join(APPS, "stuck.py")
WORDCOUNT = os.path.join(APPS, "wordcount.py")


def feed_and_wait(worker: WorkerProcess) -> None:
    """Jobs a, hang, b: the agent passes a on, then hangs."""
    produce(worker.kafka_url, "jobs", ["a", "hang", "b"])
    assert read_values(worker.kafka_url, "done", at_least=1) == ["a"]


@pytest.mark.timeout(60)
def test_an_agent_stuck_on_an_event_is_cancelled_after_shutdown_timeout(tmp_path):
    url = f"file://{tmp_path / 'log'}"
    worker = WorkerProcess(STUCK, url, str(tmp_path))
    second = WorkerProcess(STUCK, url, str(tmp_path / "second"))
    os.mkdir(second.workdir)
    try:
        worker.start()
        feed_and_wait(worker)
        # a second worker cannot open a file:// log that a running worker owns
        second.start(ready=None)
        assert second.wait(30) == 1, second.logs()
        assert "worker could not start: BrokerUnavailableError: " in second.logs()
        assert "is in use by another process" in second.logs()
        assert "Traceback" not in second.logs()

        assert worker.stop() == 0, worker.logs()
    finally:
        worker.kill()
        second.kill()
    log = worker.logs()
    assert "agent stuck.work: 1 task(s) cancelled after 1.0 s" in log
    assert "agent stuck.work stopped (cancelled)" in log
    assert "app stuck stopped" in log
    assert read_values(url, "done") == ["a"]
    # 'hang' was never finished: it stays uncommitted, the next worker reads it again
    assert group_offsets(url, "stuck")[("jobs", 0)] == 1


@pytest.mark.timeout(60)
def test_a_second_signal_while_stopping_exits_130(tmp_path):
    url = f"file://{tmp_path / 'log'}"
    worker = WorkerProcess(STUCK, url, str(tmp_path), env={"STUCK_SHUTDOWN_TIMEOUT": "60"})
    try:
        worker.start()
        feed_and_wait(worker)
        assert worker.process is not None
        worker.process.send_signal(signal.SIGINT)
        worker.wait_for_log("app stuck stopping")
        worker.process.send_signal(signal.SIGINT)
        code = worker.wait(30)
    finally:
        worker.kill()
    log = worker.logs()
    assert code == 130, log
    assert "received SIGINT while stopping: exiting without the final commit" in log
    assert "Traceback" not in log
    assert read_values(url, "done") == ["a"]  # the log opens again: nothing was damaged


@pytest.mark.timeout(60)
def test_busy_ports_a_listener_moves_a_web_endpoint_fails_the_start(tmp_path):
    url = f"file://{tmp_path / 'log'}"
    with socket.socket() as busy_listen, socket.socket() as busy_web:
        for sock in (busy_listen, busy_web):
            sock.bind(("127.0.0.1", 0))
            sock.listen()
        listen_port = busy_listen.getsockname()[1]
        web_port = busy_web.getsockname()[1]
        extra = ("--listen", f"127.0.0.1:{listen_port}", "--web-port", str(web_port))
        worker = WorkerProcess(WORDCOUNT, url, str(tmp_path), extra_args=extra)
        try:
            worker.start(ready=None)
            code = worker.wait(30)
        finally:
            worker.kill()
    log = worker.logs()
    assert code == 1, log
    # the Kafka listener falls back to a free port...
    assert f"Kafka listener: 127.0.0.1:{listen_port} unavailable (Address already in use)" in log
    served = re.search(r"over the Kafka protocol on 127\.0\.0\.1:(\d+)", log)
    assert served and int(served.group(1)) != listen_port, log
    # ...the web endpoint, whose port a monitor expects, does not
    assert (
        "worker could not start: WebServerError: web endpoint cannot listen on "
        f"127.0.0.1:{web_port}: Address already in use" in log
    )
    assert "Traceback" not in log
    assert "app wordcount stopped" in log  # stopped in order: the listener, then the app
    assert not os.path.exists(os.path.join(worker.data_dir, ".listener"))


@pytest.mark.timeout(60)
def test_an_unreachable_kafka_broker_fails_the_start_in_one_line(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: connections are refused
        worker = WorkerProcess(WORDCOUNT, f"kafka://127.0.0.1:{port}", str(tmp_path))
        try:
            worker.start(ready=None)
            code = worker.wait(45)
        finally:
            worker.kill()
    log = worker.logs()
    assert code == 1, log
    assert (
        f"worker could not start: BrokerUnavailableError: no broker of kafka://127.0.0.1:{port} "
        "answered" in log
    )
    assert "Traceback" not in log
