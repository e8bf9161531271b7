"""``streamlog worker APP --processes N``: one process that keeps N worker processes running.

Why a separate process rather than threads or forks of the worker: each worker is the
ordinary ``streamlog worker`` (its own interpreter, event loop, table stores and web port),
so a crash in one is a process exit the supervisor sees and answers with a restart, and the
children use the machine's cores without the GIL in the way.

The children share one log through the consumer-group protocol, which needs a broker they
all reach: on ``kafka://`` that is the given broker; on ``file://DIR`` the supervisor opens
``DIR`` itself (a ``file://`` directory belongs to one process) and serves it over the Kafka
protocol on loopback, and the children connect to that listener as ``kafka://``. On
``memory://`` each process would have a log of its own, so more than one is refused.

Restarts back off exponentially (``RestartPolicy``); a child that keeps failing before it
has run ``stable_after`` seconds is given up on, and then the supervisor stops the others
and exits 1. SIGTERM or SIGINT is forwarded to every child as SIGTERM (the worker's clean
stop); a child that overruns ``stop_timeout`` is killed. Children run in their own session
(a terminal's Ctrl-C reaches the supervisor only, which forwards one SIGTERM, where a
second signal would cut a worker's stop short) and, on Linux, are sent SIGTERM by the
kernel if the supervisor itself dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from streamlog.cli.errors import SupervisorError
from streamlog.transport.connect import listener_path

__all__ = [
    "ChildSpec",
    "RestartPolicy",
    "SupervisorError",
    "Supervisor",
    "child_specs",
    "describe_exit",
    "serve_file_log",
    "EXIT_OK",
    "EXIT_FAILED",
]

log = logging.getLogger("streamlog.supervisor")

EXIT_OK = 0
EXIT_FAILED = 1  # a child was given up on, or did not stop cleanly
_LINE_LIMIT = 1 << 20  # the longest line of a child's output relayed whole


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When to restart a child that exited, and when to give up on it.

    The n-th failure in a row waits ``backoff * 2**(n-1)`` seconds, at most
    ``backoff_max``. A run that lasted ``stable_after`` seconds resets the count, so a
    child that crashes once a day is restarted promptly forever, while one that fails
    ``max_failures`` times in a row, each soon after its start, is given up on.
    """

    backoff: float = 1.0
    backoff_max: float = 30.0
    stable_after: float = 60.0
    max_failures: int = 5
    stop_timeout: float = 60.0  # after SIGTERM, before SIGKILL

    def delay(self, failures: int) -> float:
        """Seconds to wait before the restart that follows the ``failures``-th failure."""
        return float(min(self.backoff * 2 ** max(failures - 1, 0), self.backoff_max))


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One worker process: its number, command line and data directory."""

    index: int
    argv: tuple[str, ...]
    data_dir: str
    web_port: int | None


def child_specs(
    command: Sequence[str],
    processes: int,
    *,
    broker_url: str,
    data_dir: str,
    web_port: int | None,
) -> list[ChildSpec]:
    """The children's command lines: the supervisor's own ``command`` (which names the app
    as the user did: ``streamlog worker app.py``, ``python app.py worker``...) followed by
    the options that make each child a plain worker of its own. click takes the last of a
    repeated option, so these override whatever ``command`` says.

    Child i keeps its table stores in ``DATA_DIR/proc-i`` and, with a web port, serves it on
    ``web_port + i`` (0 stays 0: a free port each).
    """
    if web_port and web_port + processes - 1 > 65535:
        raise SupervisorError(
            f"web ports {web_port}..{web_port + processes - 1} go past 65535: "
            "give a lower --web-port, or 0 for free ports"
        )
    specs = []
    for i in range(processes):
        child_dir = os.path.join(data_dir, f"proc-{i}")
        port = None if web_port is None else (web_port + i if web_port else 0)
        argv = [
            *command,
            "--processes",
            "0",
            "--broker",
            broker_url,
            "--data-dir",
            child_dir,
            "--listen",
            "none",
        ]
        if port is not None:
            argv += ["--web-port", str(port)]
        specs.append(ChildSpec(i, tuple(argv), child_dir, port))
    return specs


@contextlib.asynccontextmanager
async def serve_file_log(path: str, listen: tuple[str, int] | None) -> AsyncIterator[str]:
    """Own the ``file://`` log at ``path`` and serve it over the Kafka protocol; yields the
    ``kafka://`` URL the children (and tools, through ``PATH/.listener``) connect to.

    A busy port falls back to a free one, as the worker's own listener does; without an
    address (``--listen none``) a free loopback port is used, since the children need one.
    """
    from streamlog.broker.config import BrokerConfig
    from streamlog.broker.server import Broker, BrokerStartError
    from streamlog.log.errors import LogError

    host, port = listen or ("127.0.0.1", 0)
    os.makedirs(path, exist_ok=True)
    broker = None
    for attempt_port in (port, 0) if port else (0,):
        candidate = Broker(BrokerConfig(host=host, port=attempt_port, data_dir=path))
        try:
            await candidate.start()
        except (BrokerStartError, LogError) as exc:
            raise SupervisorError(f"cannot serve file://{path} to the workers: {exc}") from None
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            log.warning("Kafka listener: %s:%d unavailable (%s)", host, attempt_port, reason)
            with contextlib.suppress(Exception):
                await candidate.stop()
            continue
        broker = candidate
        break
    if broker is None:
        raise SupervisorError(f"cannot serve file://{path} to the workers: no free port")
    address = f"{host}:{broker.port}"
    file = listener_path(path)
    partial = f"{file}.{os.getpid()}.tmp"
    with open(partial, "w") as f:
        f.write(address + "\n")
    os.replace(partial, file)
    log.info("serving file://%s to the workers over the Kafka protocol on %s", path, address)
    try:
        yield f"kafka://{address}"
    finally:
        with contextlib.suppress(OSError):
            os.unlink(file)
        await broker.stop()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the supervisor dies (Linux's
    PR_SET_PDEATHSIG), so that a killed supervisor leaves no orphaned workers."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM))


def describe_exit(code: int) -> str:
    """``exit code 1`` or ``killed by SIGKILL`` (asyncio reports a signal as -N)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


async def _relay(stream: asyncio.StreamReader, prefix: bytes) -> None:
    """Copy a child's output to the supervisor's stdout, each line prefixed with the
    child's number and pid, so that the lines of N workers can be told apart."""
    out = sys.stdout.buffer
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # a line longer than the reader's limit: dropped, said so
            line = b"(a line longer than 1 MiB was left out)\n"
        if not line:
            return
        out.write(prefix + line if line.endswith(b"\n") else prefix + line + b"\n")
        out.flush()


@dataclass(slots=True)
class _Child:
    """The supervisor's record of one child across its restarts."""

    spec: ChildSpec
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    failures: int = 0  # in a row, each before stable_after
    stop_code: int | None = None  # the exit code of the requested stop
    output: asyncio.Future[None] | None = None  # relaying the current run's output


@dataclass
class Supervisor:
    """Runs ``specs`` until ``stop()`` (or a signal, with ``handle_signals``) or until a
    child is given up on. ``run()`` returns the exit status: 0 when every child stopped
    cleanly (exit 0) on request, 1 otherwise."""

    specs: Sequence[ChildSpec]
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _gave_up: list[str] = field(default_factory=list, init=False)

    def stop(self) -> None:
        """Ask every child to stop (SIGTERM) and ``run()`` to return."""
        self._stopping.set()

    async def run(self, *, handle_signals: bool = True) -> int:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
        for signum in signals:
            loop.add_signal_handler(signum, self._on_signal, signum)
        children = [_Child(spec) for spec in self.specs]
        log.info("supervisor %d: starting %d worker processes", os.getpid(), len(children))
        try:
            await asyncio.gather(*(self._keep_running(child) for child in children))
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)
        if self._gave_up:
            log.error("supervisor stopped: %s", "; ".join(self._gave_up))
            return EXIT_FAILED
        unclean = [c for c in children if c.stop_code not in (None, 0)]
        for child in unclean:
            log.error(
                "worker %d did not stop cleanly (%s)",
                child.spec.index,
                describe_exit(child.stop_code or 0),
            )
        log.info("supervisor stopped: all worker processes exited")
        return EXIT_FAILED if unclean else EXIT_OK

    def _on_signal(self, signum: int) -> None:
        if self._stopping.is_set():
            name = signal.Signals(signum).name
            log.info("%s while stopping: still waiting for the workers", name)
            return
        log.info("%s: stopping the worker processes", signal.Signals(signum).name)
        self._stopping.set()

    async def _keep_running(self, child: _Child) -> None:
        """Start the child, restart it whenever it exits on its own, stop it on request."""
        while not self._stopping.is_set():
            try:
                process = await self._start(child)
            except OSError as exc:  # the command itself cannot run: no restart mends that
                reason = f"worker {child.spec.index} could not be started: {exc}"
                log.error("%s; stopping the other workers", reason)
                self._gave_up.append(reason)
                self._stopping.set()
                return
            started = time.monotonic()
            code = await self._wait_or_stop(child, process)
            if code is None:  # stopped on request
                return
            ran = time.monotonic() - started
            child.failures = 1 if ran >= self.policy.stable_after else child.failures + 1
            what = describe_exit(code)
            index = child.spec.index
            if child.failures >= self.policy.max_failures:
                reason = (
                    f"worker {index} failed {child.failures} times in a row, each within "
                    f"{self.policy.stable_after:g} s of its start (last: {what}); giving up"
                )
                log.error("%s and stopping the other workers", reason)
                self._gave_up.append(reason)
                self._stopping.set()
                return
            delay = self.policy.delay(child.failures)
            log.warning(
                "worker %d (pid %d) exited (%s) after %.1f s; restarting in %.1f s "
                "(failure %d of %d in a row)",
                index,
                process.pid,
                what,
                ran,
                delay,
                child.failures,
                self.policy.max_failures,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _start(self, child: _Child) -> asyncio.subprocess.Process:
        spec = child.spec
        os.makedirs(spec.data_dir, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=_LINE_LIMIT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        child.process = process
        child.starts += 1
        if process.stdout is not None:
            child.output = asyncio.ensure_future(
                _relay(process.stdout, f"[worker {spec.index} pid {process.pid}] ".encode())
            )
        log.info(
            "worker %d %s: pid %d (data dir %s%s)",
            spec.index,
            "started" if child.starts == 1 else f"restarted (start {child.starts})",
            process.pid,
            spec.data_dir,
            "" if spec.web_port is None else f", web port {spec.web_port}",
        )
        return process

    async def _wait_or_stop(self, child: _Child, process: asyncio.subprocess.Process) -> int | None:
        """The exit code of a child that exited on its own; None once it was stopped on
        request (its code is then in ``child.stop_code``)."""
        exited = asyncio.ensure_future(process.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not exited.done():
            child.stop_code = await self._stop_child(child.spec.index, process, exited)
        if child.output is not None:  # its last lines, before the supervisor's own
            await child.output
        return None if child.stop_code is not None else exited.result()

    async def _stop_child(
        self, index: int, process: asyncio.subprocess.Process, exited: asyncio.Future[int]
    ) -> int:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(asyncio.shield(exited), self.policy.stop_timeout)
        except TimeoutError:
            log.error(
                "worker %d (pid %d) still running %g s after SIGTERM: killing it",
                index,
                process.pid,
                self.policy.stop_timeout,
            )
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            code = await exited
        log.info("worker %d (pid %d) stopped (%s)", index, process.pid, describe_exit(code))
        return code
