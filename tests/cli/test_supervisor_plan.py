"""The supervisor's plan for ``--processes N`` (streamlog/cli/supervisor.py): each child's
command line, data directory and web port, and the restart backoff. The processes
themselves are tested in tests/worker/test_supervisor.py."""

from __future__ import annotations

import pytest

from streamlog.cli.supervisor import RestartPolicy, SupervisorError, child_specs, describe_exit

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
