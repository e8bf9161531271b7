"""Run a page's blocks (``tests.docs.blocks``) in order in one directory, as a reader
would, and check what each prints against what the page shows. No tests here.

The directory is a fresh one with ``.venv`` linked to this checkout's, so the pages'
``.venv/bin/streamlog`` works, and ``.venv/bin`` first on ``PATH`` for the bare
``streamlog`` of the docs pages. Two changes from a reader's terminal, because a test run
shares the machine: a background ``streamlog worker`` or ``streamlog broker`` listens on a
free loopback port instead of 9092, and the commands after it are pointed at it through
``$STREAMLOG_BROKER`` (the app's ``file://`` directory, whose recorded listener the tools
use, or the broker's ``kafka://`` address). Every process started here is stopped: a
background one with SIGINT (Ctrl-C) when the next one starts or the page ends, or
SIGKILL if that overruns.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from streamlog.transport.url import BROKER_ENV
from tests.docs.blocks import Block

__all__ = ["PageRunner", "VENV"]

VENV = os.path.dirname(os.path.dirname(sys.executable))
COMMAND_TIMEOUT = 60.0  # seconds, any one block or command
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


@dataclass
class _Background:
    block: Block
    process: subprocess.Popen[bytes]
    log_path: str


@dataclass
class PageRunner:
    """Runs the blocks of one page in ``workdir`` (see the module docstring)."""

    workdir: str
    background: list[_Background] = field(default_factory=list)
    broker_url: str | None = None
    ran: list[Block] = field(default_factory=list)

    def __post_init__(self) -> None:
        link = os.path.join(self.workdir, ".venv")
        if not os.path.exists(link):
            os.symlink(VENV, link)

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != BROKER_ENV}
        env["PATH"] = os.path.join(VENV, "bin") + os.pathsep + env.get("PATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        if self.broker_url is not None:
            env[BROKER_ENV] = self.broker_url
        return env

    def run(self, block: Block) -> None:
        """Run one block (skipping the ``not run`` ones); AssertionError on a difference."""
        if block.not_run is not None:
            return
        if block.file is not None:
            with open(os.path.join(self.workdir, block.file), "w") as f:
                f.write(block.code)
        elif block.background is not None:
            self.stop_background()  # the page's Ctrl-C before the next long-running one
            self._start_background(block)
        elif block.lang == "python":
            path = os.path.join(self.workdir, f"_block_{block.line}.py")
            with open(path, "w") as f:
                f.write(block.code)
            self._check(block, [os.path.join(VENV, "bin", "python"), path], block.expect)
        elif block.lang == "sh":
            self._check(block, ["bash", "-e", "-o", "pipefail", "-c", block.code], block.expect)
        else:  # console
            for command in block.commands:
                self._check(block, ["bash", "-o", "pipefail", "-c", command.text], command.output)
        self.ran.append(block)

    def _check(self, block: Block, argv: list[str], expect: str | None) -> None:
        shown = argv[-1] if argv[0] == "bash" else block.code
        try:
            out = subprocess.run(
                argv,
                cwd=self.workdir,
                env=self.environ(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{block.where}: still running after {COMMAND_TIMEOUT} s:\n{shown}"
            ) from None
        if expect is None or not _is_error(expect):
            assert out.returncode == 0, (
                f"{block.where}: exit {out.returncode}:\n{shown}\n{out.stdout}{out.stderr}"
            )
        if expect is not None:
            printed = out.stdout + (out.stderr if _is_error(expect) else "")
            assert printed.rstrip("\n") == expect.rstrip("\n"), (
                f"{block.where}: the page shows\n{expect}but it printed\n{printed}"
                f"(stderr: {out.stderr})\n{shown}"
            )

    def _start_background(self, block: Block) -> None:
        [line] = [ln for ln in block.code.splitlines() if ln.strip()]
        argv = shlex.split(line, comments=True)
        command = os.path.basename(argv[0])
        if command != "streamlog" or argv[1] not in ("worker", "broker"):
            raise AssertionError(f"{block.where}: no way to run {line!r} in the background")
        port_file = os.path.join(self.workdir, f"_broker_{block.line}.port")
        if argv[1] == "worker":
            argv += ["--listen", "127.0.0.1:0", "--lag-interval", "0"]
        else:
            argv += ["--listen", "127.0.0.1:0", "--port-file", port_file]
        log_path = os.path.join(self.workdir, f"_background_{block.line}.log")
        env = self.environ()
        env.pop(BROKER_ENV, None)
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                argv, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        self.background.append(_Background(block, process, log_path))
        ready = re.compile(block.background or "")
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.search(_read(log_path)):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop_background()
                raise AssertionError(f"{block.where}: {line!r} not ready:\n{_read(log_path)}")
            time.sleep(0.05)
        if argv[1] == "worker":
            self.broker_url = "file://./.streamlog"
        else:
            with open(port_file) as f:
                self.broker_url = f"kafka://127.0.0.1:{f.read().strip()}"

    def stop_background(self) -> None:
        """Ctrl-C (SIGINT) every background process, as the page asks; check it stopped
        cleanly (exit 0); SIGKILL one that overruns."""
        failures = []
        while self.background:
            bg = self.background.pop()
            if bg.process.poll() is None:
                bg.process.send_signal(signal.SIGINT)
            try:
                code = bg.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                bg.process.kill()
                bg.process.wait(5)
                code = None
            if code != 0:
                failures.append(f"{bg.block.where}: exit {code}:\n{_read(bg.log_path)}")
        self.broker_url = None
        assert not failures, "\n".join(failures)


def _is_error(expect: str) -> bool:
    """A page shows an error's text: it goes to stderr, and the command fails."""
    return expect.startswith(("Error:", "Usage:", "Traceback"))


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""
