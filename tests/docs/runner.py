"""Run a page's blocks (``tests.docs.blocks``) in order in one directory, as a reader
would, and check what each prints against what the page shows. No tests here.

The directory is a fresh one with ``.venv`` linked to this checkout's, so the pages'
``.venv/bin/streamlog`` works, and ``.venv/bin`` first on ``PATH`` for the bare
``streamlog`` of the docs pages. Two changes from a reader's terminal, because a test run
shares the machine: a background ``streamlog worker`` or ``streamlog broker`` listens on a
free loopback port instead of 9092, and the commands after it are pointed at it through
``$STREAMLOG_BROKER`` (the app's ``file://`` directory, whose recorded listener the tools
use, or the broker's ``kafka://`` address). A background broker also starts a new group's
first generation at once (``--group-initial-rebalance-delay-ms 0`` unless the page sets
it): the pages' groups have one member, and the default 3 s wait for more members would
only add 3 s to every group command. Every process started here is stopped: a
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
DEFAULT_ADDRESS = "127.0.0.1:9092"
REBALANCE_DELAY_OPTION = "--group-initial-rebalance-delay-ms"
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
    address: str | None = None  # HOST:PORT a background process listens on instead of 9092
    exported: dict[str, str] = field(default_factory=dict)  # a console block's `export`s
    last_code: int = 0
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
        env.update({k: self._moved(v) for k, v in self.exported.items()})
        return env

    def _moved(self, text: str) -> str:
        """``text`` with the default listener's address replaced by the one in use."""
        return text if self.address is None else text.replace(DEFAULT_ADDRESS, self.address)

    def run(self, block: Block) -> None:
        """Run one block (skipping the ``not run`` ones); AssertionError on a difference."""
        if block.not_run is not None:
            return
        if block.file is not None and block.lang == "text":
            with open(os.path.join(self.workdir, block.file), "w") as f:
                f.write(block.code)
            self.ran.append(block)
            return
        if block.file is not None:
            with open(os.path.join(self.workdir, block.file), "a" if block.continued else "w") as f:
                f.write(block.code)
        elif block.background is not None:
            self.stop_background()  # the page's Ctrl-C before the next long-running one
            [line] = [ln for ln in block.code.splitlines() if ln.strip()]
            self._start_background(block, line, block.background)
        elif block.lang == "python":
            path = os.path.join(self.workdir, f"_block_{block.line}.py")
            with open(path, "w") as f:
                f.write(block.code)
            self._check(block, [os.path.join(VENV, "bin", "python"), path], block.expect)
        elif block.lang == "sh":
            self._check(block, ["bash", "-e", "-o", "pipefail", "-c", block.code], block.expect)
        else:  # console
            for command in block.commands:
                self._console(block, command.text, command.output)
        self.ran.append(block)

    def _console(self, block: Block, text: str, expect: str) -> None:
        line = text.strip()
        words = shlex.split(line, comments=True)
        if words[:2] in (
            ["streamlog", "worker"],
            ["streamlog", "broker"],
            ["streamlog", "connect"],
        ):
            # `... &`, or a command that runs until Ctrl-C: what it logged once ready
            self.stop_background()
            if words[-1] == "&":
                words.pop()
            ready = "listening on" if words[1] == "broker" else "worker ready"
            log_path = self._start_background(block, shlex.join(words), ready)
            _assert_excerpt(block, _read(log_path), expect)
        elif re.fullmatch(r"kill %\d+", line):  # the page stops its background job
            self.stop_background()
        elif line.startswith("export "):
            name, _, value = shlex.split(line, comments=True)[1].partition("=")
            self.exported[name] = value
        elif line == "echo $?":
            assert f"{self.last_code}\n" == expect, f"{block.where}: exit {self.last_code}"
        else:
            self._check(block, ["bash", "-o", "pipefail", "-c", self._moved(text)], expect)

    def _check(self, block: Block, argv: list[str], expect: str | None) -> None:
        shown = argv[-1] if argv[0] == "bash" else block.code
        out = _run(argv, self.workdir, self.environ())
        if out is None:
            raise AssertionError(
                f"{block.where}: still running after {COMMAND_TIMEOUT} s:\n{shown}"
            )
        self.last_code = out.returncode
        if expect is None or not _is_error(expect):
            assert out.returncode == 0, (
                f"{block.where}: exit {out.returncode}:\n{shown}\n{out.stdout}{out.stderr}"
            )
        if expect is not None:
            # a terminal shows both streams: a page may show a tool's line on stderr
            # (which broker it used) above what it printed
            shown_out = self._moved(expect).rstrip("\n")
            candidates = [out.stdout, out.stderr + out.stdout]
            if block.varies is not None:
                shown_out = _numbers(shown_out)
                candidates = [_numbers(c) for c in candidates]
            printed = candidates[1 if _is_error(expect) else 0]
            if shown_out == candidates[1].rstrip("\n"):
                printed = candidates[1]
            assert printed.rstrip("\n") == shown_out, (
                f"{block.where}: the page shows\n{expect}but it printed\n{printed}"
                f"(stderr: {out.stderr})\n{shown}"
            )

    def _start_background(self, block: Block, line: str, ready_text: str) -> str:
        """Start ``line`` (a worker or a broker) and wait until it is ready; returns the
        path of its log."""
        argv = shlex.split(self._moved(line), comments=True)
        command = os.path.basename(argv[0])
        if command != "streamlog" or argv[1] not in ("worker", "broker", "connect"):
            raise AssertionError(f"{block.where}: no way to run {line!r} in the background")
        port_file = os.path.join(self.workdir, f"_broker_{block.line}.port")
        if argv[1] in ("worker", "connect"):  # `streamlog connect` runs a worker
            argv += ["--listen", "127.0.0.1:0", "--lag-interval", "0"]
        else:
            argv += ["--listen", "127.0.0.1:0", "--port-file", port_file]
            if not any(a.startswith(REBALANCE_DELAY_OPTION) for a in argv):
                argv += [REBALANCE_DELAY_OPTION, "0"]
        log_path = os.path.join(self.workdir, f"_background_{block.line}.log")
        env = self.environ()
        env.pop(BROKER_ENV, None)
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                argv, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        self.background.append(_Background(block, process, log_path))
        ready = re.compile(ready_text)
        deadline = time.monotonic() + READY_TIMEOUT
        is_broker = argv[1] == "broker"
        while not ready.search(_read(log_path)) or (is_broker and not _read(port_file).strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop_background()
                raise AssertionError(f"{block.where}: {line!r} not ready:\n{_read(log_path)}")
            time.sleep(0.05)
        if argv[1] in ("worker", "connect"):
            self.broker_url = "file://./.streamlog"
            served = re.search(r"over the Kafka protocol on (\S+)", _read(log_path))
            self.address = served.group(1) if served else None
        else:
            with open(port_file) as f:
                self.address = f"127.0.0.1:{f.read().strip()}"
            self.broker_url = f"kafka://{self.address}"
        return log_path

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
        self.broker_url = self.address = None
        assert not failures, "\n".join(failures)


def _is_error(expect: str) -> bool:
    """A page shows an error's text: it goes to stderr, and the command fails."""
    return expect.startswith(("Error:", "Usage:", "Traceback"))


def _run(argv: list[str], cwd: str, env: dict[str, str]) -> subprocess.CompletedProcess[str] | None:
    """Run a block or command to its end in a process group of its own; None if it
    overran ``COMMAND_TIMEOUT``. The group is killed afterwards either way: a command
    that does not end (a worker) is a child of the shell running it, and outlives it."""
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        process.communicate(timeout=10)
        return None
    _kill_group(process.pid)  # anything it left running in the background
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _assert_excerpt(block: Block, log: str, expect: str) -> None:
    """Each line the page shows of a log is in the log, in that order (timestamps and
    other numbers compared as numbers): a page shows an excerpt of a worker's log."""
    lines = [_numbers(ln.split("] ", 1)[-1]) for ln in log.splitlines()]
    position = 0
    for shown in expect.splitlines():
        wanted = _numbers(shown.split("] ", 1)[-1])
        try:
            position = lines.index(wanted, position) + 1
        except ValueError:
            raise AssertionError(
                f"{block.where}: the page shows the log line\n{shown}\nwhich is not in the log "
                f"(after the lines before it):\n{log}"
            ) from None


def _numbers(text: str) -> str:
    """``text`` with every number replaced by ``N`` (for outputs that vary)."""
    return re.sub(r"\d+", "N", text)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""
