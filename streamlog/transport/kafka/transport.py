"""``KafkaTransport``: the transport over Kafka's wire protocol (``kafka://HOST:PORT,...``).

Each producer, consumer and admin client it hands out has its own connections and
metadata (a ``Cluster``), as Kafka's clients do; the transport keeps track of them so
that ``close`` closes whatever is still open.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamlog.transport.errors import TransportClosedError, UnsupportedBrokerURLError
from streamlog.transport.kafka.admin import KafkaAdmin
from streamlog.transport.kafka.cluster import Cluster
from streamlog.transport.kafka.consumer import KafkaConsumer
from streamlog.transport.kafka.producer import KafkaProducer
from streamlog.transport.security import ClientSecurity
from streamlog.transport.url import BrokerURL, parse_broker_url

__all__ = ["KafkaTransport"]


class KafkaTransport:
    """A ``Transport`` to a Kafka-protocol cluster.

    ``request_timeout_ms`` bounds every wait for a response (a Fetch gets its
    ``max_wait`` on top, a JoinGroup its rebalance timeout); ``connect_timeout_ms`` every
    connection attempt. A broker that does not answer in time raises
    ``BrokerUnavailableError`` naming it.

    ``security``: SASL credentials and TLS files (``ClientSecurity``; TLS itself comes
    from a ``kafka+ssl://`` URL). Checked and the TLS context made here, once, so that a
    wrong setting fails at construction with ``SecurityConfigError``. A refused login
    raises ``AuthenticationError`` from ``start`` (or the first request).
    """

    def __init__(
        self,
        url: BrokerURL | str,
        *,
        request_timeout_ms: int = 30_000,
        connect_timeout_ms: int = 10_000,
        security: ClientSecurity | None = None,
    ) -> None:
        parsed = parse_broker_url(url) if isinstance(url, str) else url
        if parsed.scheme != "kafka":
            raise UnsupportedBrokerURLError(f"KafkaTransport needs a kafka:// URL, not {parsed}")
        self.url = str(parsed)
        self.servers = parsed.servers
        self.security = (security or ClientSecurity()).for_url(parsed.tls)
        self._ssl_context = self.security.ssl_context()
        self._request_timeout = request_timeout_ms / 1000
        self._connect_timeout = connect_timeout_ms / 1000
        self._clients: list[KafkaProducer | KafkaConsumer | KafkaAdmin] = []
        self._cluster: Cluster | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"KafkaTransport({self.url!r})"

    def _new_cluster(self, client_id: str) -> Cluster:
        if self._closed:
            raise TransportClosedError("the transport is closed")
        self._clients = [c for c in self._clients if not c.closed]
        return Cluster(
            self.servers,
            client_id=client_id,
            connect_timeout=self._connect_timeout,
            request_timeout=self._request_timeout,
            security=self.security,
            ssl_context=self._ssl_context,
        )

    async def start(self) -> None:
        """Check that a broker answers (raises ``BrokerUnavailableError`` if none does)."""
        if self._cluster is None:
            self._cluster = self._new_cluster("streamlog")
        await self._cluster.refresh(())

    def producer(
        self,
        *,
        acks: int = -1,
        linger_ms: int = 5,
        batch_size: int = 1 << 20,
        compression: str = "none",
        idempotent: bool = True,
        client_id: str = "streamlog",
        **options: Any,
    ) -> KafkaProducer:
        producer = KafkaProducer(
            self._new_cluster(client_id),
            acks=acks,
            linger_ms=linger_ms,
            batch_size=batch_size,
            compression=compression,
            idempotent=idempotent,
            **options,
        )
        self._clients.append(producer)
        return producer

    def consumer(
        self,
        *,
        group_id: str | None = None,
        client_id: str = "streamlog",
        auto_offset_reset: str = "earliest",
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 1_000,
        max_poll_records: int = 10_000,
        fetch_max_bytes: int = 50 * 1024 * 1024,
        isolation_level: str = "read_uncommitted",
        partition_assignment_strategy: Sequence[str] = ("range", "roundrobin"),
        standby_replicas: int = 0,
        **options: Any,
    ) -> KafkaConsumer:
        consumer = KafkaConsumer(
            self._new_cluster(client_id),
            group_id=group_id,
            auto_offset_reset=auto_offset_reset,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            max_poll_records=max_poll_records,
            fetch_max_bytes=fetch_max_bytes,
            isolation_level=isolation_level,
            partition_assignment_strategy=partition_assignment_strategy,
            standby_replicas=standby_replicas,
            **options,
        )
        self._clients.append(consumer)
        return consumer

    def admin(self) -> KafkaAdmin:
        admin = KafkaAdmin(self._new_cluster("streamlog-admin"))
        self._clients.append(admin)
        return admin

    async def close(self) -> None:
        """Close every client handed out (producers flush first) and the transport."""
        if self._closed:
            return
        self._closed = True
        clients, self._clients = self._clients, []
        for client in clients:
            await client.close()
        if self._cluster is not None:
            await self._cluster.close()
