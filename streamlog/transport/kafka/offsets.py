"""Offset look-ups shared by the consumer and the admin client.

* ``list_offsets``: ListOffsets to each partition's leader: the log start (-2), the log
  end (-1) or the first offset at or after a timestamp.
* ``GroupCoordinator``: finds a group's coordinator (FindCoordinator) and commits and
  fetches the group's offsets there (OffsetCommit, OffsetFetch).

Both retry what Kafka calls retriable (leader moved, coordinator loading...) with a short
backoff for at most the request timeout, then raise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from streamlog.protocol import ApiKey, ErrorCode
from streamlog.transport.errors import (
    BrokerUnavailableError,
    GroupError,
    TransportError,
    UnknownTopicError,
)
from streamlog.transport.kafka.cluster import Cluster
from streamlog.transport.kafka.connection import Connection
from streamlog.transport.kafka.errors import COORDINATOR_ERRORS, error_for, is_retriable
from streamlog.transport.types import OffsetAndMetadata, TopicPartition

__all__ = [
    "list_offsets",
    "find_coordinator",
    "GroupCoordinator",
    "EARLIEST",
    "LATEST",
    "GROUP_KEY",
    "TRANSACTION_KEY",
]

EARLIEST = -2
LATEST = -1
GROUP_KEY = 0  # FindCoordinator key types
TRANSACTION_KEY = 1
_BACKOFF = 0.1


async def list_offsets(
    cluster: Cluster,
    timestamps: Mapping[TopicPartition, int],
    *,
    isolation_level: int = 0,
) -> dict[TopicPartition, tuple[int, int]]:
    """``(offset, timestamp)`` per partition; offset -1 when no record is at or after the
    timestamp asked for.

    :raises UnknownTopicError: a topic or partition that does not exist.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + cluster.request_timeout
    wanted = dict(timestamps)
    found: dict[TopicPartition, tuple[int, int]] = {}
    refreshed = False
    while wanted:
        unknown = {tp.topic for tp in wanted if cluster.leader(tp.topic, tp.partition) < 0}
        if unknown and not refreshed:
            await cluster.refresh(sorted(unknown))
            refreshed = True
        by_node: dict[int, dict[TopicPartition, int]] = {}
        last_error: TransportError | None = None
        for tp, ts in wanted.items():
            node = cluster.leader(tp.topic, tp.partition)
            if node < 0:
                meta = cluster.topics.get(tp.topic)
                if meta is None or tp.partition not in meta.partitions:
                    raise UnknownTopicError(f"{tp.topic}[{tp.partition}]: unknown partition")
                last_error = error_for(ErrorCode.LEADER_NOT_AVAILABLE, f"{tp.topic}")
                continue
            by_node.setdefault(node, {})[tp] = ts
        results = await asyncio.gather(
            *(
                _list_on_node(cluster, node, parts, isolation_level)
                for node, parts in by_node.items()
            ),
            return_exceptions=True,
        )
        for answer in results:
            if isinstance(answer, BaseException):
                if not isinstance(answer, BrokerUnavailableError):
                    raise answer
                last_error = answer
                continue
            for tp, (code, offset, ts) in answer.items():
                if code == ErrorCode.NONE:
                    found[tp] = (offset, ts)
                    del wanted[tp]
                elif is_retriable(code) and code != ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                    last_error = error_for(code, f"{tp.topic}[{tp.partition}]")
                else:
                    raise error_for(code, f"{tp.topic}[{tp.partition}]")
        if wanted:
            if loop.time() > deadline:
                raise last_error or BrokerUnavailableError("ListOffsets did not complete")
            await asyncio.sleep(_BACKOFF)
            await cluster.refresh(sorted({tp.topic for tp in wanted}))
    return found


async def _list_on_node(
    cluster: Cluster, node: int, timestamps: Mapping[TopicPartition, int], isolation_level: int
) -> dict[TopicPartition, tuple[int, int, int]]:
    by_topic: dict[str, list[dict[str, int]]] = {}
    for tp, ts in timestamps.items():
        by_topic.setdefault(tp.topic, []).append({"partition_index": tp.partition, "timestamp": ts})
    response: Any = await cluster.call(
        node,
        ApiKey.LIST_OFFSETS,
        replica_id=-1,
        isolation_level=isolation_level,
        topics=[{"name": t, "partitions": parts} for t, parts in by_topic.items()],
    )
    answer: dict[TopicPartition, tuple[int, int, int]] = {}
    for topic in response.topics:
        for p in topic.partitions:
            answer[TopicPartition(topic.name, int(p.partition_index))] = (
                int(p.error_code),
                int(p.offset),
                int(p.timestamp),
            )
    return answer


async def find_coordinator(cluster: Cluster, key: str, key_type: int) -> tuple[int, int, str]:
    """Ask for the coordinator of ``key``: a group (``GROUP_KEY``) or a transactional id
    (``TRANSACTION_KEY``). Returns ``(error code, broker id, error message)``; on success
    the coordinator's address is remembered in the cluster's broker list."""
    conn = await cluster.any_connection()
    response: Any = await conn.request(
        conn.build(
            ApiKey.FIND_COORDINATOR,
            key=key,
            key_type=key_type,
            coordinator_keys=[key],
        )
    )
    entry = response.coordinators[0] if hasattr(response, "coordinators") else response
    code = int(entry.error_code)
    node = int(entry.node_id)
    if code == ErrorCode.NONE:
        cluster.brokers.setdefault(node, (entry.host, int(entry.port)))
    return code, node, getattr(entry, "error_message", None) or ""


class GroupCoordinator:
    """The coordinator of one group as this client knows it, and the offset requests.

    Invariant: ``node`` is the coordinator's broker id, or None until found again (after
    NOT_COORDINATOR and friends, or a lost connection).
    """

    def __init__(self, cluster: Cluster, group_id: str) -> None:
        self.cluster = cluster
        self.group_id = group_id
        self.node: int | None = None

    async def connection(self) -> Connection:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cluster.request_timeout
        while True:
            try:
                if self.node is None:
                    self.node = await self._find()
                return await self.cluster.connection(self.node, "group")
            except (BrokerUnavailableError, GroupError) as e:
                self.node = None
                if loop.time() > deadline:
                    raise BrokerUnavailableError(
                        f"no coordinator for group {self.group_id!r}: {e}"
                    ) from None
                await asyncio.sleep(_BACKOFF)

    def invalidate(self) -> None:
        self.node = None

    async def _find(self) -> int:
        code, node, message = await find_coordinator(self.cluster, self.group_id, GROUP_KEY)
        if code != ErrorCode.NONE:
            raise error_for(code, f"group {self.group_id!r}", message)
        return node

    async def request(self, api_key: int, *, timeout: float | None = None, **values: Any) -> Any:
        """One request to the coordinator; a lost connection forgets the coordinator."""
        conn = await self.connection()
        try:
            return await conn.request(conn.build(api_key, **values), timeout=timeout)
        except BrokerUnavailableError:
            self.invalidate()
            raise

    async def commit(
        self,
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
        *,
        generation: int = -1,
        member_id: str = "",
    ) -> None:
        """Commit ``offsets``; raises the transport error of the first failed partition."""
        topics = [{"name": t, "partitions": p} for t, p in offsets_by_topic(offsets).items()]
        response = await self._retrying(
            ApiKey.OFFSET_COMMIT,
            group_id=self.group_id,
            generation_id_or_member_epoch=generation,
            member_id=member_id,
            topics=topics,
        )
        for topic in response.topics:
            for p in topic.partitions:
                code = int(p.error_code)
                if code != ErrorCode.NONE:
                    raise error_for(
                        code,
                        f"commit of {topic.name}[{p.partition_index}] for group {self.group_id!r}",
                        default=GroupError,
                    )

    async def fetch(
        self, partitions: Iterable[TopicPartition] | None, *, require_stable: bool = False
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """Committed offsets of ``partitions`` (None: every partition the group has);
        partitions without a commit are left out.

        ``require_stable`` (a read_committed consumer's, KIP-447): offsets an open
        transaction is committing are waited for (the broker answers
        UNSTABLE_OFFSET_COMMIT until it ends), so a partition's new owner never starts
        from the offset before a commit that is landing: it would process again what
        that transaction's outputs hold. Retried for the request timeout."""
        topics: list[dict[str, Any]] | None = None
        if partitions is not None:
            by_topic: dict[str, list[int]] = {}
            for tp in partitions:
                by_topic.setdefault(tp.topic, []).append(tp.partition)
            topics = [{"name": t, "partition_indexes": p} for t, p in by_topic.items()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cluster.request_timeout
        while True:
            try:
                return await self._fetch_once(topics, require_stable)
            except _UnstableOffsets as unstable:
                if loop.time() > deadline:
                    raise error_for(
                        ErrorCode.UNSTABLE_OFFSET_COMMIT, unstable.where, default=GroupError
                    ) from None
                await asyncio.sleep(_BACKOFF)

    async def _fetch_once(
        self, topics: list[dict[str, Any]] | None, require_stable: bool
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        conn = await self.connection()
        version = conn.version(ApiKey.OFFSET_FETCH)
        stable = {"require_stable": True} if require_stable and version >= 7 else {}
        if version >= 8:
            groups = [{"group_id": self.group_id, "topics": topics}]
            response = await self._retrying(ApiKey.OFFSET_FETCH, groups=groups, **stable)
            group = response.groups[0]
            code, answered = int(group.error_code), group.topics
        else:
            response = await self._retrying(
                ApiKey.OFFSET_FETCH, group_id=self.group_id, topics=topics, **stable
            )
            code, answered = int(getattr(response, "error_code", 0)), response.topics
        if code != ErrorCode.NONE:
            raise error_for(code, f"group {self.group_id!r}", default=GroupError)
        result: dict[TopicPartition, OffsetAndMetadata] = {}
        for topic in answered:
            for p in topic.partitions:
                pcode = int(p.error_code)
                where = f"{topic.name}[{p.partition_index}]"
                if pcode == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                    continue
                if pcode == ErrorCode.UNSTABLE_OFFSET_COMMIT:
                    raise _UnstableOffsets(f"{where} of group {self.group_id!r}")
                if pcode != ErrorCode.NONE:
                    raise error_for(pcode, where, default=GroupError)
                if int(p.committed_offset) >= 0:
                    result[TopicPartition(topic.name, int(p.partition_index))] = OffsetAndMetadata(
                        int(p.committed_offset), p.metadata or ""
                    )
        return result

    async def _retrying(self, api_key: int, **values: Any) -> Any:
        """A request retried while the coordinator moves or loads (top-level error codes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cluster.request_timeout
        while True:
            try:
                response = await self.request(api_key, **values)
            except BrokerUnavailableError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(_BACKOFF)
                continue
            code = _coordinator_error(response)
            if code is None:
                return response
            self.invalidate()
            if loop.time() > deadline:
                raise error_for(code, f"group {self.group_id!r}", default=GroupError)
            await asyncio.sleep(_BACKOFF)


class _UnstableOffsets(Exception):  # noqa: N818 - internal signal, never escapes fetch()
    """An open transaction is committing offsets of ``where``: ask again."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


def _coordinator_error(response: Any) -> int | None:
    """A coordinator error anywhere in an offset response, or None."""
    codes = [int(getattr(response, "error_code", 0))]
    for group in getattr(response, "groups", ()):
        codes.append(int(group.error_code))
    for topic in getattr(response, "topics", ()):
        codes.extend(int(p.error_code) for p in topic.partitions)
    for code in codes:
        if code in COORDINATOR_ERRORS:
            return code
    return None


def offsets_by_topic(
    offsets: Mapping[TopicPartition, OffsetAndMetadata],
) -> dict[str, list[dict[str, Any]]]:
    """Offsets as OffsetCommit and TxnOffsetCommit requests carry them: per topic, each
    partition's offset, no leader epoch (-1) and metadata."""
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for tp, om in offsets.items():
        by_topic.setdefault(tp.topic, []).append(
            {
                "partition_index": tp.partition,
                "committed_offset": om.offset,
                "committed_leader_epoch": -1,
                "committed_metadata": om.metadata,
            }
        )
    return by_topic
