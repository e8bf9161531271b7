"""The supervisor's plan for ``--processes N`` (streamlog/cli/supervisor.py): each child's
command line, data directory and web port, and the restart backoff. Worker processes
under it are tested in tests/worker/test_supervisor.py; here small ``python -c`` children
show what workers would take long to (a command that cannot run, SIGTERM ignored)."""

from __future__ import annotations

import asyncio
import logging
import re
import sys

import pytest

from streamlog.cli.errors import SupervisorError
from streamlog.cli.supervisor import (
    ChildSpec,
    RestartPolicy,
    Supervisor,
    child_specs,
    describe_exit,
)

COMMAND = ("/venv/bin/python", "/venv/bin/streamlog", "worker", "app.py", "--processes", "3")


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy(backoff=1.0, backoff_max=30.0)
    assert [policy.delay(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert RestartPolicy(backoff=0.0).delay(5) == 0.0


def test_each_child_is_the_same_command_made_a_plain_worker_of_its_own() -> None:
    specs = child_specs(
        COMMAND, 3, broker_url="kafka://127.0.0.1:9092", data_dir="data", web_port=6066
    )
    assert [s.index for s in specs] == [0, 1, 2]
    assert [s.data_dir for s in specs] == ["data/proc-0", "data/proc-1", "data/proc-2"]
    assert [s.web_port for s in specs] == [6066, 6067, 6068]
    # the options come after the user's, so that they win (click takes the last)
    assert specs[2].argv == (
        *COMMAND,
        "--processes",
        "0",
        "--broker",
        "kafka://127.0.0.1:9092",
        "--data-dir",
        "data/proc-2",
        "--listen",
        "none",
        "--web-port",
        "6068",
    )


def test_web_port_zero_gives_each_child_a_free_port_and_none_no_option() -> None:
    free = child_specs(COMMAND, 2, broker_url="kafka://h:1", data_dir="d", web_port=0)
    assert [s.web_port for s in free] == [0, 0]
    assert all(s.argv[-2:] == ("--web-port", "0") for s in free)
    off = child_specs(COMMAND, 2, broker_url="kafka://h:1", data_dir="d", web_port=None)
    assert all("--web-port" not in s.argv[len(COMMAND) :] for s in off)


def test_web_ports_past_65535_are_refused() -> None:
    with pytest.raises(SupervisorError, match=r"web ports 65535\.\.65536 go past 65535"):
        child_specs(COMMAND, 2, broker_url="kafka://h:1", data_dir="d", web_port=65535)


def test_exits_are_described_with_their_code_or_signal() -> None:
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(-9) == "killed by SIGKILL"


# The Supervisor on small real child processes (python -c), for what a worker would take
# long to show: a command that cannot run, a child that ignores SIGTERM.


def _spec(tmp_path, *argv: str) -> ChildSpec:  # type: ignore[no-untyped-def]
    return ChildSpec(0, argv, str(tmp_path / "proc-0"), None)


def test_a_command_that_cannot_run_is_given_up_on_at_once(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    supervisor = Supervisor([_spec(tmp_path, str(tmp_path / "no-such-program"))])
    with caplog.at_level(logging.INFO, "streamlog.supervisor"):
        code = asyncio.run(asyncio.wait_for(supervisor.run(handle_signals=False), 30))
    assert code == 1
    assert "worker 0 could not be started: [Errno 2] No such file or directory" in caplog.text


def test_a_child_failing_every_time_is_restarted_then_given_up_on(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    policy = RestartPolicy(backoff=0.01, max_failures=3)
    supervisor = Supervisor([_spec(tmp_path, sys.executable, "-c", "raise SystemExit(3)")], policy)
    with caplog.at_level(logging.INFO, "streamlog.supervisor"):
        code = asyncio.run(asyncio.wait_for(supervisor.run(handle_signals=False), 60))
    assert code == 1
    assert caplog.text.count("restarting in") == 2
    assert "restarted (start 3)" in caplog.text
    assert (
        "worker 0 failed 3 times in a row, each within 60 s of its start (last: exit code 3)"
        in (caplog.text)
    )


def test_a_child_ignoring_sigterm_is_killed_after_the_stop_timeout(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    ready = tmp_path / "ready"
    program = (
        "import signal, time, pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path({str(ready)!r}).touch(); time.sleep(120)"
    )
    supervisor = Supervisor(
        [_spec(tmp_path, sys.executable, "-c", program)], RestartPolicy(stop_timeout=0.5)
    )

    async def run() -> int:
        running = asyncio.ensure_future(supervisor.run(handle_signals=False))
        while not ready.exists():  # the child has set its handler
            await asyncio.sleep(0.05)
        supervisor.stop()
        return await running

    with caplog.at_level(logging.INFO, "streamlog.supervisor"):
        code = asyncio.run(asyncio.wait_for(run(), 60))
    assert code == 1
    assert re.search(
        r"worker 0 \(pid \d+\) still running 0.5 s after SIGTERM: killing it", caplog.text
    )
    assert "worker 0 did not stop cleanly (killed by SIGKILL)" in caplog.text
