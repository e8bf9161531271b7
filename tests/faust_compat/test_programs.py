"""Faust programs (``import faust`` left in) run by streamlog as real processes, each
checked for the output its logic gives: the word counts of Faust's word_count example in
the three ways to start it, and agents a ``main()`` declares before ``app.main()``."""

from __future__ import annotations

import sys

import pytest

from tests.broker.brokerproc import STREAMLOG
from tests.worker.workerproc import WorkerProcess, read_values

from .helpers import copy_program, run

pytestmark = pytest.mark.slow

# programs/word_count.py sends its three posts twice: the counts the logic gives
TOTALS = {"the": 6, "quick": 2, "brown": 2, "fox": 4, "lazy": 2, "dog": 2}

STREAMLOG_FAUST = (sys.executable, "-m", "streamlog.faust")
STARTS = {
    # name: (the worker's argv before its options, the argv of the program's own command)
    "streamlog worker word_count.py": (
        (STREAMLOG, "worker", "word_count.py"),
        (STREAMLOG, "word_count.py", "post"),
    ),
    "python -m streamlog.faust word_count.py worker": (
        (*STREAMLOG_FAUST, "word_count.py", "worker", "-l", "info"),
        (*STREAMLOG_FAUST, "word_count.py", "post"),
    ),
    "python -m streamlog.faust -A word_count worker": (
        (*STREAMLOG_FAUST, "-A", "word_count", "worker", "-l", "info"),
        (*STREAMLOG_FAUST, "-A", "word_count", "post"),
    ),
}


@pytest.mark.parametrize("start", list(STARTS))
def test_word_count_written_for_faust(tmp_path, start):
    copy_program("word_count.py", tmp_path)
    worker_argv, post_argv = STARTS[start]
    worker = WorkerProcess(app="word_count.py", broker=None, workdir=str(tmp_path))
    worker.command = worker_argv
    worker.start()
    try:
        assert "agent word_count.count_words started" in worker.logs()
        out = run(*post_argv, "--times", "2", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "sent 6 posts\n"
        expected = sorted(f'"{w}={i}"' for w, n in TOTALS.items() for i in range(1, n + 1))
        got = read_values(worker.kafka_url, "word-totals", at_least=len(expected))
        assert got == expected
    finally:
        code = worker.stop()
    assert code == 0, worker.logs()


def test_agents_declared_in_main_of_a_faust_program(tmp_path):
    program = copy_program("bound_agents.py", tmp_path)
    # imported (as faust -A imports it), main() does not run: no agent, as on Faust
    out = run(STREAMLOG, "agents", program, cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, "bound_agents imported\n(no agents)\n")
    worker = WorkerProcess(app=program, broker=None, workdir=str(tmp_path))
    worker.command = (*STREAMLOG_FAUST, program, "worker")
    worker.start()
    try:
        assert "agent scaler started" in worker.logs()
        assert worker.logs().count("bound_agents imported") == 1  # not imported again
        for reading in ('{"sensor": "a", "value": 1.5}', '{"sensor": "b", "value": -2}'):
            out = run(*STREAMLOG_FAUST, program, "send", "readings", reading, cwd=tmp_path)
            assert out.returncode == 0, out.stderr
        got = read_values(worker.kafka_url, "scaled", at_least=2)
        assert got == ['"a=15.0"', '"b=-20.0"']
    finally:
        code = worker.stop()
    assert code == 0, worker.logs()
