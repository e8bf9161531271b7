"""The state of one classic consumer group, and what the coordinator hands back to handlers.

A ``Group`` is plain data plus the rules that need nothing but the group itself: who is a
member, who leads, which protocol all members support, which members have rejoined. The
rebalance protocol that moves a group between states, with its timers and waiting
requests, is ``GroupCoordinator``'s (``coordinator.py``). Everything here lives on the
broker's event loop and is not thread-safe.

States, as Kafka's classic ``GroupMetadata``::

    Empty ──join──▶ PreparingRebalance ──all rejoined / timeout──▶ CompletingRebalance
      ▲                 ▲        │ (no members left)                  │ leader's SyncGroup
      └─────────────────┼────────┘                                    ▼
                        └──── join, leave, expiry, new protocol ──── Stable

Dead is the state of a group the coordinator does not know; DescribeGroups reports it.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from streamlog.protocol import ErrorCode

__all__ = [
    "GroupState",
    "Member",
    "Group",
    "JoinResult",
    "JoinedMember",
    "SyncResult",
    "LeaveResult",
    "GroupOverview",
    "GroupDescription",
    "MemberDescription",
]


class GroupState(enum.Enum):
    """The five classic group states, valued as Kafka spells them on the wire."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class JoinedMember:
    """One member as the leader sees it in a JoinGroup response."""

    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinResult:
    """The outcome of a JoinGroup; ``members`` is filled for the leader only."""

    error: ErrorCode
    member_id: str
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str = ""
    members: tuple[JoinedMember, ...] = ()
    skip_assignment: bool = False


@dataclass(frozen=True, slots=True)
class SyncResult:
    error: ErrorCode
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass(frozen=True, slots=True)
class LeaveResult:
    """A group-level error and, in request order, one error per leaving member."""

    error: ErrorCode
    member_errors: tuple[ErrorCode, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupOverview:
    group_id: str
    protocol_type: str
    state: GroupState


@dataclass(frozen=True, slots=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupDescription:
    group_id: str
    state: GroupState
    protocol_type: str
    protocol_name: str
    members: tuple[MemberDescription, ...] = ()


@dataclass(slots=True, eq=False)
class Member:
    """A group member.

    ``join_future`` is set while the member has a JoinGroup waiting for the join phase to
    end (it has "rejoined"); ``sync_future`` while its SyncGroup waits for the leader's
    assignment. A future whose request was abandoned (the client disconnected) is
    cancelled by asyncio but stays here, so the member still counts as rejoined, as in
    Kafka; its session deadline then removes it once the rebalance moves on.
    """

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: tuple[tuple[str, bytes], ...]
    assignment: bytes = b""
    deadline_ms: int = 0
    is_new: bool = False
    join_future: asyncio.Future[JoinResult] | None = None
    sync_future: asyncio.Future[SyncResult] | None = None

    @property
    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]

    def metadata(self, protocol: str | None) -> bytes:
        for name, data in self.protocols:
            if name == protocol:
                return data
        return b""

    def matches(self, protocols: Sequence[tuple[str, bytes]]) -> bool:
        return tuple(protocols) == self.protocols

    def complete_join(self, result: JoinResult) -> None:
        future, self.join_future = self.join_future, None
        if future is not None and not future.done():
            future.set_result(result)

    def complete_sync(self, result: SyncResult) -> None:
        future, self.sync_future = self.sync_future, None
        if future is not None and not future.done():
            future.set_result(result)


@dataclass(slots=True, eq=False)
class Group:
    """One group's membership and generation.

    Invariants: ``leader_id`` names a member, or is None when there are none;
    ``static_members`` maps each static member's instance id to its current member id;
    ``generation_id`` grows by one each time a join phase ends.
    """

    group_id: str
    state: GroupState = GroupState.EMPTY
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)
    # KIP-394: member ids handed out with MEMBER_ID_REQUIRED, with their expiry deadline
    pending_members: dict[str, int] = field(default_factory=dict)
    # members that got this generation's JoinGroup response but have not sent SyncGroup
    pending_sync: set[str] = field(default_factory=set)
    join_deadline_ms: int | None = None
    sync_deadline_ms: int | None = None
    # group.initial.rebalance.delay.ms: the join phase of an Empty group waits this long,
    # again each time a new member arrives, up to the rebalance timeout in all
    initial_delay_remaining_ms: int | None = None
    new_member_added: bool = False

    # -- membership ----------------------------------------------------------------------

    def add(self, member: Member) -> None:
        if not self.members:
            self.protocol_type = member.protocol_type
        self.members[member.member_id] = member
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        self.pending_members.pop(member.member_id, None)
        if self.leader_id is None:
            self.leader_id = member.member_id

    def remove(self, member_id: str) -> Member | None:
        member = self.members.pop(member_id, None)
        if member is None:
            return None
        if member.group_instance_id is not None:
            if self.static_members.get(member.group_instance_id) == member_id:
                del self.static_members[member.group_instance_id]
        self.pending_sync.discard(member_id)
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        return member

    def replace_static_member(self, instance_id: str, new_member_id: str) -> Member:
        """Give the static member of ``instance_id`` a new member id, keeping its place."""
        old_id = self.static_members[instance_id]
        member = self.members[old_id]
        # keep the join order, which decides the next leader
        self.members = {
            (new_member_id if mid == old_id else mid): m for mid, m in self.members.items()
        }
        member.member_id = new_member_id
        self.static_members[instance_id] = new_member_id
        if self.leader_id == old_id:
            self.leader_id = new_member_id
        if old_id in self.pending_sync:
            self.pending_sync.discard(old_id)
            self.pending_sync.add(new_member_id)
        return member

    def is_static_member_fenced(self, instance_id: str | None, member_id: str) -> bool:
        if instance_id is None:
            return False
        current = self.static_members.get(instance_id)
        return current is not None and current != member_id

    def has_all_members_joined(self) -> bool:
        return not self.pending_members and all(
            m.join_future is not None for m in self.members.values()
        )

    # -- protocols -----------------------------------------------------------------------

    def supports_protocols(self, protocol_type: str, names: Sequence[str]) -> bool:
        """Whether a member with these protocols could join (Kafka's ``supportsProtocols``)."""
        if not self.members:
            return bool(protocol_type) and bool(names)
        if protocol_type != self.protocol_type:
            return False
        return any(name in self.candidate_protocols() for name in names)

    def candidate_protocols(self) -> set[str]:
        """The protocol names every member supports."""
        candidates: set[str] | None = None
        for member in self.members.values():
            names = set(member.protocol_names)
            candidates = names if candidates is None else candidates & names
        return candidates or set()

    def select_protocol(self) -> str | None:
        """The protocol most members name first among those all support.

        Each member votes for the first protocol of its own list that every member supports;
        ties go to the one the leader prefers.
        """
        candidates = self.candidate_protocols()
        if not candidates:
            return None
        votes: dict[str, int] = {}
        for member in self.members.values():
            vote = next(n for n in member.protocol_names if n in candidates)
            votes[vote] = votes.get(vote, 0) + 1
        best = max(votes.values())
        leader = self.members.get(self.leader_id or "") or next(iter(self.members.values()))
        # the leader names every candidate, so it names the winners too
        return next(name for name in leader.protocol_names if votes.get(name) == best)

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    # -- views ---------------------------------------------------------------------------

    def joined_members(self) -> tuple[JoinedMember, ...]:
        return tuple(
            JoinedMember(m.member_id, m.group_instance_id, m.metadata(self.protocol_name))
            for m in self.members.values()
        )

    def join_result(self, member: Member) -> JoinResult:
        """The successful JoinGroup response of ``member`` for the current generation."""
        is_leader = member.member_id == self.leader_id
        return JoinResult(
            error=ErrorCode.NONE,
            member_id=member.member_id,
            generation_id=self.generation_id,
            protocol_type=self.protocol_type,
            protocol_name=self.protocol_name,
            leader_id=self.leader_id or "",
            members=self.joined_members() if is_leader else (),
        )

    def overview(self) -> GroupOverview:
        return GroupOverview(self.group_id, self.protocol_type or "", self.state)

    def describe(self) -> GroupDescription:
        # As Kafka: metadata and assignments only once the group is Stable.
        stable = self.state is GroupState.STABLE
        return GroupDescription(
            group_id=self.group_id,
            state=self.state,
            protocol_type=self.protocol_type or "",
            protocol_name=(self.protocol_name or "") if stable else "",
            members=tuple(
                MemberDescription(
                    member_id=m.member_id,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    metadata=m.metadata(self.protocol_name) if stable else b"",
                    assignment=m.assignment if stable else b"",
                )
                for m in self.members.values()
            ),
        )
