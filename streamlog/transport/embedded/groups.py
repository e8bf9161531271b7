"""Consumer groups inside one process: membership, sticky assignment, the rebalance barrier.

The embedded transport has no group coordinator on the other side of a socket, so this
module plays its part for the consumers of one transport. It follows Kafka's classic
(eager) protocol, as a Java or aiokafka consumer sees it:

1. A member joins (``subscribe``), leaves (``close``), changes its subscription, or a
   subscribed topic changes its partition count: the group starts a new *generation*
   and computes every member's *target* with the cooperative sticky rule
   (``streamlog.transport.sticky``: balanced, co-partitioned, keeping what members own).
2. Each member notices the new generation on its next ``getmany`` (waiting members are
   woken through the notifier key ``group.key``). It revokes what it owns and its
   target leaves out (``on_partitions_revoked``; commits of those partitions still
   succeed inside the callback) and releases it; what stays put is never revoked, so it
   is processed on through the rebalance (Kafka's cooperative protocol, KIP-429).
3. The member then waits until none of its target partitions is owned by another member:
   the join barrier, so that two members never read the same partition. When its target
   is free it takes it (``on_partitions_assigned`` with what is new) and has completed
   the generation.

A member may advertise opaque ``user_data``; ``peers`` lists the members that did, with
their target partitions (what a Kafka group's streamlog leader shares in assignments).

A member that blocks the barrier and has not polled within its ``session_timeout_ms`` of
the rebalance starting is evicted (Kafka's rebalance timeout), so one idle consumer cannot
stall the group forever.
A consumer that is garbage collected without ``close`` is removed on the next access.

Offsets a transactional producer commits for a member (``check_txn_offsets``) carry the
member's id and generation (KIP-447): a member the group no longer has, or one of an
older generation, is refused, so a zombie cannot commit what another member now owns.

Invariant: a partition is owned by at most one member; ``owned`` only grows through
``complete``, which requires every target partition to be free.

Not thread-safe: one event loop drives every member of every group.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from streamlog.transport.errors import MembershipLostError, StaleGenerationError
from streamlog.transport.sticky import Claim, cooperative_assign, standby_assign
from streamlog.transport.types import ConsumerGroupMetadata, GroupPeer, TopicPartition

__all__ = ["Member", "ConsumerGroup", "GroupRegistry", "check_txn_offsets"]

ASSIGNOR = "cooperative-sticky"


@dataclass(eq=False)
class Member:
    """One consumer's place in a group; the consumer keeps it while it is a member."""

    member_id: str
    client_id: str
    topics: frozenset[str]
    session_timeout_s: float
    owned: frozenset[TopicPartition] = frozenset()
    target: frozenset[TopicPartition] = frozenset()
    generation: int = 0  # the last generation this member completed (0: none yet)
    last_seen: float = field(default_factory=time.monotonic)
    evicted: bool = False
    user_data: bytes | None = None
    standby_replicas: int = 0  # what this member's app asks for (the group takes the most)
    standby: frozenset[TopicPartition] = frozenset()  # kept warm, this generation

    def touch(self) -> None:
        self.last_seen = time.monotonic()


class ConsumerGroup:
    """The members, generation and assignment of one group; see the module docstring."""

    def __init__(
        self,
        group_id: str,
        partition_count: Callable[[str], int],
        notify: Callable[[object], None],
        metadata_version: Callable[[], int],
    ) -> None:
        self.group_id = group_id
        self.key = ("group", group_id)
        self.members: dict[str, Member] = {}
        self.generation = 0
        self.rebalance_started = time.monotonic()
        self._partition_count = partition_count
        self._notify = notify
        self._metadata_version = metadata_version
        self._seen_version = -1
        self._counts: dict[str, int] = {}
        self._dead: list[str] = []

    # -- membership ----------------------------------------------------------------------

    def join(
        self,
        client_id: str,
        topics: Iterable[str],
        session_timeout_s: float,
        user_data: bytes | None = None,
        *,
        standby_replicas: int = 0,
    ) -> Member:
        member = Member(
            f"{client_id}-{uuid.uuid4()}",
            client_id,
            frozenset(topics),
            session_timeout_s,
            user_data=user_data,
            standby_replicas=standby_replicas,
        )
        self.members[member.member_id] = member
        self.rebalance()
        return member

    def resubscribe(
        self, member: Member, topics: Iterable[str], user_data: bytes | None = None
    ) -> None:
        topics = frozenset(topics)
        if topics != member.topics or user_data != member.user_data:
            member.topics = topics
            member.user_data = user_data
            self.rebalance()

    def leave(self, member: Member) -> None:
        if self.members.pop(member.member_id, None) is not None:
            member.owned = frozenset()
            self.rebalance()

    def mark_dead(self, member_id: str) -> None:
        """Called by a finalizer when a member's consumer is garbage collected.

        Only records the id: finalizers may run anywhere, the group changes on the next
        access (``reap``).
        """
        self._dead.append(member_id)

    def reap(self) -> None:
        """Drop garbage-collected members; rebalance if they or the topics changed.

        Topics change through the transport (create, delete, add partitions); a
        subscribed topic whose partition count moved starts a new generation, as a
        Kafka group leader does when its metadata changes.
        """
        changed = False
        while self._dead:
            member = self.members.pop(self._dead.pop(), None)
            if member is not None:
                member.owned = frozenset()
                changed = True
        version = self._metadata_version()
        if version != self._seen_version:
            self._seen_version = version
            if self.members and self._counts != self._current_counts():
                changed = True
        if changed:
            self.rebalance()

    def evict(self, member: Member) -> None:
        """Remove a member that blocked a rebalance for longer than its session timeout."""
        member.evicted = True
        self.leave(member)

    # -- the rebalance -------------------------------------------------------------------

    def _current_counts(self) -> dict[str, int]:
        topics = set().union(*(m.topics for m in self.members.values()))
        counts = {}
        for topic in topics:
            n = self._partition_count(topic)
            if n:
                counts[topic] = n
        return counts

    def rebalance(self) -> None:
        """Start a new generation: new targets for every member, everyone woken."""
        self.generation += 1
        self.rebalance_started = time.monotonic()
        self._seen_version = self._metadata_version()
        self._counts = self._current_counts()
        claims = {m: Claim(s.topics, s.owned, s.standby) for m, s in self.members.items()}
        targets = cooperative_assign(self._counts, claims, withhold=False)
        replicas = max((m.standby_replicas for m in self.members.values()), default=0)
        standby = standby_assign(self._counts, claims, targets, replicas)
        for member_id, target in targets.items():
            self.members[member_id].target = frozenset(target)
            self.members[member_id].standby = frozenset(standby.get(member_id, ()))
        self._notify(self.key)

    def release(self, member: Member, partitions: Iterable[TopicPartition]) -> None:
        """The member gave these partitions back (after its revoke callback)."""
        member.owned = member.owned.difference(partitions)
        self._notify(self.key)

    def blockers(self, member: Member) -> list[Member]:
        """Other members still owning a partition of ``member``'s target."""
        return [
            other
            for other in self.members.values()
            if other is not member and not other.owned.isdisjoint(member.target)
        ]

    def complete(self, member: Member) -> frozenset[TopicPartition]:
        """The member takes its target for the current generation (its target is free);
        returns what it did not own before."""
        added = member.target - member.owned
        member.owned = member.target
        member.generation = self.generation
        return added

    # -- views ---------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """Kafka's group state names, as DescribeGroups reports them."""
        if not self.members:
            return "Empty"
        if any(m.generation != self.generation for m in self.members.values()):
            return "PreparingRebalance"
        return "Stable"

    def peers(self) -> tuple[GroupPeer, ...]:
        """The members that advertised user data, with their targets, by member id."""
        return tuple(
            GroupPeer(m.member_id, m.user_data, m.target, m.standby)
            for _, m in sorted(self.members.items())
            if m.user_data is not None
        )

    def owner(self, partition: TopicPartition) -> str | None:
        """The member the current generation assigns ``partition`` to."""
        for member in self.members.values():
            if partition in member.target:
                return member.member_id
        return None


class GroupRegistry:
    """Every group of one embedded transport, created on first use."""

    def __init__(
        self,
        partition_count: Callable[[str], int],
        notify: Callable[[object], None],
        metadata_version: Callable[[], int],
    ) -> None:
        self._groups: dict[str, ConsumerGroup] = {}
        self._partition_count = partition_count
        self._notify = notify
        self._metadata_version = metadata_version

    def group(self, group_id: str) -> ConsumerGroup:
        group = self._groups.get(group_id)
        if group is None:
            group = ConsumerGroup(
                group_id, self._partition_count, self._notify, self._metadata_version
            )
            self._groups[group_id] = group
        return group

    def get(self, group_id: str) -> ConsumerGroup | None:
        group = self._groups.get(group_id)
        if group is not None:
            group.reap()
        return group

    def notify_all(self) -> None:
        """Wake every waiting member of every group (topics changed)."""
        for group in self._groups.values():
            self._notify(group.key)

    def with_members(self) -> list[str]:
        active = []
        for group_id, group in self._groups.items():
            group.reap()
            if group.members:
                active.append(group_id)
        return active


def check_txn_offsets(
    groups: GroupRegistry,
    member: ConsumerGroupMetadata,
    partitions: Iterable[tuple[str, int]],
) -> None:
    """Refuse offsets a transactional producer commits for ``member`` unless the group
    still has that member at that generation (KIP-447, Kafka's TxnOffsetCommit checks).

    A commit without member id or generation (-1, "") is a commit for the group as a
    whole, taken as Kafka takes it. Otherwise the member must be in the group
    (``MembershipLostError``, Kafka's UNKNOWN_MEMBER_ID), ``generation_id`` must be the
    last generation it completed (``StaleGenerationError``, ILLEGAL_GENERATION), and
    while a rebalance it has not completed is under way only the partitions it still
    owns may be committed (the rule of the embedded consumer's own commits: what it
    revoked may be another member's already).
    """
    if member.generation_id < 0 and not member.member_id and member.group_instance_id is None:
        return
    group = groups.get(member.group_id)
    known = group.members.get(member.member_id) if group is not None else None
    if group is None or known is None:
        raise MembershipLostError(
            f"UNKNOWN_MEMBER_ID: group {member.group_id!r} has no member "
            f"{member.member_id!r} (it left, or was removed for not polling)"
        )
    if member.generation_id != known.generation:
        raise StaleGenerationError(
            f"ILLEGAL_GENERATION: member {member.member_id!r} of group {member.group_id!r} "
            f"is at generation {known.generation}, not {member.generation_id}"
        )
    if known.generation != group.generation:
        foreign = sorted(tp for tp in partitions if TopicPartition(*tp) not in known.owned)
        if foreign:
            raise StaleGenerationError(
                f"ILLEGAL_GENERATION: group {member.group_id!r} is at generation "
                f"{group.generation} and {foreign} are no longer member "
                f"{member.member_id!r}'s"
            )
