"""``streamlog worker APP --processes N``: the supervisor and its worker processes, as real
processes on loopback (a ``streamlog broker``, or the supervisor's own ``file://`` log).

The app is tests/worker/apps/tablecount.py: every event adds one to its key's count in the
table ``counts`` and writes its id to ``processed``, so an id missing from ``processed`` or
a count below the number of its key's events is an input lost.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import Iterator

import pytest

from streamlog.transport import open_transport
from tests.broker.brokerproc import NO_REBALANCE_DELAY, BrokerProcess

from .test_table_recovery import read_table
from .workerproc import (
    APPS,
    WorkerProcess,
    produce,
    read_topic,
    read_values,
    run_cli,
    wait_until,
)

TABLECOUNT = os.path.join(APPS, "tablecount.py")
GROUP = "tablecount"
KEYS = 7
STARTED = re.compile(
    r"streamlog\.supervisor: worker (\d+) (?:started|restarted \(start \d+\)): pid (\d+)"
)


def child_pids(supervisor: WorkerProcess) -> dict[int, list[int]]:
    """Each worker's pids, in the order the supervisor started them (from its log)."""
    pids: dict[int, list[int]] = collections.defaultdict(list)
    for index, pid in STARTED.findall(supervisor.logs()):
        pids[int(index)].append(int(pid))
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by a dead parent's init) counts as gone
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    return True


@contextlib.contextmanager
def supervised(supervisor: WorkerProcess) -> Iterator[WorkerProcess]:
    """Start the supervisor; at the end kill it and any child it left behind."""
    try:
        yield supervisor.start(ready=None)
    finally:
        pids = [pid for run in child_pids(supervisor).values() for pid in run]
        supervisor.kill()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def wait_ready(supervisor: WorkerProcess, index: int, pid: int, timeout: float = 60.0) -> None:
    supervisor.wait_for_log(rf"\[worker {index} pid {pid}\] .*worker ready", timeout)


def produce_keyed(url: str, ids: range) -> None:
    """Events ``ids`` to ``events``, event i keyed ``k{i % KEYS:03d}`` (value: its id)."""

    async def send() -> None:
        transport = open_transport(url)
        await transport.start()
        try:
            producer = transport.producer(linger_ms=5)
            try:
                pending = [
                    await producer.send("events", str(i).encode(), key=f"k{i % KEYS:03d}".encode())
                    for i in ids
                ]
                await producer.flush()
                for result in pending:
                    await result
            finally:
                await producer.close()
        finally:
            await transport.close()

    asyncio.run(asyncio.wait_for(send(), 60))


def processed_ids(url: str) -> collections.Counter[int]:
    return collections.Counter(int(r.value or b"-1") for r in read_topic(url, "processed"))


def events_assignment(url: str) -> list[list[int]]:
    """The ``events`` partitions of each member of the app's group (sorted)."""

    async def describe() -> list[list[int]]:
        transport = open_transport(url)
        await transport.start()
        try:
            admin = transport.admin()
            try:
                info = await admin.describe_group(GROUP)
            finally:
                await admin.close()
        finally:
            await transport.close()
        return sorted(
            sorted(tp.partition for tp in m.assignment if tp.topic == "events")
            for m in info.members
        )

    return asyncio.run(asyncio.wait_for(describe(), 30))


def wait_split(url: str) -> list[list[int]]:
    """The assignment once the group has two members, each with partitions of ``events``."""

    def split() -> list[list[int]] | None:
        assignment = events_assignment(url)
        return assignment if len(assignment) == 2 and all(assignment) else None

    return wait_until(split, 60, "both workers assigned partitions of events", interval=0.5)  # type: ignore[no-any-return]


def wait_all_processed(url: str, total: int) -> collections.Counter[int]:
    """``processed`` once every id below ``total`` is in it (at least once)."""
    return wait_until(  # type: ignore[no-any-return]
        lambda: (seen := processed_ids(url)).keys() >= set(range(total)) and seen,
        90,
        f"every one of {total} ids in processed",
        interval=0.5,
    )


def check_counts(url: str, total: int) -> None:
    """Each key's count is at least its number of events (a kill may count some twice)."""
    expected = collections.Counter(f"k{i % KEYS:03d}" for i in range(total))

    def complete() -> dict[str, int] | None:
        table = {key: n for (key, _), n in read_table(url, "counts").items()}
        return table if all(table.get(k, 0) >= n for k, n in expected.items()) else None

    table = wait_until(complete, 60, "every event counted in the table", interval=0.5)
    assert set(table) == set(expected)


def test_two_processes_split_partitions_restart_a_killed_one_and_stop_on_sigterm(
    tmp_path,
) -> None:  # type: ignore[no-untyped-def]
    broker = BrokerProcess(str(tmp_path / "broker"), NO_REBALANCE_DELAY).start()
    url = f"kafka://{broker.bootstrap}"
    work = tmp_path / "work"
    work.mkdir()
    supervisor = WorkerProcess(
        TABLECOUNT,
        url,
        str(work),
        extra_args=("--processes", "2", "--restart-backoff", "0.2"),
    )
    try:
        with supervised(supervisor):
            supervisor.wait_for_log(r"worker 1 started: pid \d+", 30)
            first = child_pids(supervisor)
            for index in (0, 1):
                wait_ready(supervisor, index, first[index][0])
            # both children are members of the group, each with some of the 4 partitions
            split = wait_split(url)
            assert sorted(p for member in split for p in member) == [0, 1, 2, 3]
            assert os.path.isdir(work / "tablecount-data" / "proc-0")
            assert os.path.isdir(work / "tablecount-data" / "proc-1")

            produce_keyed(url, range(0, 300))
            wait_all_processed(url, 300)

            killed = first[1][0]
            os.kill(killed, signal.SIGKILL)
            supervisor.wait_for_log(rf"worker 1 \(pid {killed}\) exited \(killed by SIGKILL\)", 30)
            restarted = supervisor.wait_for_log(r"worker 1 restarted \(start 2\): pid \d+", 30)
            new_pid = int(restarted.rsplit(" ", 1)[1])
            assert new_pid != killed
            assert child_pids(supervisor)[0] == first[0]  # the other one was left alone
            wait_ready(supervisor, 1, new_pid)

            produce_keyed(url, range(300, 600))
            seen = wait_all_processed(url, 600)
            assert set(seen) == set(range(600))
            check_counts(url, 600)

            assert supervisor.stop(timeout=90) == 0
            logs = supervisor.logs()
            assert re.search(rf"worker 0 \(pid {first[0][0]}\) stopped \(exit code 0\)", logs)
            assert re.search(rf"worker 1 \(pid {new_pid}\) stopped \(exit code 0\)", logs)
            assert "supervisor stopped: all worker processes exited" in logs
            assert not any(alive(pid) for pid in (first[0][0], new_pid))
    finally:
        broker.stop()


def test_a_worker_failing_at_start_is_given_up_on(tmp_path) -> None:  # type: ignore[no-untyped-def]
    broker = BrokerProcess(str(tmp_path / "broker"), NO_REBALANCE_DELAY).start()
    # the workers' web ports are taken: every start fails (exit 1)
    with socket.socket() as busy0, socket.socket() as busy1:
        busy0.bind(("127.0.0.1", 0))
        busy0.listen()
        port = busy0.getsockname()[1]
        try:
            busy1.bind(("127.0.0.1", port + 1))
        except OSError:
            pytest.skip(f"port {port + 1} is in use already")
        busy1.listen()
        supervisor = WorkerProcess(
            TABLECOUNT,
            f"kafka://{broker.bootstrap}",
            str(tmp_path),
            extra_args=(
                "--processes",
                "2",
                "--web-port",
                str(port),
                "--restart-backoff",
                "0.05",
                "--max-failures",
                "3",
            ),
        )
        try:
            with supervised(supervisor):
                assert supervisor.wait(timeout=120) == 1
                logs = supervisor.logs()
                assert re.search(
                    r"worker [01] failed 3 times in a row, each within 60 s of its start "
                    r"\(last: exit code 1\); giving up",
                    logs,
                ), logs
                assert re.search(rf"\[worker 0 pid \d+\] .*{port}", logs)
                runs = child_pids(supervisor)
                given_up = int(re.findall(r"worker (\d) failed 3 times", logs)[0])
                assert len(runs[given_up]) == 3
                assert not any(alive(pid) for run in runs.values() for pid in run)
        finally:
            broker.stop()


def test_on_file_log_the_supervisor_serves_it_to_the_workers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "log"
    supervisor = WorkerProcess(
        TABLECOUNT,
        f"file://{data}",
        str(tmp_path),
        extra_args=("--processes", "2"),
    )
    with supervised(supervisor):
        supervisor.wait_for_log(r"worker 1 started: pid \d+", 30)
        pids = child_pids(supervisor)
        for index in (0, 1):
            wait_ready(supervisor, index, pids[index][0])
        url = supervisor.kafka_url  # from DIR/.listener
        address = url[len("kafka://") :]
        assert f"serving file://{data} to the workers over the Kafka protocol on {address}" in (
            supervisor.logs()
        )
        assert os.path.isdir(data / "state" / "tablecount" / "proc-1")
        wait_split(url)
        produce_keyed(url, range(200))
        wait_all_processed(url, 200)
        check_counts(url, 200)
        # Ctrl-C: SIGINT to the supervisor, passed on to each worker as SIGTERM
        supervisor.process.send_signal(signal.SIGINT)  # type: ignore[union-attr]
        assert supervisor.wait(timeout=90) == 0
        logs = supervisor.logs()
        assert "SIGINT: stopping the worker processes" in logs
        for index in (0, 1):
            assert re.search(
                rf"worker {index} \(pid {pids[index][0]}\) stopped \(exit code 0\)", logs
            )
        assert not os.path.exists(data / ".listener")
    # the log is the supervisor's no longer: read it as file://
    assert set(processed_ids(f"file://{data}")) == set(range(200))


def test_memory_log_is_refused_with_more_than_one_process(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = run_cli("worker", TABLECOUNT, "--broker", "memory://", "--processes", "2", cwd=tmp_path)
    assert out.returncode == 2
    assert "memory:// is a log inside one process" in out.stderr


def test_a_file_log_in_use_is_refused_with_a_clear_message(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "log"
    owner = WorkerProcess(TABLECOUNT, f"file://{data}", str(tmp_path)).start()
    try:
        out = run_cli(
            "worker",
            TABLECOUNT,
            "--broker",
            f"file://{data}",
            "--processes",
            "2",
            "--listen",
            "127.0.0.1:0",
            cwd=tmp_path,
        )
        assert out.returncode == 1
        assert f"cannot serve file://{data} to the workers" in out.stderr
        assert f"is in use by another process (pid {owner.process.pid})" in out.stderr  # type: ignore[union-attr]
        assert "worker 0 started" not in out.stdout + out.stderr  # no worker was started
    finally:
        assert owner.stop() == 0


def test_workers_stop_when_the_supervisor_is_killed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    broker = BrokerProcess(str(tmp_path / "broker"), NO_REBALANCE_DELAY).start()
    supervisor = WorkerProcess(
        TABLECOUNT, f"kafka://{broker.bootstrap}", str(tmp_path), extra_args=("--processes", "2")
    )
    try:
        with supervised(supervisor):
            supervisor.wait_for_log(r"worker 1 started: pid \d+", 30)
            pids = child_pids(supervisor)
            for index in (0, 1):
                wait_ready(supervisor, index, pids[index][0])
            supervisor.kill()  # SIGKILL: no chance to stop its workers itself
            # the kernel sends each worker SIGTERM (PR_SET_PDEATHSIG): they stop on their own
            wait_until(
                lambda: not any(alive(p) for p in (pids[0][0], pids[1][0])),
                60,
                "the workers of a killed supervisor to exit",
                interval=0.2,
            )
    finally:
        broker.stop()


def test_python_app_worker_runs_its_children_the_same_way(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``python shouter.py worker --processes 2``: the children are ``python shouter.py
    worker`` too (the app's own command line, as the user started it)."""
    program = os.path.join(os.path.dirname(APPS), "..", "cli", "programs", "shouter.py")
    shutil.copy(program, tmp_path / "shouter.py")
    supervisor = WorkerProcess(
        "shouter.py",
        f"file://{tmp_path / 'log'}",
        str(tmp_path),
        extra_args=("--processes", "2"),
        command=(sys.executable, "shouter.py", "worker"),
    )
    with supervised(supervisor):
        supervisor.wait_for_log(r"worker 1 started: pid \d+", 30)
        pids = child_pids(supervisor)
        for index in (0, 1):
            wait_ready(supervisor, index, pids[index][0])
            with open(f"/proc/{pids[index][0]}/cmdline", "rb") as f:
                argv = f.read().decode().split("\0")
            assert argv[:3] == [sys.executable, "shouter.py", "worker"]
            assert argv[argv.index("--data-dir") + 1].endswith(f"proc-{index}")
        url = supervisor.kafka_url
        produce(url, "lines", ['"hello"'])
        assert read_values(url, "shouts", at_least=1) == ['"HELLO"']
        assert supervisor.stop(timeout=90) == 0
