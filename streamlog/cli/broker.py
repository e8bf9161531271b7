"""``streamlog broker``: serve the bundled log over the Kafka protocol."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import click

__all__ = ["broker"]


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _advertised(value: str) -> tuple[str, int]:
    """``--advertise HOST:PORT``: a host clients can reach and a port they can connect to."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise click.BadParameter(
            f"expected HOST:PORT with a port in 1..65535, got {value!r}", param_hint="--advertise"
        )
    return _advertised_host(host.strip("[]"), "--advertise"), int(port)


def _advertised_host(host: str, option: str) -> str:
    from streamlog.broker.config import is_wildcard

    if is_wildcard(host):
        raise click.BadParameter(
            f"{host or 'an empty host'} means every interface, which no client can connect "
            "to: advertise a host name or address",
            param_hint=option,
        )
    return host


@click.command("broker")
@click.option(
    "--data-dir",
    default=".streamlog",
    show_default=True,
    help="Directory holding the topics' logs (locked while the broker runs).",
)
@click.option(
    "--listen",
    default="127.0.0.1:9092",
    show_default=True,
    metavar="HOST:PORT",
    help="Address to listen on; port 0 picks a free port.",
)
@click.option(
    "--advertise",
    default=None,
    metavar="HOST:PORT",
    help="Where clients are told to connect (Metadata, FindCoordinator): for a broker "
    "behind NAT, a proxy or a container's port mapping.  [default: the listen address; "
    "on 0.0.0.0 or :: the machine's host name and the bound port]",
)
@click.option(
    "--advertised-host",
    default=None,
    metavar="HOST",
    help="The host part of --advertise alone (the port stays the bound one).",
)
@click.option(
    "--partitions",
    "default_partitions",
    default=1,
    show_default=True,
    type=int,
    help="Partitions of auto-created topics.",
)
@click.option("--no-auto-create", is_flag=True, help="Do not create topics on first use.")
@click.option(
    "--users-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Require SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) with the users in this file.",
)
@click.option(
    "--ssl-certfile",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Speak TLS with this certificate (PEM; the chain may follow it); with "
    "--users-file the listener is Kafka's SASL_SSL, else SSL.",
)
@click.option(
    "--ssl-keyfile",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The certificate's private key (PEM)  [default: in --ssl-certfile].",
)
@click.option(
    "--ssl-client-cafile",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Require client certificates signed by these CAs (PEM; Kafka's ssl.client.auth=required).",
)
@click.option(
    "--allow-remote", is_flag=True, help="Allow a non-loopback listener without authentication."
)
@click.option(
    "--max-connections",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Connections open at once.",
)
@click.option(
    "--max-connections-per-ip",
    default=250,
    show_default=True,
    type=click.IntRange(min=1),
    help="Connections from one address.",
)
@click.option(
    "--max-unauthenticated-connections",
    default=None,
    type=click.IntRange(min=1),
    help="With --users-file: connections still authenticating "
    "(default: half of --max-connections; the rest is kept for authenticated ones).",
)
@click.option("--max-frame-bytes", default=100 * 1024 * 1024, show_default=True, type=int)
@click.option(
    "--idle-timeout-ms",
    default=600_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Close a connection after this long without a request.",
)
@click.option(
    "--frame-timeout-ms",
    default=30_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Close a connection whose request frame is not complete this long after its "
    "first byte (or that leaves its responses unread this long).",
)
@click.option(
    "--authentication-timeout-ms",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="With --users-file: close a connection not authenticated this long after it opened.",
)
@click.option(
    "--failed-authentication-delay-ms",
    default=100,
    show_default=True,
    type=click.IntRange(min=0),
    help="Answer a failed authentication this late, then close (Kafka's "
    "connection.failed.authentication.delay.ms).",
)
@click.option(
    "--max-partitions-per-request",
    default=1_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="New partitions one CreateTopics or CreatePartitions request may create.",
)
@click.option(
    "--max-partitions",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Partitions of the whole broker, internal topics included.",
)
@click.option(
    "--group-initial-rebalance-delay-ms",
    default=3000,
    show_default=True,
    type=int,
    help="How long a new group waits for more members before its first generation.",
)
@click.option(
    "--transaction-max-timeout-ms",
    default=900_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Longest transaction.timeout.ms a transactional producer may ask for (Kafka's "
    "transaction.max.timeout.ms).",
)
@click.option(
    "--transaction-abort-interval-ms",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="How often transactions past their timeout are looked for and aborted (Kafka's "
    "transaction.abort.timed.out.transaction.cleanup.interval.ms).",
)
@click.option(
    "--port-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the bound port here once listening (for scripts using port 0).",
)
@click.option(
    "-l",
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
def broker(
    data_dir: str,
    listen: str,
    advertise: str | None,
    advertised_host: str | None,
    default_partitions: int,
    no_auto_create: bool,
    users_file: str | None,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    ssl_client_cafile: str | None,
    allow_remote: bool,
    max_connections: int,
    max_connections_per_ip: int,
    max_unauthenticated_connections: int | None,
    max_frame_bytes: int,
    idle_timeout_ms: int,
    frame_timeout_ms: int,
    authentication_timeout_ms: int,
    failed_authentication_delay_ms: int,
    max_partitions_per_request: int,
    max_partitions: int,
    group_initial_rebalance_delay_ms: int,
    transaction_max_timeout_ms: int,
    transaction_abort_interval_ms: int,
    port_file: str | None,
    log_level: str,
) -> None:
    """Run a Kafka-protocol broker over the bundled log (kcat, kafka-python, librdkafka...)."""
    from streamlog.broker.config import BrokerConfig
    from streamlog.broker.server import Broker, BrokerStartError
    from streamlog.log.errors import LogError

    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    host, port = _host_port(listen)
    advertised_port = None
    if advertise is not None:
        if advertised_host is not None:
            raise click.UsageError("give --advertise HOST:PORT or --advertised-host, not both")
        advertised_host, advertised_port = _advertised(advertise)
    elif advertised_host is not None:
        advertised_host = _advertised_host(advertised_host, "--advertised-host")
    config = BrokerConfig(
        host=host,
        port=port,
        data_dir=data_dir,
        advertised_host=advertised_host,
        advertised_port=advertised_port,
        default_partitions=default_partitions,
        auto_create_topics=not no_auto_create,
        users_file=users_file,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        ssl_client_cafile=ssl_client_cafile,
        allow_remote=allow_remote,
        max_connections=max_connections,
        max_connections_per_ip=max_connections_per_ip,
        max_unauthenticated_connections=max_unauthenticated_connections,
        max_frame_bytes=max_frame_bytes,
        idle_timeout_ms=idle_timeout_ms,
        frame_timeout_ms=frame_timeout_ms,
        authentication_timeout_ms=authentication_timeout_ms,
        failed_authentication_delay_ms=failed_authentication_delay_ms,
        max_partitions_per_request=max_partitions_per_request,
        max_partitions=max_partitions,
        group_initial_rebalance_delay_ms=group_initial_rebalance_delay_ms,
        transaction_max_timeout_ms=transaction_max_timeout_ms,
        transaction_abort_interval_ms=transaction_abort_interval_ms,
    )

    async def run() -> None:
        server = Broker(config)
        await server.start()
        if port_file:
            with open(port_file, "w", encoding="utf-8") as f:
                f.write(f"{server.port}\n")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            logging.getLogger("streamlog.broker").info("shutting down")
            await server.stop()

    try:
        asyncio.run(run())
    except (BrokerStartError, LogError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
