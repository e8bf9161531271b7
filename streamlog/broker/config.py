"""Settings of ``streamlog broker``, with Kafka's defaults where Kafka has one."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

__all__ = ["BrokerConfig", "is_loopback", "is_wildcard"]


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Everything the broker needs to know at start; see ``streamlog broker --help``."""

    host: str = "127.0.0.1"
    port: int = 9092
    data_dir: str = ".streamlog"
    # What Metadata and FindCoordinator tell clients to connect to (--advertise HOST:PORT);
    # None: see ``advertised_address``.
    advertised_host: str | None = None
    advertised_port: int | None = None
    node_id: int = 0
    # Topics
    auto_create_topics: bool = True
    default_partitions: int = 1
    default_topic_configs: dict[str, str] = field(default_factory=dict)
    # Partition limits (see partition_limits.py): new partitions per CreateTopics or
    # CreatePartitions request, and partitions of the whole broker.
    max_partitions_per_request: int = 1_000
    max_partitions: int = 10_000
    # Connections and frames (Kafka: socket.request.max.bytes, sasl.server.max.receive.size,
    # max.connections, max.connections.per.ip, connections.max.idle.ms); see admission.py
    # and connection.py for what happens at each limit.
    max_frame_bytes: int = 100 * 1024 * 1024
    max_preauth_frame_bytes: int = 512 * 1024
    max_connections: int = 1000
    max_connections_per_ip: int = 250
    # Connections that have not authenticated yet (with SASL only); None: half of
    # max_connections, the other half being kept for authenticated ones.
    max_unauthenticated_connections: int | None = None
    idle_timeout_ms: int = 600_000
    # From the first byte of a request frame to its last (a client trickling bytes does
    # not keep a connection forever: the idle timer is not reset per byte).
    frame_timeout_ms: int = 30_000
    max_fetch_wait_ms: int = 30_000
    # Authentication (Kafka: connection.failed.authentication.delay.ms)
    users_file: str | None = None
    sasl_mechanisms: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
    allow_remote: bool = False
    authentication_timeout_ms: int = 10_000
    failed_authentication_delay_ms: int = 100
    # TLS (Kafka: an SSL or SASL_SSL listener, ssl.keystore.*, ssl.client.auth=required
    # with ssl.truststore.*): the listener speaks TLS when a certificate is given, and
    # requires client certificates signed by ``ssl_client_cafile`` when that is given.
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_client_cafile: str | None = None
    # Group coordinator (Kafka: group.min/max.session.timeout.ms,
    # group.initial.rebalance.delay.ms: a new group waits for more members before its first
    # generation, as in Kafka, so members starting together get one rebalance, not several)
    group_min_session_timeout_ms: int = 6_000
    group_max_session_timeout_ms: int = 1_800_000
    group_initial_rebalance_delay_ms: int = 3_000
    offsets_topic_partitions: int = 10
    # Transaction coordinator (Kafka: transaction.max.timeout.ms,
    # transaction.abort.timed.out.transaction.cleanup.interval.ms)
    transaction_max_timeout_ms: int = 900_000
    transaction_abort_interval_ms: int = 10_000
    # Background maintenance (flush.ms, retention, compaction)
    maintenance_interval_ms: int = 1_000

    def advertised_address(self, bound_port: int) -> tuple[str, int]:
        """(host, port) the broker gives clients to connect to, once listening on
        ``bound_port``: the ``--advertise`` values where given, else the listen host when
        it names one address, and the machine's host name when it is a wildcard (0.0.0.0,
        ::), which a client cannot connect to; the bound port by default."""
        host = self.advertised_host
        if not host:
            host = socket.gethostname() if is_wildcard(self.host) else self.host
        return host, self.advertised_port or bound_port

    @property
    def authentication_required(self) -> bool:
        return self.users_file is not None

    @property
    def tls(self) -> bool:
        return self.ssl_certfile is not None

    @property
    def security_protocol(self) -> str:
        """Kafka's name for what this listener speaks (SASL_SSL, SSL, ...)."""
        if self.authentication_required:
            return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"
        return "SSL" if self.tls else "PLAINTEXT"

    @property
    def unauthenticated_connection_limit(self) -> int:
        """How many connections may wait for authentication at once (SASL only)."""
        if self.max_unauthenticated_connections is not None:
            return self.max_unauthenticated_connections
        return max(1, self.max_connections // 2)


def is_wildcard(host: str) -> bool:
    """Whether ``host`` is a listen address meaning every interface ("", 0.0.0.0, ::)."""
    if host == "":
        return True
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
