"""An app's own command line, as real processes: ``python app.py worker`` (``app.main()``),
``python app.py COMMAND`` and ``streamlog app.py COMMAND`` for ``@app.command``s with
Faust's ``option``/``argument`` and calling convention, ``python -m streamlog``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

import pytest

from tests.worker.workerproc import WorkerProcess, read_values, run_cli

PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs")
COMMANDS = os.path.join(PROGRAMS, "commands.py")
TIMEOUT = 60.0


def python(
    *args: str, cwd: str | os.PathLike[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` with this interpreter, to completion."""
    env = {k: v for k, v in os.environ.items() if k != "STREAMLOG_BROKER"}
    return subprocess.run(
        [sys.executable, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=TIMEOUT,
    )


def ok(out: subprocess.CompletedProcess[str]) -> list[str]:
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout.splitlines()


def copy_program(name: str, to: str | os.PathLike[str]) -> str:
    path = os.path.join(str(to), name)
    shutil.copy(os.path.join(PROGRAMS, name), path)
    return path


GREETING = [
    "hello ann #0",
    "hello ann #1",
    "hello ann #2",
    "greet: AppCommand=True app=True",
]


def test_app_command_with_option_and_argument():
    # the function gets the command instance as self (self.app, self.say), then the
    # option and the argument by name
    out = python(COMMANDS, "greet", "--n", "3", "ann")
    assert ok(out) == GREETING
    assert out.stderr == ""
    # the same command through the streamlog command, and through python -m streamlog
    assert ok(run_cli(COMMANDS, "greet", "--n", "3", "ann")) == GREETING
    assert ok(python("-m", "streamlog", COMMANDS, "greet", "ann")) == GREETING[:1] + GREETING[3:]


def test_app_command_calling_convention():
    # arguments keep their declared order; a function taking nothing is called with nothing
    assert ok(python(COMMANDS, "joining", "paris", "bob")) == ["bob joined paris"]
    assert ok(python(COMMANDS, "bare")) == ["bare ran"]
    # the name comes from the function, as click makes it: send_letters -> send-letters;
    # sends work (the app runs as a client: transport, producer, its topics)
    assert ok(python(COMMANDS, "send-letters", "--count", "3")) == [
        "letters[0]@0",
        "letters[0]@1",
        "letters[0]@2",
    ]
    # --quiet silences self.say, not print
    assert ok(python(COMMANDS, "-q", "greet", "ann")) == GREETING[3:]


def test_app_command_that_raises_exits_1_with_the_traceback():
    out = python(COMMANDS, "fails")
    assert out.returncode == 1
    assert out.stdout == ""
    assert "Command raised exception: ValueError('no luck')" in out.stderr
    assert "Traceback (most recent call last)" in out.stderr
    assert re.search(r'commands\.py", line \d+, in fails', out.stderr), out.stderr


def test_app_command_line_help():
    lines = ok(python(COMMANDS, "--help"))
    assert lines[0] == "Usage: commands.py [OPTIONS] COMMAND [ARGS]..."
    listed = [line.split()[0] for line in lines[lines.index("Commands:") + 1 :]]
    assert listed == [
        "agents",
        "bare",
        "fails",
        "greet",
        "joining",
        "send",
        "send-letters",
        "state",
        "tables",
        "topology",
        "worker",
    ]
    usage = ok(python(COMMANDS, "greet", "--help"))
    assert usage[0] == "Usage: commands.py greet [OPTIONS] NAME"
    assert "  Greets NAME N times." in usage
    # Faust's option shows its default
    assert any(re.fullmatch(r"\s+--n INTEGER\s+Times\.\s+\[default: 1\]", line) for line in usage)
    # a bad value is click's usage error: exit 2
    out = python(COMMANDS, "greet", "--n", "three", "ann")
    assert out.returncode == 2
    assert "Invalid value for '--n': 'three' is not a valid integer." in out.stderr


def test_streamlog_app_path_and_existing_commands():
    # streamlog APP COMMAND: the app's command line; APP --help lists its commands
    lines = ok(run_cli(COMMANDS, "--help"))
    words = " ".join(lines).split()  # a long path wraps the usage line
    assert words[:6] == ["Usage:", "streamlog", COMMANDS, "[OPTIONS]", "COMMAND", "[ARGS]..."]
    assert "greet" in [line.split()[0] for line in lines if line.startswith("  ")]
    # module:attr works as APP too, from the current directory
    assert ok(run_cli("commands:app", "bare", cwd=PROGRAMS)) == ["bare ran"]
    # what is neither a command nor an app is click's error, as before
    out = run_cli("wroker", "app.py")
    assert out.returncode == 2
    assert "No such command 'wroker'" in out.stderr
    out = run_cli("missing.py", "worker")
    assert (out.returncode, out.stderr) == (1, "Error: no such file: missing.py\n")


def test_python_dash_m_streamlog():
    lines = ok(python("-m", "streamlog", "--help"))
    assert lines[:2] == [
        "Usage: python -m streamlog [OPTIONS] COMMAND [ARGS]...",
        "   or: python -m streamlog APP COMMAND [ARGS]...",
    ]
    commands = [line.split()[0] for line in lines[lines.index("Commands:") + 1 :]]
    assert {"worker", "send", "agents", "broker", "produce", "consume"} <= set(commands)
    out = python("-m", "streamlog", "--version")
    assert ok(out) == ["streamlog, version 0.1.0"]


def test_global_options_before_the_command(tmp_path):
    (tmp_path / "sub").mkdir()
    out = python(
        COMMANDS, "-W", "sub", "-D", "data", "--debug", "-l", "info", "state", cwd=tmp_path
    )
    assert ok(out) == [
        "#-- carped",
        "cwd=sub datadir=data",
        "json=False debug=True quiet=False loglevel=info",
        "NAME  N",
        "a     1",
        "b     22",
    ]
    assert "INFO    streamlog.dsl.app.app: created topic letters" in out.stderr
    out = python(COMMANDS, "--json", "state", cwd=tmp_path)
    assert ok(out) == [
        f"cwd={tmp_path.name} datadir=commands-data",
        "json=True debug=False quiet=False loglevel=warning",
        '[{"NAME": "a", "N": 1}, {"NAME": "b", "N": 22}]',
    ]
    assert out.stderr == ""


def test_global_json_option(tmp_path):
    shouter = copy_program("shouter.py", tmp_path)
    lines = ok(python(shouter, "--json", "agents", cwd=tmp_path))
    assert [json.loads(line) for line in lines] == [
        {
            "name": "shouter.shout",
            "topic": "lines",
            "concurrency": 1,
            "sinks": ["shouts"],
            "on_error": "crash",
            "help": "Shouts every line.",
        }
    ]


@pytest.mark.slow
def test_python_app_py_worker_until_sigterm(tmp_path):
    """``python shouter.py worker -l info --web-port 0``: the app's own command line runs
    the worker (the streamlog worker's options, web endpoint included); the program's own
    command sends; SIGTERM stops it cleanly (exit 0)."""
    shouter = copy_program("shouter.py", tmp_path)
    worker = WorkerProcess(
        app=shouter,
        broker=None,
        workdir=str(tmp_path),
        command=(sys.executable, shouter, "worker", "-l", "info"),
        extra_args=("--web-port", "0"),
    )
    worker.start()
    try:
        # agent names do not depend on how the program started: __main__ is "shouter"
        assert "agent shouter.shout started" in worker.logs()
        port = int(worker.wait_for_log(r"web endpoint on http://127\.0\.0\.1:(\d+)").split(":")[-1])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            assert (response.status, response.read()) == (200, b"ok\n")
        # the command reaches the running worker's log through its listener
        out = python(shouter, "produce", "--n", "3", "hey", cwd=tmp_path)
        assert ok(out) == ["sent 3 line(s)"]
        assert "is in use by a worker; using its listener" in out.stderr
        url = worker.kafka_url
        assert read_values(url, "shouts", at_least=3) == ['"HEY 0"', '"HEY 1"', '"HEY 2"']
        # request/reply from a command: the worker's agent answers
        assert ok(python(shouter, "ask", "hello", cwd=tmp_path)) == ["HELLO"]
    finally:
        code = worker.stop()
    assert code == 0, worker.logs()
    assert "app shouter stopped" in worker.logs()


@pytest.mark.slow
def test_agents_registered_in_main_before_app_main(tmp_path):
    """The worker of ``python app.py worker`` is the app ``main()`` built, not a new import
    of the file: the agent declared in ``main()`` runs, and the file is imported once."""
    program = copy_program("registered_in_main.py", tmp_path)
    # imported by streamlog (as Faust's -A imports it), main() does not run: no agents
    assert ok(run_cli("agents", program)) == ["registered_in_main imported", "(no agents)"]
    worker = WorkerProcess(
        app=program,
        broker=None,
        workdir=str(tmp_path),
        command=(sys.executable, program, "worker"),
    )
    worker.start()
    try:
        assert "agent squarer started" in worker.logs()
        assert worker.logs().count("registered_in_main imported") == 1
        for n in ("3", "4"):
            out = python(program, "send", "numbers", n, cwd=tmp_path)
            assert out.returncode == 0, out.stderr
        assert read_values(worker.kafka_url, "squares", at_least=2) == ["16", "9"]
    finally:
        code = worker.stop()
    assert code == 0, worker.logs()
