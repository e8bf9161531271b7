"""Run an app until SIGINT/SIGTERM: what ``streamlog worker`` does once it has the App.

A first signal asks the app to stop; stopping is bounded (``shutdown_timeout`` for agents
plus a margin for the final commit and closing). A second signal while stopping gives up
on the clean stop (no final commit: events since the last commit are read again by the
next worker). The exit status says how it went:

=== ========================================================================
0   clean stop: agents finished (or were cancelled after ``shutdown_timeout``), then
    the final commit
1   the app crashed (an agent with ``on_error="crash"`` failed) or could not start
2   stopping overran its bound
130 a second signal interrupted the stop
=== ========================================================================
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from streamlog.dsl.app.app import App
from streamlog.dsl.app.lag import measure_lag
from streamlog.dsl.app.web import WebServer
from streamlog.dsl.runtime.clock import running_clock
from streamlog.errors import StreamlogError

__all__ = [
    "run_worker",
    "EXIT_OK",
    "EXIT_CRASHED",
    "EXIT_STOP_TIMEOUT",
    "EXIT_INTERRUPTED",
]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CRASHED = 1
EXIT_STOP_TIMEOUT = 2
EXIT_INTERRUPTED = 130
STOP_MARGIN = 15.0

# Errors whose message says all there is to say (an unreachable broker, a bad setting, a
# busy port): logged on one line, where anything else gets its traceback.
_EXPECTED = (StreamlogError,)


async def run_worker(
    app: App,
    *,
    web_port: int | None = None,
    lag_interval: float = 30.0,
    on_started: Callable[[App], Awaitable[Any]] | None = None,
    on_stopping: Callable[[App], Awaitable[Any]] | None = None,
) -> int:
    """Start ``app``, run it until a signal or a crash, stop it; returns the exit status.

    ``on_started`` runs once the app has started, ``on_stopping`` first thing when it
    stops (also after a failed start). The web server (``streamlog.dsl.app.web``) runs
    with ``web_port`` (0 picks a free port, logged), ``web_enabled``, or when the app
    declares pages; it listens before the worker joins its group.
    """
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(_on_loop_error)
    try:
        return await _run(app, web_port, lag_interval, on_started, on_stopping)
    finally:
        loop.set_exception_handler(previous_handler)


def _web_server(app: App, web_port: int | None) -> WebServer | None:
    """The web server the worker runs: with ``--web-port``, ``web_enabled=True``, or when
    the app declares pages or routes (Faust serves them on port 6066 by default)."""
    if web_port is None and not app.conf.web_enabled and not app.web.routes:
        return None
    port = web_port if web_port is not None else app.conf.web_port
    return WebServer(app, app.conf.web_host, port)


def _on_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Python 3.11 reports a server connection task cancelled on close (the Kafka
    listener's, when the worker stops with clients connected) as an "Exception in
    callback" with a traceback; a cancellation is not an error."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        log.debug("ignored a cancellation reported by the event loop: %s", context.get("message"))
        return
    loop.default_exception_handler(context)


async def _run(
    app: App,
    web_port: int | None,
    lag_interval: float,
    on_started: Callable[[App], Awaitable[Any]] | None,
    on_stopping: Callable[[App], Awaitable[Any]] | None,
) -> int:
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, _on_signal, app, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    web = _web_server(app, web_port)
    if web is not None:
        # Listening before the group is joined: the URL goes out with the first join, and
        # other workers may forward requests here as soon as partitions are assigned.
        async def start_web(app: App) -> None:
            await web.start()

        app.transport_ready_hooks.append(start_web)
    lag_task: asyncio.Task[None] | None = None
    try:
        try:
            app.on_worker_init.send()
            await app.start()
            if on_started is not None:
                await on_started(app)
        except Exception as exc:
            log.critical(
                "worker could not start: %s: %s",
                type(exc).__name__,
                exc,
                exc_info=None if isinstance(exc, _EXPECTED) else exc,
            )
            await _stop(app, on_stopping)
            return EXIT_CRASHED
        if lag_interval > 0:
            lag_task = asyncio.create_task(_report_lag(app, lag_interval), name="lag-report")
        log.info("worker ready (Ctrl-C or SIGTERM to stop)")
        await app.wait_until_stop_requested()
        log.info("stop requested")
    finally:
        if lag_task is not None:
            lag_task.cancel()
        if web is not None:
            await web.stop()
            app.transport_ready_hooks.remove(start_web)
        for signum in installed:
            loop.remove_signal_handler(signum)
    code = await _bounded_stop(app, on_stopping, installed)
    if code == EXIT_OK and app.crash_reason is not None:
        log.critical("worker exits because: %s", app.crash_reason)
        return EXIT_CRASHED
    return code


async def _bounded_stop(
    app: App,
    on_stopping: Callable[[App], Awaitable[Any]] | None,
    signals: Sequence[int],
) -> int:
    """Stop within ``shutdown_timeout + STOP_MARGIN``; a second signal cuts it short."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.create_task(_stop(app, on_stopping), name="worker:stop")
    interrupted = False

    def again(signum: int) -> None:
        nonlocal interrupted
        interrupted = True
        log.warning(
            "received %s while stopping: exiting without the final commit",
            signal.Signals(signum).name,
        )
        stopping.cancel()

    for signum in signals:
        loop.add_signal_handler(signum, again, signum)
    bound = app.conf.shutdown_timeout + STOP_MARGIN
    try:
        await asyncio.wait_for(stopping, bound)
    except TimeoutError:
        log.critical("stopping took longer than %.0f s; exiting anyway", bound)
        return EXIT_STOP_TIMEOUT
    except asyncio.CancelledError:
        if not interrupted:
            raise
        return EXIT_INTERRUPTED
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    return EXIT_OK


async def _stop(app: App, on_stopping: Callable[[App], Awaitable[Any]] | None) -> None:
    if on_stopping is not None:
        try:
            await on_stopping(app)
        except Exception as exc:  # noqa: BLE001 - keep stopping the rest
            log.error("stopping: %r", exc)
    await app.stop()


def _on_signal(app: App, signum: int) -> None:
    log.info("received %s", signal.Signals(signum).name)
    app.request_stop()


async def _report_lag(app: App, interval: float) -> None:
    """One line per interval: records not processed yet, per topic, for this worker
    (``measure_lag``; the web endpoint's ``/stats`` and ``/metrics`` show the same)."""
    clock = running_clock(app.clock)
    while True:
        await clock.sleep(interval)
        try:
            lag = await measure_lag(app)
            if lag is None:
                continue
            detail = ", ".join(f"{t}={n}" for t, n in sorted(lag.by_topic().items()) if n)
            log.info("lag: %d record(s) behind%s", lag.total, f" ({detail})" if detail else "")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a report, not a duty
            log.debug("lag report failed: %r", exc)
