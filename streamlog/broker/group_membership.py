"""The classic rebalance protocol: JoinGroup, SyncGroup, Heartbeat, LeaveGroup and expiry.

A rebalance, as numbered steps (the names are the methods that do them):

1. A join, a leave, a session expiry or a changed protocol moves the group to
   PreparingRebalance (``_prepare_rebalance``); members still in a SyncGroup get
   REBALANCE_IN_PROGRESS, and the others learn it from their next heartbeat.
2. Each member's JoinGroup waits (``Member.join_future``) until every member has
   rejoined and no KIP-394 pending member is outstanding, or the rebalance timeout
   (the largest of the members') passes. An Empty group first waits
   ``initial_rebalance_delay_ms``, again whenever a new member arrives, within the
   rebalance timeout.
3. ``_complete_join``: dynamic members that did not rejoin are removed, the generation
   grows by one, the protocol every member supports with most first-choice votes is
   chosen, and every waiting JoinGroup is answered; the leader's answer lists the
   members with their metadata. The group is CompletingRebalance (or Empty, if no one is
   left).
4. ``sync``: the leader's SyncGroup stores the assignments, answers every waiting
   SyncGroup with its member's share and makes the group Stable. Members that do not
   send SyncGroup within the rebalance timeout are removed (``expire``), which starts
   a new rebalance.

Deadlines are milliseconds of ``clock.monotonic_ms()``; whenever one is set, the
``schedule`` callback hears of it, and ``expire(now)`` acts on those that are due.
Members waiting in JoinGroup or SyncGroup do not expire (Kafka's rule) except new
members, who get five minutes to finish their first join. A client that disconnects
mid-join leaves a cancelled future behind: it still counts as rejoined, and the session
deadline it gets when the join phase ends removes it. Not thread-safe: everything runs
on the broker's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence

from streamlog.broker.group_metadata import (
    Group,
    GroupState,
    JoinResult,
    LeaveResult,
    Member,
    SyncResult,
)
from streamlog.log.clock import Clock
from streamlog.protocol import ErrorCode

__all__ = ["GroupMembership", "NEW_MEMBER_JOIN_TIMEOUT_MS"]

log = logging.getLogger(__name__)

NEW_MEMBER_JOIN_TIMEOUT_MS = 300_000
"""How long a new member's first JoinGroup may wait (Kafka's NewMemberJoinTimeoutMs)."""

_EMPTY, _PREPARING, _COMPLETING, _STABLE = (
    GroupState.EMPTY,
    GroupState.PREPARING_REBALANCE,
    GroupState.COMPLETING_REBALANCE,
    GroupState.STABLE,
)


class GroupMembership:
    """Every group's members and generation, moved through the rebalance protocol.

    ``join`` and ``sync`` return a result, or a future of one when the request must wait
    for the rest of the group. ``groups`` maps group ids to the groups known since start.
    """

    def __init__(
        self,
        clock: Clock,
        schedule: Callable[[int], None],
        *,
        min_session_timeout_ms: int = 6_000,
        max_session_timeout_ms: int = 1_800_000,
        initial_rebalance_delay_ms: int = 0,
    ) -> None:
        self._clock = clock
        self._schedule = schedule
        self._min_session_ms = min_session_timeout_ms
        self._max_session_ms = max_session_timeout_ms
        self._initial_delay_ms = max(initial_rebalance_delay_ms, 0)
        self.groups: dict[str, Group] = {}

    def abort_waiting(self, error: ErrorCode) -> None:
        """Answer every waiting JoinGroup and SyncGroup with ``error`` (at shutdown)."""
        for group in self.groups.values():
            for member in group.members.values():
                member.complete_join(JoinResult(error, member.member_id))
                member.complete_sync(SyncResult(error))

    def expire(self, now: int) -> None:
        """Act on every deadline due at ``now``."""
        for group in list(self.groups.values()):
            try:
                self._expire_group(group, now)
            except Exception:  # one broken group must not stop the timers of the others
                log.exception("group %s: timer failed", group.group_id)

    def join(
        self,
        group_id: str,
        member_id: str,
        *,
        protocol_type: str,
        protocols: tuple[tuple[str, bytes], ...],
        session_ms: int,
        rebalance_ms: int,
        instance_id: str | None,
        client_id: str,
        client_host: str,
        require_known_member_id: bool,
    ) -> JoinResult | asyncio.Future[JoinResult]:
        if not group_id:
            return JoinResult(ErrorCode.INVALID_GROUP_ID, member_id)
        if not self._min_session_ms <= session_ms <= self._max_session_ms:
            return JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, member_id)
        now = self._clock.monotonic_ms()
        names = [name for name, _ in protocols]
        group = self.groups.get(group_id)

        def new_member(new_id: str) -> Member:
            return Member(
                member_id=new_id,
                group_instance_id=instance_id,
                client_id=client_id,
                client_host=client_host,
                session_timeout_ms=session_ms,
                rebalance_timeout_ms=rebalance_ms,
                protocol_type=protocol_type,
                protocols=protocols,
            )

        if not member_id:
            if group is None:
                # checked before creating, so that a bad join leaves no group behind
                if not protocol_type or not protocols:
                    return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, "")
                group = self.groups[group_id] = Group(group_id)
            if not group.supports_protocols(protocol_type, names):
                return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, "")
            new_id = f"{instance_id if instance_id is not None else client_id}-{uuid.uuid4()}"
            if instance_id is not None and instance_id in group.static_members:
                return self._rejoin_static(group, new_member(new_id), instance_id, now)
            if instance_id is None and require_known_member_id:
                group.pending_members[new_id] = now + session_ms
                self._schedule(now + session_ms)
                return JoinResult(ErrorCode.MEMBER_ID_REQUIRED, new_id)
            return self._add_member(group, new_member(new_id), now)

        if group is None:
            return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id)
        if not group.supports_protocols(protocol_type, names):
            return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id)
        if group.is_static_member_fenced(instance_id, member_id):
            return JoinResult(ErrorCode.FENCED_INSTANCE_ID, member_id)
        if member_id in group.pending_members:
            return self._add_member(group, new_member(member_id), now)
        member = group.members.get(member_id)
        if member is None or (instance_id is not None and instance_id not in group.static_members):
            return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id)

        if group.state is _COMPLETING and member.matches(protocols):
            # it did not get its JoinGroup response; answer again for this generation
            return group.join_result(member)
        if group.state is _STABLE and member_id != group.leader_id and member.matches(protocols):
            # a follower with nothing new: let it SyncGroup the current generation. The
            # leader's rejoin always rebalances, so it can react to topic changes.
            return group.join_result(member)
        if group.state in (_PREPARING, _COMPLETING, _STABLE):
            member.protocols = protocols
            member.session_timeout_ms = session_ms
            member.rebalance_timeout_ms = rebalance_ms
            return self._await_join(group, member, now)
        return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id)

    def _add_member(self, group: Group, member: Member, now: int) -> asyncio.Future[JoinResult]:
        member.is_new = True
        member.deadline_ms = now + NEW_MEMBER_JOIN_TIMEOUT_MS
        if group.state is _PREPARING and group.initial_delay_remaining_ms is not None:
            group.new_member_added = True
        group.add(member)
        log.info("group %s: member %s joins", group.group_id, member.member_id)
        return self._await_join(group, member, now)

    def _rejoin_static(
        self, group: Group, incoming: Member, instance_id: str, now: int
    ) -> JoinResult | asyncio.Future[JoinResult]:
        """A known static member (``incoming``, of group instance id ``instance_id``)
        rejoins without its member id (KIP-345): it replaces its old incarnation, keeping
        its assignment, and a Stable group does not rebalance unless the chosen protocol
        would change."""
        old_leader = group.leader_id
        member = group.members[group.static_members[instance_id]]
        old_id = member.member_id
        member.complete_join(JoinResult(ErrorCode.FENCED_INSTANCE_ID, old_id))
        member.complete_sync(SyncResult(ErrorCode.FENCED_INSTANCE_ID))
        group.replace_static_member(instance_id, incoming.member_id)
        member.client_id = incoming.client_id
        member.client_host = incoming.client_host
        member.protocols = incoming.protocols
        member.session_timeout_ms = incoming.session_timeout_ms
        member.rebalance_timeout_ms = incoming.rebalance_timeout_ms
        member.deadline_ms = now + member.session_timeout_ms
        log.info("group %s: static member %s replaces %s", group.group_id, member.member_id, old_id)
        if group.state is _STABLE and group.select_protocol() == group.protocol_name:
            # The old leader id is returned on purpose: the new incarnation must not think
            # it leads, because a Stable group would not broadcast its new assignment.
            return JoinResult(
                error=ErrorCode.NONE,
                member_id=member.member_id,
                generation_id=group.generation_id,
                protocol_type=group.protocol_type,
                protocol_name=group.protocol_name,
                leader_id=old_leader or "",
            )
        return self._await_join(group, member, now)

    def _await_join(self, group: Group, member: Member, now: int) -> asyncio.Future[JoinResult]:
        """Register ``member``'s JoinGroup as waiting for this join phase and start it."""
        member.complete_join(JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member.member_id))
        future: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()
        member.join_future = future
        if group.state in (_EMPTY, _COMPLETING, _STABLE):
            self._prepare_rebalance(group, now)
        self._maybe_complete_join(group, now)
        return future

    def _prepare_rebalance(self, group: Group, now: int) -> None:
        if group.state is _COMPLETING:
            for member in group.members.values():
                member.assignment = b""
                if member.sync_future is not None:
                    # it did not expire while it waited: its session starts again now
                    member.deadline_ms = now + member.session_timeout_ms
                member.complete_sync(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        group.pending_sync.clear()
        group.sync_deadline_ms = None
        if group.state is _EMPTY and self._initial_delay_ms > 0:
            delay = self._initial_delay_ms
            group.initial_delay_remaining_ms = max(group.rebalance_timeout_ms() - delay, 0)
            group.new_member_added = False
        else:
            delay = group.rebalance_timeout_ms()
            group.initial_delay_remaining_ms = None
        log.info(
            "group %s: preparing to rebalance (generation %d, %d members)",
            group.group_id,
            group.generation_id,
            len(group.members),
        )
        group.state = _PREPARING
        group.join_deadline_ms = now + delay
        self._schedule(group.join_deadline_ms)

    def _maybe_complete_join(self, group: Group, now: int) -> None:
        if (
            group.state is _PREPARING
            and group.initial_delay_remaining_ms is None
            and group.has_all_members_joined()
        ):
            self._complete_join(group, now)

    def _complete_join(self, group: Group, now: int) -> None:
        group.join_deadline_ms = None
        group.initial_delay_remaining_ms = None
        group.new_member_added = False
        for member in list(group.members.values()):
            # static members that did not rejoin keep their place (KIP-345)
            if member.join_future is None and member.group_instance_id is None:
                log.info("group %s: member %s did not rejoin", group.group_id, member.member_id)
                self._remove_member(group, member)
        group.generation_id += 1
        if not group.members:
            group.protocol_name = None
            group.state = _EMPTY
            log.info("group %s: empty at generation %d", group.group_id, group.generation_id)
            return
        # join_group admits only members sharing a protocol, so there is always a choice
        group.protocol_name = group.select_protocol()
        group.state = _COMPLETING
        for member in group.members.values():
            member.complete_join(group.join_result(member))
            member.is_new = False
            member.deadline_ms = now + member.session_timeout_ms
            group.pending_sync.add(member.member_id)
        group.sync_deadline_ms = now + group.rebalance_timeout_ms()
        self._schedule(group.sync_deadline_ms)
        log.info(
            "group %s: generation %d with %d members, protocol %s, leader %s",
            group.group_id,
            group.generation_id,
            len(group.members),
            group.protocol_name,
            group.leader_id,
        )

    def sync(
        self,
        group_id: str,
        member_id: str,
        generation_id: int,
        assignments: Mapping[str, bytes],
        instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
    ) -> SyncResult | asyncio.Future[SyncResult]:
        if not group_id:
            return SyncResult(ErrorCode.INVALID_GROUP_ID)
        group = self.groups.get(group_id)
        if group is None:
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)
        if group.is_static_member_fenced(instance_id, member_id):
            return SyncResult(ErrorCode.FENCED_INSTANCE_ID)
        member = group.members.get(member_id)
        if member is None:
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)
        if generation_id != group.generation_id:
            return SyncResult(ErrorCode.ILLEGAL_GENERATION)
        if (protocol_type is not None and protocol_type != group.protocol_type) or (
            protocol_name is not None and protocol_name != group.protocol_name
        ):
            return SyncResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        now = self._clock.monotonic_ms()
        if group.state is _PREPARING:
            return SyncResult(ErrorCode.REBALANCE_IN_PROGRESS)
        if group.state is _STABLE:
            group.pending_sync.discard(member_id)
            member.deadline_ms = now + member.session_timeout_ms
            return SyncResult(
                ErrorCode.NONE, member.assignment, group.protocol_type, group.protocol_name
            )
        if group.state is not _COMPLETING:
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)

        group.pending_sync.discard(member_id)
        member.complete_sync(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        future: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()
        member.sync_future = future
        if member_id == group.leader_id:
            for each in group.members.values():
                each.assignment = bytes(assignments.get(each.member_id, b""))
            group.state = _STABLE
            log.info("group %s: generation %d is stable", group.group_id, group.generation_id)
            for each in group.members.values():
                if each.sync_future is not None:
                    # its session starts again now, not when the join phase ended
                    each.deadline_ms = now + each.session_timeout_ms
                each.complete_sync(
                    SyncResult(
                        ErrorCode.NONE, each.assignment, group.protocol_type, group.protocol_name
                    )
                )
        return future

    # -- Heartbeat and LeaveGroup --------------------------------------------------------

    def heartbeat(
        self,
        group_id: str,
        member_id: str,
        generation_id: int,
        group_instance_id: str | None = None,
    ) -> ErrorCode:
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if group.is_static_member_fenced(group_instance_id, member_id):
            return ErrorCode.FENCED_INSTANCE_ID
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        if group.state not in (_PREPARING, _COMPLETING, _STABLE):
            return ErrorCode.UNKNOWN_MEMBER_ID
        member.deadline_ms = self._clock.monotonic_ms() + member.session_timeout_ms
        if group.state is _PREPARING:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def leave(self, group_id: str, members: Sequence[tuple[str, str | None]]) -> LeaveResult:
        """Remove ``members``, each ``(member_id, group_instance_id)``; a static member
        may be named by its instance id alone (member id "")."""
        if not group_id:
            return LeaveResult(ErrorCode.INVALID_GROUP_ID)
        group = self.groups.get(group_id)
        if group is None:
            return LeaveResult(ErrorCode.NONE, (ErrorCode.UNKNOWN_MEMBER_ID,) * len(members))
        now = self._clock.monotonic_ms()
        errors = []
        for member_id, instance_id in members:
            errors.append(self._leave_one(group, member_id, instance_id, now))
        return LeaveResult(ErrorCode.NONE, tuple(errors))

    def _leave_one(
        self, group: Group, member_id: str, instance_id: str | None, now: int
    ) -> ErrorCode:
        if not member_id:
            known = group.static_members.get(instance_id) if instance_id is not None else None
            if known is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            member_id = known
        elif group.is_static_member_fenced(instance_id, member_id):
            return ErrorCode.FENCED_INSTANCE_ID
        if group.pending_members.pop(member_id, None) is not None:
            self._maybe_complete_join(group, now)
            return ErrorCode.NONE
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        log.info("group %s: member %s leaves", group.group_id, member_id)
        self._remove_member_and_rebalance(group, member, now)
        return ErrorCode.NONE

    def _remove_member(self, group: Group, member: Member) -> None:
        # an abandoned request of the member may still be waiting: tell it to start over
        member.complete_join(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member.member_id))
        member.complete_sync(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        group.remove(member.member_id)

    def _remove_member_and_rebalance(self, group: Group, member: Member, now: int) -> None:
        self._remove_member(group, member)
        if group.state in (_COMPLETING, _STABLE):
            self._prepare_rebalance(group, now)
        self._maybe_complete_join(group, now)

    def validate_commit(
        self, group_id: str, member_id: str, generation_id: int, instance_id: str | None
    ) -> ErrorCode:
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.NONE if generation_id < 0 else ErrorCode.ILLEGAL_GENERATION
        if generation_id < 0 and not member_id and instance_id is None:
            # only members commit to an active group
            return ErrorCode.UNKNOWN_MEMBER_ID if group.members else ErrorCode.NONE
        if group.is_static_member_fenced(instance_id, member_id):
            return ErrorCode.FENCED_INSTANCE_ID
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        if group.state is _COMPLETING:
            # it has this generation but not its assignment yet
            return ErrorCode.REBALANCE_IN_PROGRESS
        member.deadline_ms = self._clock.monotonic_ms() + member.session_timeout_ms
        return ErrorCode.NONE

    def _expire_group(self, group: Group, now: int) -> None:
        for pending_id, deadline in list(group.pending_members.items()):
            if deadline <= now:
                log.info("group %s: pending member %s expired", group.group_id, pending_id)
                del group.pending_members[pending_id]
        for member in list(group.members.values()):
            if group.members.get(member.member_id) is member and self._session_expired(member, now):
                log.info("group %s: member %s session expired", group.group_id, member.member_id)
                self._remove_member_and_rebalance(group, member, now)
        if group.state is _PREPARING:
            if group.join_deadline_ms is not None and group.join_deadline_ms <= now:
                remaining = group.initial_delay_remaining_ms
                if remaining and group.new_member_added:
                    delay = min(self._initial_delay_ms, remaining)
                    group.initial_delay_remaining_ms = remaining - delay
                    group.new_member_added = False
                    group.join_deadline_ms = now + delay
                    self._schedule(group.join_deadline_ms)
                else:
                    self._complete_join(group, now)
            else:
                self._maybe_complete_join(group, now)
        if (
            group.state in (_COMPLETING, _STABLE)
            and group.sync_deadline_ms is not None
            and group.sync_deadline_ms <= now
        ):
            group.sync_deadline_ms = None
            laggards = [group.members[m] for m in group.pending_sync if m in group.members]
            if laggards:
                for member in laggards:
                    log.info(
                        "group %s: member %s sent no SyncGroup", group.group_id, member.member_id
                    )
                    self._remove_member(group, member)
                self._prepare_rebalance(group, now)
                self._maybe_complete_join(group, now)

    @staticmethod
    def _session_expired(member: Member, now: int) -> bool:
        if member.sync_future is not None or (member.join_future is not None and not member.is_new):
            return False
        return member.deadline_ms <= now

    def next_deadline(self) -> int | None:
        deadlines: list[int] = []
        for group in self.groups.values():
            deadlines.extend(group.pending_members.values())
            deadlines.extend(
                m.deadline_ms
                for m in group.members.values()
                if m.sync_future is None and (m.join_future is None or m.is_new)
            )
            if group.state is _PREPARING and group.join_deadline_ms is not None:
                deadlines.append(group.join_deadline_ms)
            if group.state in (_COMPLETING, _STABLE) and group.sync_deadline_ms is not None:
                deadlines.append(group.sync_deadline_ms)
        return min(deadlines, default=None)
