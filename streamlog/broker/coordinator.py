"""The classic consumer-group coordinator: Kafka's ``GroupCoordinator`` for one broker.

Every group this broker hears of is coordinated here (one broker owns every
``__consumer_offsets`` partition). Membership and rebalances are ``GroupMembership``'s
(``group_membership.py``), in memory only: after a restart members get
UNKNOWN_MEMBER_ID and rejoin, as Kafka clients do after a coordinator move. Committed
offsets are durable in ``__consumer_offsets`` (``GroupOffsetStore``).

This class adds what needs the event loop or the log: JoinGroup and SyncGroup calls that
wait, the timer that expires sessions and ends join phases, offset commits (written
off the loop) and fetches, and the group listings. The timers are one ``call_later``
handle on the loop, armed for the earliest deadline by ``start()`` or by the first request
that sets one; ``stop()`` disarms it. Tests with a manual clock call ``run_timers()``
after moving the clock. Not thread-safe: everything runs on the broker's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from streamlog.broker.config import BrokerConfig
from streamlog.broker.group_membership import GroupMembership
from streamlog.broker.group_metadata import (
    GroupDescription,
    GroupOverview,
    GroupState,
    JoinResult,
    LeaveResult,
    SyncResult,
)
from streamlog.broker.local_groups import LocalGroups
from streamlog.log.clock import Clock, SystemClock
from streamlog.log.errors import InvalidRecordError
from streamlog.log.group_offsets import GroupOffsetStore, OffsetAndMetadata
from streamlog.protocol import ErrorCode

if TYPE_CHECKING:
    from streamlog.broker.context import BrokerContext

__all__ = ["GroupCoordinator", "OFFSET_ONLY_PROTOCOL_TYPE"]

log = logging.getLogger(__name__)

OFFSET_ONLY_PROTOCOL_TYPE = "consumer"
"""Protocol type reported for groups known only by their committed offsets."""

_STOP_WRITES_TIMEOUT_S = 30.0  # how long a stopping broker waits for commits to land
_MAX_TIMER_SLEEP_MS = 1_000  # while deadlines are pending, look at least this often


class GroupCoordinator:
    """Classic-protocol group membership and offset commits; see the module docstring."""

    def __init__(
        self,
        ctx: BrokerContext | None = None,
        *,
        clock: Clock | None = None,
        offsets: GroupOffsetStore | None = None,
        config: BrokerConfig | None = None,
        local_groups: LocalGroups | None = None,
    ) -> None:
        """``GroupCoordinator(ctx)`` takes the clock, the offset store (``ctx.log``) and the
        ``group_*`` settings from the broker; without a context (unit tests) they are given
        one by one, a missing config meaning the defaults and missing offsets meaning
        COORDINATOR_NOT_AVAILABLE for offset requests. ``local_groups``: groups the
        process sharing this broker's log coordinates itself (``local_groups.py``)."""
        self._ctx = ctx
        self._local = local_groups
        self._clock: Clock = clock or (ctx.clock if ctx is not None else SystemClock())
        self._given_offsets = offsets
        config = config or (ctx.config if ctx is not None else BrokerConfig())
        self._membership = GroupMembership(
            self._clock,
            self._schedule,
            min_session_timeout_ms=config.group_min_session_timeout_ms,
            max_session_timeout_ms=config.group_max_session_timeout_ms,
            initial_rebalance_delay_ms=config.group_initial_rebalance_delay_ms,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due_ms = 0
        self._stopped = False
        self._writing: set[asyncio.Future[None]] = set()  # offset commits in their thread

    @property
    def _offsets(self) -> GroupOffsetStore | None:
        # read through the context: the log manager creates its store when it starts
        if self._given_offsets is None and self._ctx is not None:
            return self._ctx.log.group_offsets
        return self._given_offsets

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Arm the timers on the running loop (optional: the first deadline does it too)."""
        self._stopped = False
        self._loop = asyncio.get_running_loop()
        self._arm(self._membership.next_deadline())

    async def stop(self) -> None:
        """Disarm the timers; waiting JoinGroup and SyncGroup calls get NOT_COORDINATOR."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._membership.abort_waiting(ErrorCode.NOT_COORDINATOR)
        if self._writing:  # offset commits still appending: let them finish first
            await asyncio.wait(list(self._writing), timeout=_STOP_WRITES_TIMEOUT_S)

    # -- membership ----------------------------------------------------------------------

    async def join_group(
        self,
        group_id: str,
        member_id: str,
        *,
        protocol_type: str,
        protocols: Sequence[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int = -1,
        group_instance_id: str | None = None,
        client_id: str = "",
        client_host: str = "",
        require_known_member_id: bool = False,
    ) -> JoinResult:
        """Join (or rejoin) ``group_id``; returns when the join phase is over.

        ``require_known_member_id`` is KIP-394's rule (JoinGroup v4+ without an instance
        id): a member without an id gets MEMBER_ID_REQUIRED and an id to rejoin with.
        A negative ``rebalance_timeout_ms`` means the session timeout (JoinGroup v0).
        A group with live in-process members (``local_groups``) answers
        INCONSISTENT_GROUP_PROTOCOL, as Kafka answers a member its group cannot take.
        """
        if self._local is not None and self._local.describe(group_id) is not None:
            log.warning(
                "group %s: refused a member from %s: the group's members run in this "
                "process (a worker on its own log); use another group id",
                group_id,
                client_host or "?",
            )
            return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id)
        outcome = self._membership.join(
            group_id,
            member_id,
            protocol_type=protocol_type,
            protocols=tuple((str(name), bytes(data)) for name, data in protocols),
            session_ms=session_timeout_ms,
            rebalance_ms=rebalance_timeout_ms if rebalance_timeout_ms >= 0 else session_timeout_ms,
            instance_id=group_instance_id,
            client_id=client_id,
            client_host=client_host,
            require_known_member_id=require_known_member_id,
        )
        if isinstance(outcome, JoinResult):
            return outcome
        return await outcome

    async def sync_group(
        self,
        group_id: str,
        member_id: str,
        generation_id: int,
        assignments: Mapping[str, bytes],
        *,
        group_instance_id: str | None = None,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
    ) -> SyncResult:
        """Deliver the leader's assignments; a follower's call waits for the leader's."""
        outcome = self._membership.sync(
            group_id,
            member_id,
            generation_id,
            assignments,
            group_instance_id,
            protocol_type,
            protocol_name,
        )
        if isinstance(outcome, SyncResult):
            return outcome
        return await outcome

    def heartbeat(
        self,
        group_id: str,
        member_id: str,
        generation_id: int,
        group_instance_id: str | None = None,
    ) -> ErrorCode:
        """Keep a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin."""
        return self._membership.heartbeat(group_id, member_id, generation_id, group_instance_id)

    def leave_group(self, group_id: str, members: Sequence[tuple[str, str | None]]) -> LeaveResult:
        """Remove ``members``, each ``(member_id, group_instance_id)``; a static member
        may be named by its instance id alone (member id "")."""
        return self._membership.leave(group_id, members)

    # -- offsets -------------------------------------------------------------------------

    async def commit_offsets(
        self,
        group_id: str,
        member_id: str,
        generation_id: int,
        offsets: Mapping[tuple[str, int], OffsetAndMetadata],
        *,
        group_instance_id: str | None = None,
    ) -> ErrorCode:
        """Store ``offsets`` if the committer may; the error applies to every partition.

        Generation -1 with no member id is a consumer that only stores offsets here: it
        may commit while the group has no members. A group with live in-process members
        (``local_groups``) has none here, so every commit to it gets UNKNOWN_MEMBER_ID,
        Kafka's answer to a non-member committing to an active group.
        """
        if self._local is not None and self._local.describe(group_id) is not None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        error = self._membership.validate_commit(
            group_id, member_id, generation_id, group_instance_id
        )
        if error is not ErrorCode.NONE or not offsets:
            return error
        if self._offsets is None:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        # an append and an fsync: off the event loop. Kept until done, so ``stop`` waits
        # for it before the broker closes the log under it (a thread cannot be cancelled:
        # a cancelled request would otherwise leave it appending to a closing log)
        writing = asyncio.get_running_loop().run_in_executor(
            None, self._offsets.commit, group_id, dict(offsets)
        )
        self._writing.add(writing)
        writing.add_done_callback(self._writing.discard)
        try:
            await asyncio.shield(writing)
        except InvalidRecordError:
            return ErrorCode.INVALID_COMMIT_OFFSET_SIZE
        except Exception:
            log.exception("group %s: offset commit failed", group_id)
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        return ErrorCode.NONE

    def validate_txn_offset_commit(
        self, group_id: str, member_id: str, generation_id: int, instance_id: str | None
    ) -> ErrorCode:
        """May a transactional producer commit offsets for ``group_id`` on behalf of this
        member (TxnOffsetCommit v3+, KIP-447)? A request without member information
        (generation -1, no member id: v0-2, or a producer not tied to a consumer) is not
        checked, as in Kafka; otherwise as an OffsetCommit (a zombie gets
        ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID)."""
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        if generation_id < 0 and not member_id and instance_id is None:
            return ErrorCode.NONE
        if self._local is not None and self._local.describe(group_id) is not None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return self._membership.validate_commit(group_id, member_id, generation_id, instance_id)

    def fetch_offsets(
        self, group_id: str, partitions: Iterable[tuple[str, int]] | None = None
    ) -> tuple[ErrorCode, dict[tuple[str, int], OffsetAndMetadata]]:
        """Committed offsets of ``group_id`` (all of them when ``partitions`` is None)."""
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID, {}
        if self._offsets is None:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, {}
        return ErrorCode.NONE, self._offsets.fetch(group_id, partitions)

    # -- ListGroups and DescribeGroups ---------------------------------------------------

    def list_groups(self, states: Collection[str] | None = None) -> list[GroupOverview]:
        """Every live group, plus groups known only by committed offsets (as Empty).

        ``states`` filters by state name, case-insensitively (ListGroups v4).
        """
        with_offsets = set(self._offsets.groups()) if self._offsets is not None else set()
        found: dict[str, GroupOverview] = {}
        local = self._local.overviews() if self._local is not None else []
        for group in self._membership.groups.values():
            if group.state is GroupState.DEAD:
                continue
            overview = group.overview()
            if not overview.protocol_type and group.group_id in with_offsets:
                overview = GroupOverview(
                    overview.group_id, OFFSET_ONLY_PROTOCOL_TYPE, overview.state
                )
            found[group.group_id] = overview
        for group_id in with_offsets - found.keys():
            found[group_id] = GroupOverview(group_id, OFFSET_ONLY_PROTOCOL_TYPE, GroupState.EMPTY)
        for overview in local:  # live in-process members: what the group is now
            found[overview.group_id] = overview
        wanted = None if not states else {s.lower() for s in states}
        return [
            found[g]
            for g in sorted(found)
            if wanted is None or found[g].state.value.lower() in wanted
        ]

    def describe_group(self, group_id: str) -> GroupDescription:
        """The group's state and members; an unknown group is Dead, as Kafka reports it.

        A group with live in-process members (``local_groups``) is described as they are.
        """
        if self._local is not None:
            described = self._local.describe(group_id)
            if described is not None:
                return described
        group = self._membership.groups.get(group_id)
        if group is not None and group.state is not GroupState.DEAD:
            return group.describe()
        if self._offsets is not None and group_id and self._offsets.fetch(group_id):
            return GroupDescription(group_id, GroupState.EMPTY, OFFSET_ONLY_PROTOCOL_TYPE, "")
        return GroupDescription(group_id, GroupState.DEAD, "", "")

    # -- timers --------------------------------------------------------------------------

    def run_timers(self) -> int | None:
        """Act on every deadline due at the clock's time; returns the next one, if any."""
        self._membership.expire(self._clock.monotonic_ms())
        return self._membership.next_deadline()

    def _schedule(self, deadline_ms: int) -> None:
        """Make sure the timer fires by ``deadline_ms``."""
        if self._stopped:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: the caller drives run_timers itself
            return
        if loop is not self._loop:
            self._loop, self._timer = loop, None
        if self._timer is None or deadline_ms < self._timer_due_ms:
            self._arm(deadline_ms)

    def _arm(self, deadline_ms: int | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline_ms is None or self._loop is None:
            return
        now = self._clock.monotonic_ms()
        delay_ms = min(max(deadline_ms - now, 0), _MAX_TIMER_SLEEP_MS)
        self._timer_due_ms = now + delay_ms
        self._timer = self._loop.call_later(delay_ms / 1000, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            next_ms = self.run_timers()
        except Exception:
            log.exception("group coordinator timers failed")
            next_ms = self._clock.monotonic_ms() + _MAX_TIMER_SLEEP_MS
        if not self._stopped:
            self._arm(next_ms)
