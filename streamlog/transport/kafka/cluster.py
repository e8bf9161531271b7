"""What one client knows of the cluster: brokers, topic partitions and their leaders, and
the connections it holds to the nodes.

A ``Cluster`` belongs to one producer, consumer or admin client: Kafka brokers answer the
requests of a connection one at a time, so a client keeps a connection per purpose
(``channel``) to each node it talks to ("default", "fetch", "group"...), and clients never
share them. Metadata is refreshed on demand (``refresh``): the clients call it when they
meet a topic they do not know or an error that says a leader moved.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamlog.protocol import ApiKey, ErrorCode
from streamlog.transport.errors import BrokerUnavailableError, TransportClosedError
from streamlog.transport.kafka.connection import Connection
from streamlog.transport.security import ClientSecurity

__all__ = ["Cluster", "TopicMeta", "PartitionMeta", "ANY_NODE"]

ANY_NODE = -1


@dataclass(frozen=True, slots=True)
class PartitionMeta:
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    error: int = 0


@dataclass(slots=True)
class TopicMeta:
    name: str
    error: int
    internal: bool = False
    partitions: dict[int, PartitionMeta] = field(default_factory=dict)


class Cluster:
    """Brokers and topic metadata as last seen, plus this client's node connections.

    Invariant: ``_connections`` holds at most one connection per (node, channel); a closed
    one is replaced on the next ``connection`` call. Bootstrap servers are used until the
    first metadata response names the brokers (and again if none of those answers).
    """

    def __init__(
        self,
        servers: Sequence[tuple[str, int]],
        *,
        client_id: str = "streamlog",
        connect_timeout: float = 10.0,
        request_timeout: float = 30.0,
        security: ClientSecurity | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``security`` and ``ssl_context``: see ``Connection``; every connection of the
        client (to bootstrap servers and to the brokers the metadata names) uses them."""
        if not servers:
            raise ValueError("a Kafka cluster needs at least one bootstrap server")
        self.servers = list(servers)
        self.client_id = client_id
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.security = security
        self.ssl_context = ssl_context
        self.brokers: dict[int, tuple[str, int]] = {}
        self.controller_id = -1
        self.topics: dict[str, TopicMeta] = {}
        self._connections: dict[tuple[object, str], Connection] = {}
        self._opening: dict[tuple[object, str], asyncio.Future[Connection]] = {}
        self._closed = False

    @property
    def bootstrap_text(self) -> str:
        return ",".join(f"{h}:{p}" for h, p in self.servers)

    # ---------------------------------------------------------------- connections

    async def connection(self, node_id: int, channel: str = "default") -> Connection:
        """An open connection to broker ``node_id`` (``ANY_NODE``: whichever answers)."""
        if node_id == ANY_NODE:
            return await self.any_connection(channel)
        address = self.brokers.get(node_id)
        if address is None:
            await self.refresh(())
            address = self.brokers.get(node_id)
            if address is None:
                raise BrokerUnavailableError(
                    f"broker {node_id} is not in the metadata of {self.bootstrap_text}"
                )
        return await self._open((node_id, channel), address, node_id)

    def ready_connection(self, node_id: int, channel: str = "default") -> Connection | None:
        """The open connection to ``node_id`` on ``channel``, if there is one (no waiting)."""
        conn = self._connections.get((node_id, channel))
        return conn if conn is not None and not conn.closed else None

    async def any_connection(self, channel: str = "default") -> Connection:
        """An open connection on ``channel`` to any broker, bootstrap servers last."""
        for (_, ch), conn in self._connections.items():
            if ch == channel and not conn.closed:
                return conn
        errors: list[str] = []
        for node_id, address in list(self.brokers.items()):
            try:
                return await self._open((node_id, channel), address, node_id)
            except BrokerUnavailableError as e:
                errors.append(str(e))
        for address in self.servers:
            try:
                return await self._open((address, channel), address, None)
            except BrokerUnavailableError as e:
                errors.append(str(e))
        raise BrokerUnavailableError(
            f"no broker of kafka://{self.bootstrap_text} answered: " + "; ".join(errors)
        )

    async def _open(
        self, key: tuple[object, str], address: tuple[str, int], node_id: int | None
    ) -> Connection:
        if self._closed:
            raise TransportClosedError("the client was closed")
        conn = self._connections.get(key)
        if conn is not None and not conn.closed:
            return conn
        opening = self._opening.get(key)
        if opening is None:
            opening = asyncio.ensure_future(self._connect(key, address, node_id))
            # Waiters await it shielded: when all of them were cancelled (the client
            # closing), nobody reads its failure, which asyncio would log as "never
            # retrieved" at exit; whoever still waits gets the error all the same.
            opening.add_done_callback(_retrieve_failure)
            self._opening[key] = opening
        return await asyncio.shield(opening)

    async def _connect(
        self, key: tuple[object, str], address: tuple[str, int], node_id: int | None
    ) -> Connection:
        try:
            conn = Connection(
                address[0],
                address[1],
                client_id=self.client_id,
                connect_timeout=self.connect_timeout,
                request_timeout=self.request_timeout,
                node_id=node_id,
                security=self.security,
                ssl_context=self.ssl_context,
            )
            await conn.open()
            if self._closed:
                conn.close()
                raise TransportClosedError("the client was closed")
            self._connections[key] = conn
            return conn
        finally:
            self._opening.pop(key, None)

    async def call(
        self,
        node_id: int,
        api_key: int,
        *,
        channel: str = "default",
        timeout: float | None = None,
        **values: Any,
    ) -> Any:
        """Send one request of ``api_key`` (negotiated version) to a node and await it."""
        conn = await self.connection(node_id, channel)
        return await conn.request(conn.build(api_key, **values), timeout=timeout)

    async def close(self) -> None:
        self._closed = True
        for opening in list(self._opening.values()):
            opening.cancel()
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()

    # ---------------------------------------------------------------- metadata

    async def refresh(
        self, topics: Collection[str] | None, *, allow_auto_create: bool = False
    ) -> dict[str, TopicMeta]:
        """Ask for metadata of ``topics`` (``None``: all topics, ``()``: brokers only).

        Returns the topics of the answer (errors included, see ``TopicMeta.error``); the
        cached view is updated with them.
        """
        conn = await self.any_connection()
        version = conn.version(ApiKey.METADATA)
        if topics is None:
            wanted: list[dict[str, Any]] | None = None if version >= 1 else []
        else:
            if not topics and version == 0:
                topics = ["__streamlog_no_topic__"]  # v0 reads an empty list as "all"
            wanted = [{"name": name} for name in topics]
        response: Any = await conn.request(
            conn.build(
                ApiKey.METADATA,
                topics=wanted,
                allow_auto_topic_creation=allow_auto_create,
            )
        )
        self.brokers = {int(b.node_id): (b.host, int(b.port)) for b in response.brokers}
        self.controller_id = int(getattr(response, "controller_id", -1))
        answered: dict[str, TopicMeta] = {}
        for t in response.topics:
            if t.name is None:
                continue
            meta = TopicMeta(
                name=t.name,
                error=int(t.error_code),
                internal=bool(getattr(t, "is_internal", False)),
                partitions={
                    int(p.partition_index): PartitionMeta(
                        partition=int(p.partition_index),
                        leader=int(p.leader_id),
                        replicas=tuple(int(r) for r in p.replica_nodes),
                        isr=tuple(int(r) for r in p.isr_nodes),
                        error=int(p.error_code),
                    )
                    for p in t.partitions
                },
            )
            answered[t.name] = meta
            if meta.error == ErrorCode.NONE:
                self.topics[t.name] = meta
            else:
                self.topics.pop(t.name, None)
        if topics is None:
            for name in list(self.topics):
                if name not in answered:
                    del self.topics[name]
        return answered

    def partition_count(self, topic: str) -> int | None:
        meta = self.topics.get(topic)
        return len(meta.partitions) if meta is not None and meta.partitions else None

    def leader(self, topic: str, partition: int) -> int:
        """The leader of a partition as last seen, or -1 when unknown or leaderless."""
        meta = self.topics.get(topic)
        if meta is None:
            return -1
        p = meta.partitions.get(partition)
        return -1 if p is None else p.leader


def _retrieve_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
