"""Run ``tests.connect.sinkdriver`` and kill -9 it after a given number of commits, then
run it to the end: the table must be exactly the stream's end state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def driver(kind: str, target: str, table: str, offsets: Path, total: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.connect.sinkdriver", kind, target, table, str(offsets),
         str(total)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def kill_after_commits(process: subprocess.Popen, commits: int) -> int:
    """SIGKILL once the driver printed ``commits`` commits (it is then writing the next
    batches or inside a flush); the last offset it committed."""
    last = 0
    assert process.stdout is not None
    for _ in range(commits):
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"driver ended early: {process.stderr.read()}")  # type: ignore[union-attr]
        last = int(line.split()[1])
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return last


def run_to_end(process: subprocess.Popen) -> None:
    out, err = process.communicate(timeout=120)
    if process.returncode != 0:
        raise AssertionError(f"driver failed ({process.returncode}): {err}")
