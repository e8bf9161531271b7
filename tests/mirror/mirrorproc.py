"""``streamlog mirror`` run as a user runs it: a subprocess of the real executable, bounded
in time, always stopped. No tests here.

``mirror_once`` runs ``--once`` to its end; ``MirrorProcess`` starts a continuous mirror
whose output goes to a file, and stops it (SIGTERM, or SIGKILL for a crash) on exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from tests.broker.brokerproc import STREAMLOG

__all__ = ["MIRROR_TIMEOUT", "mirror_args", "mirror_once", "MirrorProcess", "running_mirror"]

MIRROR_TIMEOUT = 60.0  # seconds for one --once run


def mirror_args(source: str, target: str, *options: str) -> list[str]:
    return [STREAMLOG, "mirror", "--from", source, "--to", target, *options]


def _environ() -> dict[str, str]:
    # No STREAMLOG_* settings of the developer's shell leak into the run.
    return {k: v for k, v in os.environ.items() if not k.startswith("STREAMLOG_")}


def mirror_once(
    source: str, target: str, *options: str, timeout: float = MIRROR_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """``streamlog mirror --from SOURCE --to TARGET OPTIONS --once``, run to its end."""
    return subprocess.run(
        mirror_args(source, target, *options, "--once"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_environ(),
        timeout=timeout,
    )


class MirrorProcess:
    """A continuous ``streamlog mirror`` (no ``--once``); stdout and stderr to ``log_path``."""

    def __init__(self, source: str, target: str, options: tuple[str, ...], log_path: str):
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                mirror_args(source, target, *options),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=_environ(),
            )

    def running(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed or checkpointed on the way out."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM (what Ctrl-C or a service manager does), then the exit code; SIGKILL
        and a failure if it does not stop within ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise AssertionError(
                    f"the mirror did not stop within {timeout} s of SIGTERM:\n{self.output()}"
                ) from None
        return self.process.returncode


@contextmanager
def running_mirror(
    source: str, target: str, *options: str, log_path: str
) -> Iterator[MirrorProcess]:
    """A continuous mirror, killed on the way out if the test has not stopped it."""
    mirror = MirrorProcess(source, target, options, log_path)
    try:
        yield mirror
    finally:
        mirror.kill()
