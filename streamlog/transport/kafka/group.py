"""Consumer-group membership (Kafka's classic "eager" protocol), in one background task.

The member's life, as numbered steps:

1. Find the coordinator (FindCoordinator) and join (JoinGroup) offering the "range" and
   "roundrobin" assignors with our subscription. A broker that wants member ids assigned
   first answers MEMBER_ID_REQUIRED with one: join again with it at once.
2. The coordinator answers when every member has (re)joined. The leader it names gets
   all members' subscriptions, refreshes the topics' partition counts and computes the
   assignment with the agreed assignor; everyone then sends SyncGroup (the leader with
   the assignments) and gets its own partitions back. Members that advertise user data
   (``user_data``) get, in their assignment, the peer list: every such member's user
   data and partitions (``assignors.py``), kept as ``peers``.
3. ``on_assigned`` runs with the new partitions; then a heartbeat goes out every
   ``heartbeat_interval_ms``.
4. A heartbeat (or commit) answered REBALANCE_IN_PROGRESS means: run ``on_revoked`` with
   every partition held, give them up, and go back to 1. ILLEGAL_GENERATION or
   UNKNOWN_MEMBER_ID (the last also forgets the member id), or no heartbeat answered for
   a whole session timeout, mean the group has dropped this member: its partitions may be
   another member's already, so ``on_lost`` runs instead (Kafka's ``onPartitionsLost``:
   nothing more is committed for them). The leader also rejoins when the partition count
   of a subscribed topic changes.
5. On close: ``on_revoked`` for what is held, then LeaveGroup, so the others rebalance
   at once instead of waiting for our session to time out.

Callbacks are awaited inside the task, so a rebalance waits for the application's revoke
handler (its last commits) before the partitions are given up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from streamlog.protocol import ApiKey, ErrorCode
from streamlog.transport.errors import (
    BrokerUnavailableError,
    GroupError,
    TransportClosedError,
    TransportError,
)
from streamlog.transport.kafka.assignors import (
    ASSIGNORS,
    CooperativeStickyAssignor,
    MalformedMemberDataError,
    claims_of,
    decode_assignment_user_data,
    decode_peers,
    decode_subscription,
    encode_assignment,
    encode_peers,
    encode_subscription,
)
from streamlog.transport.kafka.cluster import Cluster
from streamlog.transport.kafka.errors import COORDINATOR_ERRORS, REJOIN_ERRORS, error_for
from streamlog.transport.kafka.offsets import GroupCoordinator
from streamlog.transport.kafka.util import log
from streamlog.transport.sticky import standby_assign
from streamlog.transport.types import GroupPeer, TopicPartition

__all__ = ["GroupMember"]

PartitionsCallback = Callable[[set[TopicPartition]], Awaitable[None]]

_BACKOFF = 0.1
_LEAVE_TIMEOUT = 5.0
_METADATA_CHECK_INTERVAL = 3.0  # how often the leader checks partition counts


class GroupMember:
    """This consumer's membership in ``group_id``; see the module docstring.

    Invariant: ``assignment`` is what the last completed SyncGroup gave us and
    ``on_assigned`` has seen, or empty after ``on_revoked``.
    """

    def __init__(
        self,
        cluster: Cluster,
        coordinator: GroupCoordinator,
        topics: Iterable[str],
        *,
        on_revoked: PartitionsCallback,
        on_assigned: PartitionsCallback,
        on_lost: PartitionsCallback | None = None,
        session_timeout_ms: int = 10_000,
        rebalance_timeout_ms: int = 60_000,
        heartbeat_interval_ms: int = 1_000,
        assignors: Iterable[str] = ("range", "roundrobin"),
        user_data: bytes | None = None,
        standby_replicas: int = 0,
    ) -> None:
        self.cluster = cluster
        self.coordinator = coordinator
        self.group_id = coordinator.group_id
        self.topics = sorted(set(topics))
        self.user_data = user_data  # advertised in the subscription
        self.peers: tuple[GroupPeer, ...] = ()  # the leader's peer list, last sync
        # as leader: standby replicas per task, shared in the peer list (sticky.py)
        self.standby_replicas = standby_replicas
        self.member_id = ""
        self.generation = -1
        self.protocol: str | None = None
        self.leader = False
        self.assignment: set[TopicPartition] = set()
        self.rebalancing = False  # a rebalance (join, sync and callbacks) is under way
        self.joining = False  # a JoinGroup or SyncGroup request is in flight
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned
        self._on_lost = on_lost or on_revoked
        self._lost = False  # the group dropped us; told as "lost" at the next rebalance
        self._last_heartbeat = 0.0  # loop time of the last answered heartbeat or join
        self._session_timeout_ms = session_timeout_ms
        self._rebalance_timeout_ms = rebalance_timeout_ms
        self._heartbeat_interval = heartbeat_interval_ms / 1000
        self._assignors = [ASSIGNORS[name] for name in assignors]
        self._assigned_counts: dict[str, int] = {}
        self._rejoin = asyncio.Event()
        self._rejoin.set()
        self._task: asyncio.Task[None] | None = None
        self._first_join: asyncio.Future[None] | None = None
        self._closing = False

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Join and wait for the first assignment (raises what made the first join fail)."""
        loop = asyncio.get_running_loop()
        self._first_join = loop.create_future()
        self._task = asyncio.ensure_future(self._run())
        self._task.set_name(f"streamlog-group-{self.group_id}")
        await asyncio.shield(self._first_join)

    def request_rejoin(self) -> None:
        self._rejoin.set()

    def membership_lost(self, why: str, *, known: bool = False) -> None:
        """The group dropped this member or its generation (``why``): rejoin, telling
        ``on_lost``. ``known``: the coordinator still knows the member id (only the
        generation is stale), so it is kept and no ghost member delays the rebalance."""
        if self.assignment and not self._lost:
            log.warning("group %r: membership lost (%s); rejoining", self.group_id, why)
        self._lost = True
        if not known:
            self.member_id = ""
        self.generation = -1
        self._rejoin.set()

    @property
    def lost(self) -> bool:
        """Whether the partitions held may already be another member's: the group said
        so, or no heartbeat was answered for a session timeout (the coordinator drops a
        member then, whether or not we have heard of it yet)."""
        if self._lost:
            return True
        if not self.assignment:
            return False
        silent = asyncio.get_running_loop().time() - self._last_heartbeat
        return silent > self._session_timeout_ms / 1000

    async def close(self) -> None:
        """Revoke, leave the group and stop heartbeating."""
        if self._closing:
            return
        self._closing = True
        task = self._task
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self.assignment:
            revoked, self.assignment = self.assignment, set()
            await self._call(self._on_revoked, revoked)
        if self.member_id:
            try:
                await self._leave()
            except (TransportError, TimeoutError) as e:
                log.debug("LeaveGroup for %r failed: %s", self.group_id, e)
        self.member_id = ""
        self.generation = -1
        self.peers = ()

    async def _leave(self) -> None:
        conn = await asyncio.wait_for(self.coordinator.connection(), _LEAVE_TIMEOUT)
        await conn.request(
            conn.build(
                ApiKey.LEAVE_GROUP,
                group_id=self.group_id,
                member_id=self.member_id,
                members=[{"member_id": self.member_id, "reason": "the consumer is closing"}],
            ),
            timeout=_LEAVE_TIMEOUT,
        )

    # ---------------------------------------------------------------- the task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_heartbeat = loop.time()
        last_metadata_check = loop.time()
        while not self._closing:
            if self._rejoin.is_set():
                try:
                    await self._rebalance()
                except (TransportError, MalformedMemberDataError) as e:
                    if self._report_first_join(e):
                        return
                    log.warning("group %r: rejoin failed: %s", self.group_id, e)
                    self._rejoin.set()
                    await asyncio.sleep(_BACKOFF * 5)
                    continue
                self._report_first_join(None)
                last_heartbeat = last_metadata_check = self._last_heartbeat = loop.time()
                continue
            try:
                await asyncio.wait_for(self._rejoin.wait(), self._heartbeat_interval)
                continue
            except TimeoutError:
                pass
            try:
                await self._heartbeat()
                last_heartbeat = self._last_heartbeat = loop.time()
                if self.leader and loop.time() - last_metadata_check > _METADATA_CHECK_INTERVAL:
                    last_metadata_check = loop.time()
                    await self._check_partition_counts()
            except (BrokerUnavailableError, GroupError) as e:
                log.debug("group %r: heartbeat failed: %s", self.group_id, e)
                if loop.time() - last_heartbeat > self._session_timeout_ms / 1000:
                    # The coordinator has surely dropped us by now.
                    self.membership_lost("no heartbeat answered for a session timeout")

    def _report_first_join(self, error: BaseException | None) -> bool:
        """Tell ``start`` how the first join went; True if the task should stop."""
        first = self._first_join
        if first is None or first.done():
            return False
        if error is None:
            first.set_result(None)
            return False
        first.set_exception(error)
        return True

    async def _heartbeat(self) -> None:
        response: Any = await self.coordinator.request(
            ApiKey.HEARTBEAT,
            group_id=self.group_id,
            generation_id=self.generation,
            member_id=self.member_id,
        )
        code = int(response.error_code)
        if code == ErrorCode.NONE:
            return
        self._handle_group_error(code)

    def _handle_group_error(self, code: int) -> None:
        if code in REJOIN_ERRORS:
            if code in (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION):
                self.membership_lost(
                    f"the coordinator answered {ErrorCode(code).name}",
                    known=code == ErrorCode.ILLEGAL_GENERATION,
                )
            else:
                self._rejoin.set()
            return
        if code in COORDINATOR_ERRORS:
            self.coordinator.invalidate()
        raise error_for(code, f"group {self.group_id!r}", default=GroupError)

    async def _check_partition_counts(self) -> None:
        answered = await self.cluster.refresh(self._assigned_counts)
        for topic, count in self._assigned_counts.items():
            meta = answered.get(topic)
            now = len(meta.partitions) if meta is not None and meta.error == 0 else 0
            if now != count:
                log.info(
                    "group %r: %s now has %d partitions, rebalancing", self.group_id, topic, now
                )
                self._rejoin.set()
                return

    # ---------------------------------------------------------------- rebalancing

    @property
    def cooperative(self) -> bool:
        """Whether the group's agreed protocol is incremental (KIP-429)."""
        assignor = ASSIGNORS.get(self.protocol or "")
        return bool(getattr(assignor, "cooperative", False))

    async def _rebalance(self) -> None:
        self.rebalancing = True
        try:
            await self._rebalance_round()
        finally:
            self.rebalancing = False

    async def _rebalance_round(self) -> None:
        # eager: give up everything before joining; cooperative: keep what is held (the
        # subscription says so) and give up only what the new assignment leaves out
        if self.assignment and (self.lost or not self.cooperative):
            lost = self.lost
            held, self.assignment = self.assignment, set()
            await self._call(self._on_lost if lost else self._on_revoked, held)
        self._lost = False
        while not self._closing:
            self._rejoin.clear()
            assigned = await self._join_and_sync()
            if assigned is None:
                await asyncio.sleep(_BACKOFF)
                continue
            revoked = self.assignment - assigned
            added = assigned - self.assignment
            if revoked:
                await self._call(self._on_revoked, revoked)
            self.assignment = assigned
            await self._call(self._on_assigned, added)
            if revoked:
                # what we gave up was withheld from its new owner: a new round gives it
                self._rejoin.set()
            return
        raise TransportClosedError("the consumer is closing")

    async def _call(self, callback: PartitionsCallback, partitions: set[TopicPartition]) -> None:
        """Run a rebalance callback; its failure is logged, the membership goes on."""
        try:
            await callback(partitions)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("group %r: rebalance callback failed", self.group_id)

    async def _join_and_sync(self) -> set[TopicPartition] | None:
        """One join + sync round; None when it must be tried again."""
        self.joining = True
        try:
            return await self._join_and_sync_requests()
        finally:
            self.joining = False

    async def _join_and_sync_requests(self) -> set[TopicPartition] | None:
        owned = (
            self.assignment
            if any(getattr(a, "cooperative", False) for a in self._assignors)
            else None
        )
        metadata = encode_subscription(self.topics, self.user_data, owned)
        conn = await self.coordinator.connection()
        join_timeout = self._rebalance_timeout_ms / 1000 + self.cluster.request_timeout
        try:
            response: Any = await conn.request(
                conn.build(
                    ApiKey.JOIN_GROUP,
                    group_id=self.group_id,
                    session_timeout=self._session_timeout_ms,
                    rebalance_timeout=self._rebalance_timeout_ms,
                    member_id=self.member_id,
                    group_instance_id=None,
                    protocol_type="consumer",
                    protocols=[{"name": a.name, "metadata": metadata} for a in self._assignors],
                    reason=None,
                ),
                timeout=join_timeout,
            )
        except BrokerUnavailableError:
            self.coordinator.invalidate()
            raise
        code = int(response.error_code)
        if code == ErrorCode.MEMBER_ID_REQUIRED:
            self.member_id = response.member_id
            self._rejoin.set()
            return None
        if code != ErrorCode.NONE:
            self._handle_rebalance_error(code)
            return None
        self.member_id = response.member_id
        self.generation = int(response.generation_id)
        self.protocol = response.protocol_name
        self.leader = response.leader == self.member_id
        assignments: list[dict[str, Any]] = []
        if self.leader:
            assignments = await self._assign(response.members)
        sync: Any = await self.coordinator.request(
            ApiKey.SYNC_GROUP,
            group_id=self.group_id,
            generation_id=self.generation,
            member_id=self.member_id,
            group_instance_id=None,
            protocol_type="consumer",
            protocol_name=self.protocol,
            assignments=assignments,
            timeout=join_timeout,
        )
        code = int(sync.error_code)
        if code != ErrorCode.NONE:
            self._handle_rebalance_error(code)
            return None
        assigned, shared = decode_assignment_user_data(sync.assignment)
        self.peers = self._read_peers(shared)
        log.debug(
            "group %r generation %d: %s got %s",
            self.group_id,
            self.generation,
            self.member_id,
            sorted(assigned),
        )
        return assigned

    def _read_peers(self, shared: bytes | None) -> tuple[GroupPeer, ...]:
        """The leader's peer list; a broken one is logged and read as none (it is
        advisory: the partitions themselves came through)."""
        try:
            peers = decode_peers(shared)
        except MalformedMemberDataError as e:
            log.warning("group %r: the leader's peer list is unreadable: %s", self.group_id, e)
            return ()
        return peers or ()

    def _handle_rebalance_error(self, code: int) -> None:
        """Errors of JoinGroup/SyncGroup: the retriable ones return, others raise."""
        if code in REJOIN_ERRORS or code in COORDINATOR_ERRORS:
            if code == ErrorCode.UNKNOWN_MEMBER_ID:
                self.member_id = ""
            if code in COORDINATOR_ERRORS:
                self.coordinator.invalidate()
            self._rejoin.set()
            return
        raise error_for(code, f"group {self.group_id!r}", default=GroupError)

    async def _assign(self, members: Any) -> list[dict[str, Any]]:
        protocol = self.protocol or "range"
        assignor = ASSIGNORS.get(protocol)
        if assignor is None:
            raise GroupError(f"group {self.group_id!r} agreed on unknown assignor {protocol!r}")
        subscriptions = {m.member_id: decode_subscription(m.metadata) for m in members}
        topics = sorted({t for sub in subscriptions.values() for t in sub.topics})
        answered = await self.cluster.refresh(topics) if topics else {}
        counts = {
            t: len(meta.partitions)
            for t, meta in answered.items()
            if meta.error == ErrorCode.NONE and meta.partitions
        }
        self._assigned_counts = {t: counts.get(t, 0) for t in topics}
        # the standbys of the last generation: where a departed member's tasks are warm
        warm = {peer.member_id: peer.standby for peer in self.peers}
        if isinstance(assignor, CooperativeStickyAssignor):
            result = assignor.assign(counts, subscriptions, warm)
        else:
            result = assignor.assign(counts, subscriptions)
        standby = standby_assign(
            counts, claims_of(subscriptions, warm), result, self.standby_replicas
        )
        log.debug("group %r: leader assigns %s, standbys %s", self.group_id, result, standby)
        peers = [
            GroupPeer(
                member,
                sub.user_data,
                frozenset(result.get(member, ())),
                frozenset(standby.get(member, ())),
            )
            for member, sub in subscriptions.items()
            if sub.user_data is not None
        ]
        shared = encode_peers(peers) if peers else None
        return [
            {"member_id": member, "assignment": encode_assignment(parts, shared)}
            for member, parts in result.items()
        ]
