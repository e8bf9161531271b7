"""The client tools fail with one line and exit code 1: no broker, a bad URL, a locked
log; and they find the broker in ``$STREAMLOG_BROKER`` or at the default address."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import pytest

from tests.cli.test_tools_harness import STREAMLOG, ok, streamlog

COMMANDS = [
    ("topics", "list"),
    ("topics", "create", "t", "--partitions", "2"),
    ("topics", "describe", "t"),
    ("topics", "add-partitions", "t", "--partitions", "3"),
    ("topics", "delete", "t"),
    ("groups", "list"),
    ("groups", "describe", "g"),
    ("produce", "t"),
    ("consume", "t"),
    ("consume", "t", "--group", "g"),
]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_unreachable_broker_is_a_one_line_error(args: tuple[str, ...]) -> None:
    port = closed_port()
    started = time.monotonic()
    out = streamlog(*args, broker=f"kafka://127.0.0.1:{port}", input="a\nb\n", timeout=30)
    assert time.monotonic() - started < 10
    assert out.returncode == 1, out
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("Error: no broker of ")
    assert f"127.0.0.1:{port}" in out.stderr
    assert "refused" in out.stderr.lower()


def test_the_broker_url_comes_from_the_environment(tmp_path) -> None:
    env = {"STREAMLOG_BROKER": f"file://{tmp_path}"}
    out = streamlog("topics", "create", "from-env", env=env)
    assert (out.returncode, out.stdout) == (0, "Created topic from-env.\n"), out.stderr
    assert ok("topics", "list", broker=f"file://{tmp_path}") == ["from-env"]
    # --broker wins over the environment (and a tool does not create the directory).
    other = tmp_path / "other"
    out = streamlog("topics", "list", broker=f"file://{other}", env=env)
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == (
        f"Error: file://{other}: directory {other} does not exist (tools create a data "
        "directory only when told to create something: topics create, --create)\n"
    )
    assert not other.exists()


def test_the_default_broker_is_the_app_next_to_the_tool_else_kafka_on_9092() -> None:
    out = streamlog("consume", "--help")
    assert (
        "[default: file://./.streamlog if that directory exists, else kafka://127.0.0.1:9092]"
        in " ".join(out.stdout.split())
    )
    assert "STREAMLOG_BROKER" in out.stdout


def test_a_bad_url_is_a_one_line_error() -> None:
    out = streamlog("topics", "list", broker="localhost:9092")
    assert out.returncode == 1
    assert out.stderr == (
        "Error: broker URL 'localhost:9092' has no scheme: "
        "use memory://, file://PATH or kafka://HOST:PORT\n"
    )


def test_memory_url_works_within_one_command() -> None:
    assert ok("topics", "list", broker="memory://") == []
    assert ok("produce", "t", "--create", broker="memory://", input="x\n") == []


def test_a_log_held_by_another_process_is_a_one_line_error(tmp_path) -> None:
    url = f"file://{tmp_path}"
    ok("topics", "create", "t", broker=url)

    def hold() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [STREAMLOG, "consume", "t", "--broker", url],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    holder = hold()
    try:
        deadline = time.monotonic() + 30
        while True:  # until the consumer holds the log's lock
            out = streamlog("topics", "list", broker=url)
            if holder.poll() is not None:  # our check held the lock as it started: again
                holder = hold()
            elif out.returncode != 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert out.returncode == 1
        assert out.stderr.startswith(f"Error: cannot open {url}") and out.stderr.count("\n") == 1
        holder.send_signal(signal.SIGINT)
        _, err = holder.communicate(timeout=30)
        assert holder.returncode == 0, err
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(5)
    assert ok("topics", "list", broker=url) == ["t"]


def test_an_unknown_host_says_the_name_did_not_resolve() -> None:
    # .invalid never resolves (RFC 6761); getaddrinfo's error code is not an errno, so
    # the message must not be os.strerror's "Unknown error -2".
    out = streamlog("topics", "list", broker="kafka://nosuchhost.invalid:9092", timeout=30)
    assert out.returncode == 1, out
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("Error: no broker of kafka://nosuchhost.invalid:9092 answered: ")
    assert "host name 'nosuchhost.invalid' did not resolve" in out.stderr
    assert "Unknown error" not in out.stderr
