"""Run an app until SIGINT/SIGTERM: what ``streamlog worker`` does once it has the App.

Signals ask the app to stop; stopping is bounded (``shutdown_timeout`` for agents plus a
margin for the final commit and closing), and the exit status says how it went: 0 after a
clean stop, 1 when the app crashed (an agent with ``on_error="crash"`` failed, or start
failed), 2 when stopping itself overran its bound.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from streamlog.dsl.app import App
from streamlog.dsl.web import WebServer

__all__ = ["run_worker", "EXIT_OK", "EXIT_CRASHED", "EXIT_STOP_TIMEOUT"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CRASHED = 1
EXIT_STOP_TIMEOUT = 2
STOP_MARGIN = 15.0


async def run_worker(
    app: App,
    *,
    web_port: int | None = None,
    lag_interval: float = 30.0,
    on_started: Callable[[App], Awaitable[Any]] | None = None,
    on_stopping: Callable[[App], Awaitable[Any]] | None = None,
) -> int:
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, _on_signal, app, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    web: WebServer | None = None
    lag_task: asyncio.Task[None] | None = None
    try:
        try:
            await app.start()
            if on_started is not None:
                await on_started(app)
        except Exception as exc:
            log.critical("worker could not start: %s: %s", type(exc).__name__, exc, exc_info=exc)
            await _stop(app, on_stopping)
            return EXIT_CRASHED
        if web_port is not None or app.conf.web_enabled:
            web = WebServer(
                app, app.conf.web_host, web_port if web_port is not None else app.conf.web_port
            )
            await web.start()
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
        for signum in installed:
            loop.remove_signal_handler(signum)
    bound = app.conf.shutdown_timeout + STOP_MARGIN
    try:
        await asyncio.wait_for(_stop(app, on_stopping), bound)
    except TimeoutError:
        log.critical("stopping took longer than %.0f s; exiting anyway", bound)
        return EXIT_STOP_TIMEOUT
    if app.crash_reason is not None:
        log.critical("worker exits because: %s", app.crash_reason)
        return EXIT_CRASHED
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
    """One line per interval: records behind the log end, per topic, for this worker."""
    while True:
        await asyncio.sleep(interval)
        consumer = app.conductor.consumer
        if consumer is None:
            continue
        try:
            assignment = consumer.assignment()
            ends = await consumer.end_offsets(assignment)
            by_topic: dict[str, int] = {}
            for tp, end in ends.items():
                position = await consumer.position(tp)
                by_topic[tp.topic] = by_topic.get(tp.topic, 0) + max(0, end - position)
            total = sum(by_topic.values())
            detail = ", ".join(f"{t}={n}" for t, n in sorted(by_topic.items()) if n)
            log.info("lag: %d record(s) behind%s", total, f" ({detail})" if detail else "")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a report, not a duty
            log.debug("lag report failed: %r", exc)
