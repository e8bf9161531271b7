"""``connect(url)``: a started transport for a broker URL, reaching a ``file://`` log that
a running worker holds through the worker's Kafka listener.

A ``file://`` directory is owned by one process at a time (a lock on the directory).
When a ``streamlog worker`` owns it, the worker also serves the Kafka protocol on
loopback and writes the address to ``DATA_DIR/.listener`` (``listener_path``). So a
program that feeds or reads an app's topics from outside it (a data generator, a test, a
benchmark, the ``streamlog`` tools) opens the directory when nothing holds it and goes
through that listener when a worker does. The lock, not the file, says whether a worker
runs: a ``.listener`` left by a killed worker is never used while the directory can be
opened.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from streamlog.transport.base import Transport
from streamlog.transport.errors import BrokerUnavailableError
from streamlog.transport.security import ClientSecurity
from streamlog.transport.url import parse_broker_url

__all__ = ["LISTENER_FILE", "connect", "connect_noting_listener", "listener_path"]

LISTENER_FILE = ".listener"

log = logging.getLogger("streamlog.transport")


def listener_path(data_dir: str) -> str:
    """Where a worker on ``file://DATA_DIR`` writes its Kafka listener address."""
    return os.path.join(data_dir, LISTENER_FILE)


async def connect(
    url: str, security: ClientSecurity | None = None, *, wait_for_worker: float = 0.0
) -> Transport:
    """The started transport of broker URL ``url`` (``memory://``, ``file://PATH``,
    ``kafka://HOST:PORT``), for programs outside an app that produce to or consume from
    its topics; public as ``streamlog.connect`` because such a program (a generator, a
    test, a benchmark) would otherwise copy the rule below or reach into the CLI.

    A ``file://`` log that a running worker holds is reached through the worker's Kafka
    listener (module docstring), so the program works whether or not the app runs. Close
    it with ``await transport.close()``. ``security`` is the login and TLS for a Kafka
    broker (None: from the ``STREAMLOG_SASL_*``/``STREAMLOG_SSL_*`` variables). Raises
    ``BrokerUnavailableError`` when the broker does not answer, or the directory is held
    and no listener address is found.

    ``wait_for_worker``: seconds to wait for a worker to serve a ``file://`` log before
    opening the directory itself. A feeder started right after ``streamlog worker ... &``
    would otherwise take the directory first and keep the worker from starting; it says
    (a warning: on stderr without logging set up) that it waits, and what it did when
    no worker came.
    """
    if wait_for_worker > 0:
        await _await_worker(url, wait_for_worker)
    transport, _ = await connect_noting_listener(url, security)
    return transport


async def _await_worker(url: str, seconds: float) -> None:
    """Until a worker holds the ``file://`` directory of ``url`` and serves its listener,
    or ``seconds`` passed (other URLs: at once)."""
    parsed = parse_broker_url(url)
    if parsed.scheme != "file" or parsed.path is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    said = False
    while not _worker_serves(parsed.path):
        if loop.time() >= deadline:
            if said:
                log.warning(
                    "no worker on %s after %.0f s: using the directory", parsed.path, seconds
                )
            return
        if not said:
            log.warning("waiting up to %.0f s for a worker on %s ...", seconds, parsed.path)
            said = True
        await asyncio.sleep(0.2)


def _worker_serves(data_dir: str) -> bool:
    """A worker's listener answers for ``data_dir`` (its address file, and a connection)."""
    try:
        with open(listener_path(data_dir)) as f:
            host, _, port = f.read().strip().rpartition(":")
    except OSError:
        return False
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=1):
            return True
    except (OSError, ValueError):
        return False


async def connect_noting_listener(
    url: str, security: ClientSecurity | None = None
) -> tuple[Transport, str | None]:
    """``connect(url)`` and the worker listener's ``HOST:PORT`` when it went through one
    (the ``streamlog`` tools say so on stderr), else None."""
    from streamlog.transport import open_transport  # the package imports this module

    transport = open_transport(url, security)
    try:
        await transport.start()
        return transport, None
    except BrokerUnavailableError:
        await transport.close()
        parsed = parse_broker_url(url)
        address = None
        if parsed.scheme == "file" and parsed.path is not None:
            try:
                with open(listener_path(parsed.path)) as f:
                    address = f.read().strip() or None
            except OSError:
                pass
        if address is None:
            raise
        # the worker's own loopback listener: plaintext, no login
        shared = open_transport(f"kafka://{address}", ClientSecurity())
        try:
            await shared.start()
        except BaseException:
            await shared.close()
            raise
        return shared, address
