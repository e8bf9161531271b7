"""Run a real ``streamlog broker`` process on a free loopback port, for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["NO_REBALANCE_DELAY", "BrokerProcess", "STREAMLOG"]

STREAMLOG = os.path.join(os.path.dirname(sys.executable), "streamlog")
# Broker arguments for a test whose group members need not wait for more members: a new
# group's first generation then forms at once instead of after Kafka's default 3 s.
NO_REBALANCE_DELAY = ("--group-initial-rebalance-delay-ms", "0")


@dataclass
class BrokerProcess:
    """A ``streamlog broker`` child process; ``start`` waits until it listens."""

    data_dir: str
    extra_args: tuple[str, ...] = ()
    # Where the port and log files go (default: beside the data directory); elsewhere
    # when the data directory's file system is made to fill up.
    side_dir: str | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: str = ""
    returncode: int | None = None
    # Runs in the child before exec (e.g. resource.setrlimit for a low ``ulimit -n``).
    preexec_fn: Callable[[], None] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> BrokerProcess:
        side = self.data_dir
        if self.side_dir is not None:
            side = os.path.join(self.side_dir, os.path.basename(self.data_dir))
        port_file = side + ".port"
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.log_path = side + ".log"
        listen = f"127.0.0.1:{self.port}"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    STREAMLOG,
                    "broker",
                    "--data-dir",
                    self.data_dir,
                    "--listen",
                    listen,
                    "--port-file",
                    port_file,
                    *self.extra_args,
                ],
                stdout=log,
                stderr=log,
                preexec_fn=self.preexec_fn,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with {self.process.returncode}:\n{self.logs()}")
            try:
                with open(port_file) as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    return self
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"broker did not start in {timeout} s:\n{self.logs()}")

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, wait, SIGKILL if it hangs; returns the exit code."""
        proc = self.process
        if proc is None:
            return self.returncode
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.process = None
        self.returncode = proc.returncode
        return proc.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def logs(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""
