"""The admin client: topics (CreateTopics, DeleteTopics, CreatePartitions, Metadata,
DescribeConfigs, ListOffsets) and groups (ListGroups, DescribeGroups, OffsetFetch).

Topic changes go to the controller named by the metadata (any broker when it names
none) and return once the change shows in the metadata, so a producer or consumer
created next sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from streamlog.protocol import ApiKey, ErrorCode
from streamlog.transport.errors import (
    BrokerUnavailableError,
    GroupError,
    TransportClosedError,
    UnknownTopicError,
    UnsupportedBrokerFeatureError,
)
from streamlog.transport.kafka.assignors import MalformedMemberDataError, decode_assignment
from streamlog.transport.kafka.cluster import ANY_NODE, Cluster
from streamlog.transport.kafka.errors import error_for
from streamlog.transport.kafka.offsets import EARLIEST, LATEST, GroupCoordinator, list_offsets
from streamlog.transport.types import (
    GroupInfo,
    GroupMemberInfo,
    GroupPartitionLag,
    PartitionInfo,
    TopicInfo,
    TopicPartition,
)

__all__ = ["KafkaAdmin"]

_TOPIC_RESOURCE = 2
_TOPIC_CONFIG_SOURCE = 1  # DescribeConfigs' DYNAMIC_TOPIC_CONFIG: set on the topic itself
_ALWAYS_LISTED = "segment.bytes"  # in a full DescribeConfigs answer, set or not
_PROPAGATION_WAIT = 5.0  # seconds to wait for a topic change to show in the metadata


class KafkaAdmin:
    """See the module docstring. Create through ``KafkaTransport.admin``."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosedError("the admin client is closed")

    async def _controller(self) -> int:
        if (
            self._cluster.controller_id < 0
            or self._cluster.controller_id not in self._cluster.brokers
        ):
            await self._cluster.refresh(())
        node = self._cluster.controller_id
        return node if node in self._cluster.brokers else ANY_NODE

    # ---------------------------------------------------------------- topics

    async def create_topic(
        self,
        name: str,
        partitions: int = 1,
        configs: Mapping[str, str] | None = None,
        replication_factor: int | None = None,
    ) -> None:
        self._check_open()
        node = await self._controller()
        conn = await self._cluster.connection(node)
        version = conn.version(ApiKey.CREATE_TOPICS)
        if replication_factor is None:
            # -1: the broker's default (KIP-464, v4+); older brokers need a number
            replication_factor = -1 if version >= 4 else 1
        response: Any = await conn.request(
            conn.build(
                ApiKey.CREATE_TOPICS,
                topics=[
                    {
                        "name": name,
                        "num_partitions": partitions,
                        "replication_factor": replication_factor,
                        "assignments": [],
                        "configs": [
                            {"name": k, "value": str(v)} for k, v in (configs or {}).items()
                        ],
                    }
                ],
                timeout=int(self._cluster.request_timeout * 1000),
                validate_only=False,
            )
        )
        for topic in response.topics:
            code = int(topic.error_code)
            if code != ErrorCode.NONE:
                raise error_for(code, f"topic {name!r}", topic.error_message)
        await self._await_metadata(
            name, lambda meta: meta is not None and len(meta.partitions) >= partitions
        )

    async def delete_topic(self, name: str) -> None:
        self._check_open()
        node = await self._controller()
        response: Any = await self._cluster.call(
            node,
            ApiKey.DELETE_TOPICS,
            topic_names=[name],
            topics=[{"name": name}],
            timeout=int(self._cluster.request_timeout * 1000),
        )
        for topic in response.responses:
            code = int(topic.error_code)
            if code != ErrorCode.NONE:
                raise error_for(code, f"topic {name!r}", getattr(topic, "error_message", None))
        await self._await_metadata(name, lambda meta: meta is None)

    async def add_partitions(self, name: str, total: int) -> None:
        self._check_open()
        node = await self._controller()
        conn = await self._cluster.connection(node)
        if not conn.supports(ApiKey.CREATE_PARTITIONS):
            raise UnsupportedBrokerFeatureError(
                f"{conn.address}: the broker does not support CreatePartitions (not in its "
                "ApiVersions answer): topics cannot be given more partitions on it"
            )
        response: Any = await conn.request(
            conn.build(
                ApiKey.CREATE_PARTITIONS,
                topics=[{"name": name, "count": total, "assignments": None}],
                timeout=int(self._cluster.request_timeout * 1000),
                validate_only=False,
            )
        )
        for result in response.results:
            code = int(result.error_code)
            if code != ErrorCode.NONE:
                raise error_for(code, f"topic {name!r}", result.error_message)
        await self._await_metadata(
            name, lambda meta: meta is not None and len(meta.partitions) >= total
        )

    async def _await_metadata(self, name: str, ready: Any) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _PROPAGATION_WAIT
        while True:
            answered = await self._cluster.refresh([name])
            meta = answered.get(name)
            if meta is not None and meta.error != ErrorCode.NONE:
                meta = None
            if ready(meta) or loop.time() > deadline:
                return
            await asyncio.sleep(0.05)

    async def list_topics(self, include_internal: bool = False) -> list[str]:
        self._check_open()
        answered = await self._cluster.refresh(None)
        return sorted(
            name
            for name, meta in answered.items()
            if meta.error == ErrorCode.NONE and (include_internal or not _is_internal(meta))
        )

    async def describe_topic(self, name: str) -> TopicInfo:
        self._check_open()
        answered = await self._cluster.refresh([name])
        meta = answered.get(name)
        if meta is None or meta.error == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            raise UnknownTopicError(f"topic {name!r}: unknown topic")
        if meta.error != ErrorCode.NONE:
            raise error_for(meta.error, f"topic {name!r}")
        tps = [TopicPartition(name, p) for p in sorted(meta.partitions)]
        starts, ends, described = await asyncio.gather(
            list_offsets(self._cluster, {tp: EARLIEST for tp in tps}),
            list_offsets(self._cluster, {tp: LATEST for tp in tps}),
            self._topic_configs(name),
        )
        partitions = tuple(
            PartitionInfo(
                partition=p.partition,
                leader=p.leader,
                replicas=p.replicas,
                isr=p.isr,
                log_start_offset=starts[TopicPartition(name, p.partition)][0],
                log_end_offset=ends[TopicPartition(name, p.partition)][0],
            )
            for p in (meta.partitions[i] for i in sorted(meta.partitions))
        )
        configs, overrides = described
        return TopicInfo(
            name=name,
            partitions=partitions,
            configs=configs,
            internal=_is_internal(meta),
            topic_overrides=overrides,
        )

    async def _topic_configs(self, name: str) -> tuple[dict[str, str], frozenset[str] | None]:
        """The topic's configs, and which of them are set on the topic (None: unknown)."""
        conn = await self._cluster.any_connection()
        if not conn.supports(ApiKey.DESCRIBE_CONFIGS):
            return {}, None
        response: Any = await conn.request(
            conn.build(
                ApiKey.DESCRIBE_CONFIGS,
                resources=[
                    {
                        "resource_type": _TOPIC_RESOURCE,
                        "resource_name": name,
                        "configuration_keys": None,
                    }
                ],
                include_synonyms=False,
                include_documentation=False,
            )
        )
        configs: dict[str, str] = {}
        overrides: set[str] | None = set()
        for result in response.results:
            code = int(result.error_code)
            if code != ErrorCode.NONE:
                raise error_for(code, f"topic {name!r}", result.error_message)
            for entry in result.configs:
                if entry.value is not None and not entry.is_sensitive:
                    configs[entry.name] = entry.value
                    source = getattr(entry, "config_source", None)
                    if source is None or int(source) < 0:  # v0 (is_default) or unknown
                        overrides = None
                    elif overrides is not None and int(source) == _TOPIC_CONFIG_SOURCE:
                        overrides.add(entry.name)
        if configs and _ALWAYS_LISTED not in configs:
            # A broker that lists only some configs lists those set on the topic (Tansu,
            # which also marks them DEFAULT_CONFIG): Kafka and streamlog broker list every
            # config, defaults included.
            overrides = set(configs)
        return configs, None if overrides is None else frozenset(overrides)

    # ---------------------------------------------------------------- groups

    async def list_groups(self) -> list[str]:
        self._check_open()
        await self._cluster.refresh(())
        nodes = list(self._cluster.brokers) or [ANY_NODE]
        groups: set[str] = set()
        errors: list[str] = []
        for node in nodes:
            try:
                response: Any = await self._cluster.call(node, ApiKey.LIST_GROUPS, states_filter=[])
            except BrokerUnavailableError as e:
                errors.append(str(e))
                continue
            code = int(response.error_code)
            if code != ErrorCode.NONE:
                raise error_for(code, "ListGroups", default=GroupError)
            groups.update(g.group_id for g in response.groups)
        if errors and len(errors) == len(nodes):
            raise BrokerUnavailableError("; ".join(errors))
        return sorted(groups)

    async def describe_group(self, group_id: str) -> GroupInfo:
        self._check_open()
        coordinator = GroupCoordinator(self._cluster, group_id)
        response: Any = await coordinator.request(
            ApiKey.DESCRIBE_GROUPS, groups=[group_id], include_authorized_operations=False
        )
        described = response.groups[0]
        code = int(described.error_code)
        if code != ErrorCode.NONE:
            raise error_for(code, f"group {group_id!r}", default=GroupError)
        members: list[GroupMemberInfo] = []
        owner: dict[TopicPartition, str] = {}
        for m in described.members:
            assigned: set[TopicPartition] = set()
            if described.protocol_type == "consumer" and m.member_assignment:
                try:
                    assigned = decode_assignment(m.member_assignment)
                except MalformedMemberDataError:
                    assigned = set()
            for tp in assigned:
                owner[tp] = m.member_id
            members.append(
                GroupMemberInfo(
                    member_id=m.member_id,
                    client_id=m.client_id,
                    host=m.client_host,
                    assignment=tuple(sorted(assigned)),
                )
            )
        committed = await coordinator.fetch(None)
        partitions = sorted(set(committed) | set(owner))
        ends: dict[TopicPartition, tuple[int, int]] = {}
        if partitions:
            ends = await self._end_offsets(partitions)
        lags = tuple(
            GroupPartitionLag(
                topic=tp.topic,
                partition=tp.partition,
                log_end_offset=ends[tp][0],
                committed_offset=committed[tp].offset if tp in committed else -1,
                member_id=owner.get(tp),
            )
            for tp in partitions
            if tp in ends  # commits for a topic deleted since are left out
        )
        return GroupInfo(
            group_id=group_id,
            state=described.group_state,
            protocol=described.protocol_data,
            members=tuple(members),
            partitions=lags,
        )

    async def _end_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, tuple[int, int]]:
        """Log end offsets; partitions of deleted topics are left out."""
        await self._cluster.refresh(sorted({tp.topic for tp in partitions}))
        known = [
            tp
            for tp in partitions
            if tp.topic in self._cluster.topics
            and tp.partition in self._cluster.topics[tp.topic].partitions
        ]
        if not known:
            return {}
        return await list_offsets(self._cluster, {tp: LATEST for tp in known})

    async def close(self) -> None:
        self._closed = True
        await self._cluster.close()


def _is_internal(meta: Any) -> bool:
    return bool(meta.internal) or meta.name.startswith("__")
