"""Given no ``--broker`` (nor ``$STREAMLOG_BROKER``), the tools find the app next to them:
``./.streamlog`` through its worker's listener while a ``streamlog worker`` (a real
process) holds it, the directory itself when none does, else ``kafka://127.0.0.1:9092``;
one line on stderr says which."""

from __future__ import annotations

import os

import pytest

from tests.cli.test_tools_harness import streamlog
from tests.worker.workerproc import APPS, WorkerProcess, run_cli

WORDCOUNT = os.path.join(APPS, "wordcount.py")
HERE = "file://./.streamlog"


@pytest.mark.timeout(120)
def test_the_apps_log_through_its_worker_then_the_directory(tmp_path) -> None:
    worker = WorkerProcess(WORDCOUNT, None, str(tmp_path))  # the app's default log
    try:
        worker.start()
        address = worker.listener()
        using = f"using {HERE} (worker listener {address})\n"
        out = run_cli("produce", "words", input="the cat the\n", cwd=tmp_path)
        assert (out.returncode, out.stdout, out.stderr) == (0, "", using)
        out = run_cli(
            "consume", "counts", "--from-beginning", "--max", "3", "--timeout-ms", "20000",
            cwd=tmp_path,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert sorted(out.stdout.splitlines()) == ["cat=1", "the=1", "the=2"]
        assert out.stderr == using
        assert worker.stop() == 0, worker.logs()
    finally:
        worker.kill()

    # No worker: the tool opens the directory itself (the .listener file is gone), and a
    # .listener left by a killed worker is not used while nobody holds the directory.
    assert not (tmp_path / ".streamlog" / ".listener").exists()
    (tmp_path / ".streamlog" / ".listener").write_text(f"{address}\n")
    out = run_cli("topics", "list", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert {"words", "counts"} <= set(out.stdout.splitlines())
    assert out.stderr == f"using {HERE} (no worker running: the directory itself)\n"


def test_a_given_broker_is_used_without_a_word(tmp_path) -> None:
    (tmp_path / ".streamlog").mkdir()
    other = tmp_path / "other"
    out = run_cli("topics", "create", "elsewhere", "--broker", f"file://{other}", cwd=tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (0, "Created topic elsewhere.\n", "")
    out = run_cli("topics", "list", cwd=tmp_path, env={"STREAMLOG_BROKER": f"file://{other}"})
    assert (out.returncode, out.stdout, out.stderr) == (0, "elsewhere\n", "")
    out = run_cli("topics", "list", cwd=tmp_path)  # ./.streamlog: empty
    assert (out.returncode, out.stdout) == (0, "")


def test_without_an_app_here_the_default_is_kafka_on_9092(tmp_path) -> None:
    # Whatever answers on 9092 (or nothing, here), the tool says first which broker it
    # tried, and makes no log in the current directory.
    out = run_cli("topics", "list", cwd=tmp_path, timeout=60)
    assert out.stderr.splitlines()[0] == (
        "using kafka://127.0.0.1:9092 (the default: no ./.streamlog here)"
    )
    assert not (tmp_path / ".streamlog").exists()


def test_the_help_says_the_default() -> None:
    out = streamlog("produce", "--help")
    assert "file://./.streamlog if that directory exists" in " ".join(out.stdout.split())
