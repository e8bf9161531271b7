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

import os

from streamlog.transport.base import Transport
from streamlog.transport.errors import BrokerUnavailableError
from streamlog.transport.security import ClientSecurity
from streamlog.transport.url import parse_broker_url

__all__ = ["LISTENER_FILE", "connect", "connect_noting_listener", "listener_path"]

LISTENER_FILE = ".listener"


def listener_path(data_dir: str) -> str:
    """Where a worker on ``file://DATA_DIR`` writes its Kafka listener address."""
    return os.path.join(data_dir, LISTENER_FILE)


async def connect(url: str, security: ClientSecurity | None = None) -> Transport:
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
    """
    transport, _ = await connect_noting_listener(url, security)
    return transport


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
