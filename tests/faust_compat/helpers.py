"""Run the Faust programs of ``programs/`` as processes: with streamlog (``python -m
streamlog.faust``, ``streamlog``) or, for comparison, with faust-streaming from
``.venv-faust`` (``scripts/setup.sh``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from streamlog.transport.url import BROKER_ENV

__all__ = ["PROGRAMS", "FAUST_PYTHON", "copy_program", "run", "streamlog_faust"]

PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAUST_PYTHON = os.path.join(ROOT, ".venv-faust", "bin", "python")
TIMEOUT = 60.0


def copy_program(name: str, to: str | os.PathLike[str]) -> str:
    """Copy ``programs/NAME`` into ``to`` (its log and data stay there); its new path."""
    path = os.path.join(str(to), name)
    shutil.copy(os.path.join(PROGRAMS, name), path)
    return path


def run(
    *argv: str,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to completion (bounded), without the caller's $STREAMLOG_BROKER."""
    environ = {k: v for k, v in os.environ.items() if k != BROKER_ENV}
    environ.update(env or {})
    return subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=TIMEOUT,
    )


def streamlog_faust(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """``python -m streamlog.faust ARGS``."""
    return run(sys.executable, "-m", "streamlog.faust", *args, **kwargs)  # type: ignore[arg-type]
