"""The same program, written for Faust, run by faust-streaming and by streamlog: an app's
own commands give the same output and exit codes (Faust's calling convention: the command
instance first, then options and arguments by name; a function taking nothing gets
nothing). faust-streaming comes from ``.venv-faust`` (``bash scripts/setup.sh``)."""

from __future__ import annotations

import os
import re
import sys

import pytest

from .helpers import FAUST_PYTHON, copy_program, run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.path.exists(FAUST_PYTHON),
        reason="faust-streaming is in .venv-faust: run scripts/setup.sh",
    ),
]

CASES = [
    ("greet", "--n", "2", "ann"),
    ("greet", "ann"),
    ("-q", "greet", "ann"),
    ("joining", "paris", "bob"),
    ("bare",),
    ("add-one-more",),
]


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> str:
    return copy_program("commands.py", tmp_path_factory.mktemp("against-faust"))


def on_faust(program: str, *args: str):  # type: ignore[no-untyped-def]
    return run(FAUST_PYTHON, program, *args, cwd=os.path.dirname(program))


def on_streamlog(program: str, *args: str):  # type: ignore[no-untyped-def]
    return run(
        sys.executable,
        "-m",
        "streamlog.faust",
        program,
        *args,
        cwd=os.path.dirname(program),
        env={"STREAMLOG_BROKER": "memory://"},
    )


@pytest.mark.parametrize("args", CASES, ids=" ".join)
def test_same_output_as_faust(program, args):
    faust, ours = on_faust(program, *args), on_streamlog(program, *args)
    assert faust.returncode == 0, faust.stderr
    assert (ours.returncode, ours.stdout) == (faust.returncode, faust.stdout)


def test_a_failing_command_exits_1_with_its_traceback_on_both(program):
    faust, ours = on_faust(program, "fails"), on_streamlog(program, "fails")
    assert (faust.returncode, ours.returncode) == (1, 1)
    assert "ValueError: no luck" in faust.stderr
    assert "ValueError: no luck" in ours.stderr


def test_the_app_s_commands_and_their_help_as_on_faust(program):
    def commands(out) -> set[str]:  # type: ignore[no-untyped-def]
        lines = out.stdout.splitlines()
        return {line.split()[0] for line in lines[lines.index("Commands:") + 1 :]}

    own = {"add-one-more", "bare", "fails", "greet", "joining"}
    assert own <= commands(on_faust(program, "--help"))
    assert own <= commands(on_streamlog(program, "--help"))
    # the built-ins streamlog shares with Faust
    assert {"agents", "send", "tables", "worker"} <= commands(on_streamlog(program, "--help"))

    def option_line(out) -> str:  # type: ignore[no-untyped-def]
        [line] = [line for line in out.stdout.splitlines() if "--n" in line]
        return re.sub(r"\s+", " ", line.strip())

    faust_help = on_faust(program, "greet", "--help")
    our_help = on_streamlog(program, "greet", "--help")
    assert option_line(our_help) == option_line(faust_help) == "--n INTEGER Times. [default: 1]"
    assert faust_help.stdout.splitlines()[0] == "Usage: commands.py greet [OPTIONS] NAME"
    assert our_help.stdout.splitlines()[0] == "Usage: commands.py greet [OPTIONS] NAME"
