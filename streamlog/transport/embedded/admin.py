"""The embedded admin client: topics and groups of the in-process log.

The log has one "broker", node 0, leading every partition with itself as the only
replica, as ``streamlog broker`` reports it. Topic configs are the overrides a topic was
created or altered with (what Kafka reports as dynamic topic configs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from streamlog.log import OFFSETS_TOPIC
from streamlog.log import errors as log_errors
from streamlog.transport.embedded.errors import translated
from streamlog.transport.embedded.groups import ASSIGNOR
from streamlog.transport.errors import TransportClosedError
from streamlog.transport.types import (
    GroupInfo,
    GroupMemberInfo,
    GroupPartitionLag,
    PartitionInfo,
    TopicInfo,
    TopicPartition,
)

if TYPE_CHECKING:
    from streamlog.transport.embedded.transport import EmbeddedTransport

__all__ = ["EmbeddedAdmin", "NODE_ID", "MEMBER_HOST"]

NODE_ID = 0
MEMBER_HOST = "localhost"  # every member is in this process


class EmbeddedAdmin:
    """See the module docstring. Made by ``EmbeddedTransport.admin``."""

    def __init__(self, transport: EmbeddedTransport) -> None:
        self._transport = transport
        self._closed = False

    def __repr__(self) -> str:
        return f"EmbeddedAdmin({self._transport.url!r})"

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosedError("the admin client is closed")

    # -- topics --------------------------------------------------------------------------

    async def create_topic(
        self,
        name: str,
        partitions: int = 1,
        configs: Mapping[str, str] | None = None,
        replication_factor: int | None = None,  # one log, one copy: nothing to replicate
    ) -> None:
        self._check_open()
        with translated():
            self._transport.manager.create_topic(name, partitions, dict(configs or {}))
        self._transport.topics_changed()

    async def delete_topic(self, name: str) -> None:
        self._check_open()
        with translated():
            self._transport.manager.delete_topic(name)
        self._transport.topics_changed()

    async def add_partitions(self, name: str, total: int) -> None:
        self._check_open()
        with translated():
            self._transport.manager.add_partitions(name, total)
        self._transport.topics_changed()

    async def list_topics(self, include_internal: bool = False) -> list[str]:
        self._check_open()
        return self._transport.manager.list_topics(include_internal)

    async def describe_topic(self, name: str) -> TopicInfo:
        self._check_open()
        with translated():
            description = self._transport.manager.describe_topic(name)
        return TopicInfo(
            name=description.name,
            partitions=tuple(
                PartitionInfo(
                    partition=p.partition,
                    leader=NODE_ID,
                    replicas=(NODE_ID,),
                    isr=(NODE_ID,),
                    log_start_offset=p.log_start_offset,
                    log_end_offset=p.log_end_offset,
                )
                for p in description.partitions
            ),
            configs={k: str(v) for k, v in description.overrides.items()},
            topic_overrides=frozenset(description.overrides),
            internal=description.internal,
        )

    # -- groups --------------------------------------------------------------------------

    async def list_groups(self) -> list[str]:
        """Groups with members now, or with committed offsets."""
        self._check_open()
        store = self._transport.manager.group_offsets
        committed = store.groups() if store is not None else []
        return sorted(set(self._transport.groups.with_members()) | set(committed))

    async def describe_group(self, group_id: str) -> GroupInfo:
        """Members and, for every committed or assigned partition, its lag.

        An unknown group is described as Kafka describes one: state "Dead", no members.
        """
        self._check_open()
        manager = self._transport.manager
        group = self._transport.groups.get(group_id)
        store = manager.group_offsets
        committed = store.fetch(group_id) if store is not None else {}
        members = list(group.members.values()) if group is not None else []
        partitions = {TopicPartition(t, p) for t, p in committed}
        for member in members:
            partitions.update(member.target)
        lags = []
        for tp in sorted(partitions):
            if tp.topic == OFFSETS_TOPIC:
                continue
            try:
                end = manager.partition(tp.topic, tp.partition).log_end_offset
            except log_errors.UnknownTopicError:
                continue  # committed for a topic deleted since
            stored = committed.get((tp.topic, tp.partition))
            lags.append(
                GroupPartitionLag(
                    topic=tp.topic,
                    partition=tp.partition,
                    log_end_offset=end,
                    committed_offset=stored.offset if stored is not None else -1,
                    member_id=group.owner(tp) if group is not None else None,
                )
            )
        if group is not None and members:
            state = group.state
        else:
            state = "Empty" if committed else "Dead"
        return GroupInfo(
            group_id=group_id,
            state=state,
            protocol=ASSIGNOR if members else "",
            members=tuple(
                GroupMemberInfo(
                    member_id=m.member_id,
                    client_id=m.client_id,
                    host=MEMBER_HOST,
                    assignment=tuple(sorted(m.target)),
                )
                for m in sorted(members, key=lambda m: m.member_id)
            ),
            partitions=tuple(lags),
        )

    async def close(self) -> None:
        self._closed = True
