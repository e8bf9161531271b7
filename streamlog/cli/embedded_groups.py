"""The worker's in-process consumer groups as its Kafka listener reports them.

A ``streamlog worker`` on ``file://`` coordinates its consumers in process (the embedded
transport's ``GroupRegistry``) and serves its log over the Kafka protocol. This is the
``LocalGroups`` view the listener's coordinator reads, so ``streamlog groups describe``,
``kafka-consumer-groups --describe`` or any admin client see the app's group with its
members and assignment rather than an Empty group known only by its offsets.

Members are described as Kafka describes a classic "consumer" group: the subscription and
the assignment in the consumer protocol's byte formats (version 0), the assignor's name
as the protocol; the assignment and subscription only while the group is Stable (Kafka's
``GroupMetadata.summary`` leaves them empty during a rebalance).
"""

from __future__ import annotations

from streamlog.broker.group_metadata import (
    GroupDescription,
    GroupOverview,
    GroupState,
    MemberDescription,
)
from streamlog.transport.embedded.admin import MEMBER_HOST
from streamlog.transport.embedded.groups import ASSIGNOR, ConsumerGroup, GroupRegistry
from streamlog.transport.kafka.assignors import encode_assignment, encode_subscription

__all__ = ["EmbeddedGroupsView", "CONSUMER_PROTOCOL_TYPE"]

CONSUMER_PROTOCOL_TYPE = "consumer"


class EmbeddedGroupsView:
    """``broker.local_groups.LocalGroups`` over an embedded transport's groups."""

    def __init__(self, registry: GroupRegistry) -> None:
        self._registry = registry

    def describe(self, group_id: str) -> GroupDescription | None:
        group = self._registry.get(group_id)
        if group is None or not group.members:
            return None
        return _description(group)

    def overviews(self) -> list[GroupOverview]:
        found = []
        for group_id in self._registry.with_members():
            group = self._registry.get(group_id)
            if group is not None and group.members:
                found.append(
                    GroupOverview(group_id, CONSUMER_PROTOCOL_TYPE, GroupState(group.state))
                )
        return found


def _description(group: ConsumerGroup) -> GroupDescription:
    state = GroupState(group.state)
    stable = state is GroupState.STABLE
    members = tuple(
        MemberDescription(
            member_id=m.member_id,
            group_instance_id=None,
            client_id=m.client_id,
            client_host=MEMBER_HOST,
            metadata=encode_subscription(m.topics, m.user_data) if stable else b"",
            assignment=encode_assignment(m.target) if stable else b"",
        )
        for _, m in sorted(group.members.items())
    )
    return GroupDescription(
        group.group_id, state, CONSUMER_PROTOCOL_TYPE, ASSIGNOR if stable else "", members
    )
