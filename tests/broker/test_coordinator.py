"""The classic group coordinator, driven directly: rebalances, errors, expiry, offsets.

Most tests use a ``ManualClock`` and call ``run_timers()`` after moving it; one uses the
real clock to check that the timers expire sessions on their own. Every coroutine
runs under ``asyncio.wait_for`` so that a hang fails the test instead of the suite.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from streamlog.broker.config import BrokerConfig
from streamlog.broker.coordinator import GroupCoordinator
from streamlog.broker.group_metadata import GroupState, JoinedMember, JoinResult, SyncResult
from streamlog.log.clock import ManualClock, SystemClock
from streamlog.log.group_offsets import GroupOffsetStore, OffsetAndMetadata
from streamlog.log.manager import LogManager
from streamlog.protocol import ErrorCode

T = TypeVar("T")

PROTOCOLS = [("range", b"range-meta"), ("roundrobin", b"rr-meta")]


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
    async def main() -> T:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(main())


async def settle() -> None:
    """Let every ready task run until it blocks."""
    for _ in range(10):
        await asyncio.sleep(0)


def make(clock: Any = None, store: GroupOffsetStore | None = None, **kw: Any) -> GroupCoordinator:
    """A coordinator without a broker; ``kw`` are ``BrokerConfig``'s ``group_*`` settings."""
    settings = {f"group_{k}": v for k, v in kw.items()}
    settings.setdefault("group_min_session_timeout_ms", 10)
    settings.setdefault("group_initial_rebalance_delay_ms", 0)  # tests that want it say so
    return GroupCoordinator(
        clock=clock or ManualClock(), offsets=store, config=BrokerConfig(**settings)
    )


async def join(
    c: GroupCoordinator,
    member_id: str = "",
    *,
    group: str = "g",
    protocols: list[tuple[str, bytes]] = PROTOCOLS,
    protocol_type: str = "consumer",
    session: int = 10_000,
    rebalance: int = 30_000,
    client_id: str = "client",
    **kw: Any,
) -> JoinResult:
    return await c.join_group(
        group,
        member_id,
        protocol_type=protocol_type,
        protocols=protocols,
        session_timeout_ms=session,
        rebalance_timeout_ms=rebalance,
        client_id=client_id,
        client_host="/127.0.0.1",
        **kw,
    )


async def form_group(c: GroupCoordinator, n: int, **kw: Any) -> tuple[int, list[str]]:
    """n members join one by one, each join a rebalance; all sync. Returns the generation
    and the member ids in join order (the first is the leader); member i is assigned
    ``f"part-{i}"``."""
    first = await join(c, **kw)
    ids = [first.member_id]
    generation = first.generation_id
    for _ in range(1, n):
        newcomer = asyncio.ensure_future(join(c, **kw))
        await settle()
        rejoins = [asyncio.ensure_future(join(c, m, **kw)) for m in ids]
        results = await asyncio.gather(newcomer, *rejoins)
        ids.append(results[0].member_id)
        generation = results[0].generation_id
        assert {r.generation_id for r in results} == {generation}
    assignments = {m: f"part-{i}".encode() for i, m in enumerate(ids)}
    syncs = [asyncio.ensure_future(c.sync_group("g", m, generation, {})) for m in ids[1:]]
    await settle()
    leader = await c.sync_group("g", ids[0], generation, assignments)
    assert leader.error == ErrorCode.NONE
    for sync, m in zip(syncs, ids[1:], strict=True):
        assert (await sync).assignment == assignments[m]
    return generation, ids


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[LogManager]:
    m = LogManager.open(str(tmp_path / "data"), offsets_topic_partitions=2)
    yield m
    m.close()


# -- joining ----------------------------------------------------------------------------


def test_first_member_leads_generation_one_and_syncs_its_assignment() -> None:
    async def scenario() -> None:
        c = make()
        r = await join(c)
        assert r.error == ErrorCode.NONE
        assert r.member_id.startswith("client-")
        assert r.generation_id == 1
        assert r.leader_id == r.member_id
        assert r.protocol_type == "consumer"
        assert r.protocol_name == "range"
        assert r.members == (JoinedMember(r.member_id, None, b"range-meta"),)
        assert c.describe_group("g").state is GroupState.COMPLETING_REBALANCE

        s = await c.sync_group("g", r.member_id, 1, {r.member_id: b"p0", "stranger": b"x"})
        assert s == SyncResult(ErrorCode.NONE, b"p0", "consumer", "range")
        d = c.describe_group("g")
        assert d.state is GroupState.STABLE
        assert (d.protocol_type, d.protocol_name) == ("consumer", "range")
        (m,) = d.members
        assert (m.member_id, m.client_id, m.client_host) == (r.member_id, "client", "/127.0.0.1")
        assert (m.metadata, m.assignment) == (b"range-meta", b"p0")
        await c.stop()

    run(scenario)


def test_member_id_required_then_rejoin_with_the_given_id() -> None:
    async def scenario() -> None:
        c = make()
        first = await join(c, require_known_member_id=True, client_id="rdkafka")
        assert first.error == ErrorCode.MEMBER_ID_REQUIRED
        assert first.member_id.startswith("rdkafka-")
        assert first.generation_id == -1
        assert c.describe_group("g").state is GroupState.EMPTY

        r = await join(c, first.member_id, require_known_member_id=True)
        assert (r.error, r.member_id, r.generation_id) == (ErrorCode.NONE, first.member_id, 1)
        await c.stop()

    run(scenario)


def test_second_member_triggers_rebalance_and_waits_for_the_leaders_assignment() -> None:
    async def scenario() -> None:
        c = make()
        a = await join(c, client_id="a")
        await c.sync_group("g", a.member_id, 1, {a.member_id: b"all"})

        b_join = asyncio.ensure_future(join(c, client_id="b"))
        await settle()
        assert not b_join.done()
        assert c.describe_group("g").state is GroupState.PREPARING_REBALANCE
        assert c.heartbeat("g", a.member_id, 1) == ErrorCode.REBALANCE_IN_PROGRESS
        # during PreparingRebalance commits are still accepted, as in Kafka
        a2 = await join(c, a.member_id)
        b = await b_join

        assert a2.generation_id == b.generation_id == 2
        assert a2.leader_id == b.leader_id == a.member_id
        assert a2.members == (
            JoinedMember(a.member_id, None, b"range-meta"),
            JoinedMember(b.member_id, None, b"range-meta"),
        )
        assert b.members == ()

        b_sync = asyncio.ensure_future(c.sync_group("g", b.member_id, 2, {}))
        await settle()
        assert not b_sync.done()
        a_sync = await c.sync_group("g", a.member_id, 2, {a.member_id: b"A", b.member_id: b"B"})
        assert a_sync.assignment == b"A"
        assert (await b_sync) == SyncResult(ErrorCode.NONE, b"B", "consumer", "range")
        assert c.describe_group("g").state is GroupState.STABLE
        assert c.heartbeat("g", b.member_id, 2) == ErrorCode.NONE
        await c.stop()

    run(scenario)


def test_follower_rejoining_unchanged_gets_the_current_generation_leader_rejoin_rebalances() -> (
    None
):
    async def scenario() -> None:
        c = make()
        generation, (leader, follower) = await form_group(c, 2)
        again = await join(c, follower)
        assert (again.error, again.generation_id, again.leader_id) == (
            ErrorCode.NONE,
            generation,
            leader,
        )
        assert c.describe_group("g").state is GroupState.STABLE

        leader_join = asyncio.ensure_future(join(c, leader))
        await settle()
        assert c.describe_group("g").state is GroupState.PREPARING_REBALANCE
        assert c.heartbeat("g", follower, generation) == ErrorCode.REBALANCE_IN_PROGRESS
        follower_join = await join(c, follower)
        assert (await leader_join).generation_id == follower_join.generation_id == generation + 1
        await c.stop()

    run(scenario)


@pytest.mark.parametrize(
    ("preferences", "chosen"),
    [
        # candidates are the protocols everyone supports
        ([["range", "roundrobin"], ["roundrobin", "range"], ["roundrobin"]], "roundrobin"),
        # most first choices win
        ([["range", "sticky"], ["sticky", "range"], ["sticky", "range"]], "sticky"),
        # a tie goes to the leader's preference
        ([["range", "sticky"], ["sticky", "range"]], "range"),
    ],
)
def test_protocol_is_chosen_by_votes_among_common_protocols(
    preferences: list[list[str]], chosen: str
) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        c = make(clock, initial_rebalance_delay_ms=50)
        joins = [
            asyncio.ensure_future(join(c, protocols=[(n, n.encode()) for n in names]))
            for names in preferences
        ]
        await settle()
        clock.advance(50)
        c.run_timers()
        clock.advance(50)
        c.run_timers()
        results = await asyncio.gather(*joins)
        assert {r.protocol_name for r in results} == {chosen}
        leader = next(r for r in results if r.members)
        assert {m.metadata for m in leader.members} == {chosen.encode()}
        await c.stop()

    run(scenario)


def test_inconsistent_protocols_and_bad_arguments_are_refused() -> None:
    async def scenario() -> None:
        c = make(max_session_timeout_ms=60_000)
        assert (await join(c, protocols=[])).error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        assert (await join(c, protocol_type="")).error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        assert c.describe_group("g").state is GroupState.DEAD  # nothing was created

        await form_group(c, 1)
        assert (await join(c, protocol_type="connect")).error == (
            ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        )
        sticky_only = [("sticky", b"")]
        assert (await join(c, protocols=sticky_only)).error == (
            ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        )
        assert (await join(c, session=5)).error == ErrorCode.INVALID_SESSION_TIMEOUT
        assert (await join(c, session=60_001)).error == ErrorCode.INVALID_SESSION_TIMEOUT
        assert (await join(c, group="")).error == ErrorCode.INVALID_GROUP_ID
        assert (await join(c, "nobody")).error == ErrorCode.UNKNOWN_MEMBER_ID
        assert (await join(c, "nobody", group="other")).error == ErrorCode.UNKNOWN_MEMBER_ID
        await c.stop()

    run(scenario)


def test_initial_rebalance_delay_waits_and_extends_for_new_members() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        c = make(clock, initial_rebalance_delay_ms=100)
        a = asyncio.ensure_future(join(c, client_id="a"))
        await settle()
        clock.advance(50)
        b = asyncio.ensure_future(join(c, client_id="b"))
        await settle()
        clock.advance(50)
        c.run_timers()
        await settle()
        assert not a.done()  # a new member arrived during the delay: wait once more
        clock.advance(100)
        c.run_timers()
        ra, rb = await asyncio.gather(a, b)
        assert ra.generation_id == rb.generation_id == 1
        assert ra.leader_id == ra.member_id
        assert len(ra.members) == 2
        await c.stop()

    run(scenario)


# -- SyncGroup, Heartbeat and LeaveGroup errors -----------------------------------------


def test_sync_and_heartbeat_errors() -> None:
    async def scenario() -> None:
        c = make()
        generation, (leader, follower) = await form_group(c, 2)

        async def sync(member: str, gen: int, **kw: Any) -> ErrorCode:
            return (await c.sync_group("g", member, gen, {}, **kw)).error

        assert await sync(leader, generation + 1) == ErrorCode.ILLEGAL_GENERATION
        assert await sync("nobody", generation) == ErrorCode.UNKNOWN_MEMBER_ID
        assert (await c.sync_group("nope", leader, generation, {})).error == (
            ErrorCode.UNKNOWN_MEMBER_ID
        )
        assert await sync(leader, generation, protocol_name="sticky") == (
            ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        )
        assert await sync(leader, generation, protocol_type="connect") == (
            ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        )
        ok = await c.sync_group(
            "g", follower, generation, {}, protocol_type="consumer", protocol_name="range"
        )
        assert ok == SyncResult(ErrorCode.NONE, b"part-1", "consumer", "range")
        assert (await c.sync_group("", leader, generation, {})).error == ErrorCode.INVALID_GROUP_ID

        assert c.heartbeat("g", leader, generation) == ErrorCode.NONE
        assert c.heartbeat("g", leader, generation - 1) == ErrorCode.ILLEGAL_GENERATION
        assert c.heartbeat("g", "nobody", generation) == ErrorCode.UNKNOWN_MEMBER_ID
        assert c.heartbeat("nope", leader, generation) == ErrorCode.UNKNOWN_MEMBER_ID
        assert c.heartbeat("", leader, generation) == ErrorCode.INVALID_GROUP_ID

        rejoin = asyncio.ensure_future(join(c, leader))
        await settle()
        assert await sync(follower, generation) == ErrorCode.REBALANCE_IN_PROGRESS
        assert c.heartbeat("g", follower, generation) == ErrorCode.REBALANCE_IN_PROGRESS
        await join(c, follower)
        assert (await rejoin).generation_id == generation + 1
        await c.stop()

    run(scenario)


def test_leave_rebalances_and_the_last_leaver_empties_the_group() -> None:
    async def scenario() -> None:
        c = make()
        generation, (a, b) = await form_group(c, 2)
        assert c.leave_group("g", [(b, None)]).member_errors == (ErrorCode.NONE,)
        assert c.describe_group("g").state is GroupState.PREPARING_REBALANCE
        assert c.heartbeat("g", a, generation) == ErrorCode.REBALANCE_IN_PROGRESS
        alone = await join(c, a)
        assert (alone.generation_id, alone.leader_id) == (generation + 1, a)
        assert [m.member_id for m in alone.members] == [a]

        result = c.leave_group("g", [(a, None), ("ghost", None)])
        assert result.error == ErrorCode.NONE
        assert result.member_errors == (ErrorCode.NONE, ErrorCode.UNKNOWN_MEMBER_ID)
        d = c.describe_group("g")
        assert (d.state, d.members, d.protocol_type) == (GroupState.EMPTY, (), "consumer")
        assert c.heartbeat("g", a, generation + 1) == ErrorCode.UNKNOWN_MEMBER_ID
        # generation went up once more when the group emptied
        again = await join(c)
        assert again.generation_id == generation + 3

        assert c.leave_group("nope", [("x", None)]).member_errors == (ErrorCode.UNKNOWN_MEMBER_ID,)
        assert c.leave_group("", [("x", None)]).error == ErrorCode.INVALID_GROUP_ID
        await c.stop()

    run(scenario)


def test_static_member_rejoins_without_rebalance_and_fences_its_old_id() -> None:
    async def scenario() -> None:
        c = make()
        s = await join(c, group_instance_id="inst-1", require_known_member_id=True)
        assert s.error == ErrorCode.NONE  # static members need no MEMBER_ID_REQUIRED round
        assert s.member_id.startswith("inst-1-")
        await c.sync_group("g", s.member_id, 1, {s.member_id: b"S"})

        s2 = await join(c, group_instance_id="inst-1", require_known_member_id=True)
        assert s2.error == ErrorCode.NONE
        assert s2.member_id != s.member_id
        assert (s2.generation_id, s2.leader_id, s2.members) == (1, s.member_id, ())
        assert c.describe_group("g").state is GroupState.STABLE

        assert c.heartbeat("g", s.member_id, 1, "inst-1") == ErrorCode.FENCED_INSTANCE_ID
        assert c.heartbeat("g", s2.member_id, 1, "inst-1") == ErrorCode.NONE
        sync = await c.sync_group("g", s2.member_id, 1, {}, group_instance_id="inst-1")
        assert sync.assignment == b"S"
        fenced = await join(c, s.member_id, group_instance_id="inst-1")
        assert fenced.error == ErrorCode.FENCED_INSTANCE_ID

        left = c.leave_group("g", [("", "inst-1"), ("", "inst-2")])
        assert left.member_errors == (ErrorCode.NONE, ErrorCode.UNKNOWN_MEMBER_ID)
        assert c.describe_group("g").state is GroupState.EMPTY
        await c.stop()

    run(scenario)


# -- timeouts ---------------------------------------------------------------------------


def test_members_that_do_not_rejoin_within_the_rebalance_timeout_are_removed() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        c = make(clock)
        generation, (a, b) = await form_group(c, 2, rebalance=100)
        newcomer = asyncio.ensure_future(join(c, rebalance=100, client_id="c"))
        await settle()
        await join_later(c, a, rebalance=100)  # a rejoins, b does not
        clock.advance(99)
        c.run_timers()
        await settle()
        assert not newcomer.done()
        clock.advance(1)
        c.run_timers()
        r = await newcomer
        assert r.generation_id == generation + 1
        assert r.leader_id == a
        assert c.heartbeat("g", b, generation) == ErrorCode.UNKNOWN_MEMBER_ID
        assert [m.member_id for m in c.describe_group("g").members] == [a, r.member_id]
        await c.stop()

    async def join_later(c: GroupCoordinator, member: str, **kw: Any) -> None:
        asyncio.ensure_future(join(c, member, **kw))
        await settle()

    run(scenario)


def test_session_expiry_removes_the_silent_member_and_rebalances() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        c = make(clock)
        generation, (a, b) = await form_group(c, 2, session=1000)
        clock.advance(600)
        assert c.heartbeat("g", a, generation) == ErrorCode.NONE
        clock.advance(399)
        c.run_timers()
        assert c.describe_group("g").state is GroupState.STABLE
        clock.advance(1)
        c.run_timers()
        d = c.describe_group("g")
        assert d.state is GroupState.PREPARING_REBALANCE
        assert [m.member_id for m in d.members] == [a]
        assert c.heartbeat("g", a, generation) == ErrorCode.REBALANCE_IN_PROGRESS
        r = await join(c, a, session=1000)
        assert (r.generation_id, r.leader_id, len(r.members)) == (generation + 1, a, 1)
        assert c.heartbeat("g", b, generation) == ErrorCode.UNKNOWN_MEMBER_ID
        await c.stop()

    run(scenario)


def test_members_that_never_sync_are_removed_after_the_rebalance_timeout() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        c = make(clock)
        a = await join(c, rebalance=1000, client_id="a")
        await c.sync_group("g", a.member_id, 1, {})
        b = asyncio.ensure_future(join(c, rebalance=1000, client_id="b"))
        await settle()
        await join(c, a.member_id, rebalance=1000)
        b_id = (await b).member_id
        await c.sync_group("g", a.member_id, 2, {})  # b never sends SyncGroup
        assert c.describe_group("g").state is GroupState.STABLE
        clock.advance(1000)
        c.run_timers()
        d = c.describe_group("g")
        assert d.state is GroupState.PREPARING_REBALANCE
        assert [m.member_id for m in d.members] == [a.member_id]
        assert c.heartbeat("g", b_id, 2) == ErrorCode.UNKNOWN_MEMBER_ID
        await c.stop()

    run(scenario)


def test_a_follower_that_disconnects_mid_join_does_not_wedge_the_group() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        c = make(clock)
        generation, (a, b) = await form_group(c, 2, session=1000)
        changed = [("range", b"new-topics")]
        b_join = asyncio.ensure_future(join(c, b, protocols=changed, session=1000))
        await settle()
        assert c.describe_group("g").state is GroupState.PREPARING_REBALANCE
        b_join.cancel()  # the connection went away; the future is abandoned
        await settle()

        r = await join(c, a, session=1000)  # b counts as rejoined: no wait
        assert r.generation_id == generation + 1
        assert [m.member_id for m in r.members] == [a, b]
        await c.sync_group("g", a, r.generation_id, {a: b"A", b: b"B"})
        clock.advance(999)
        assert c.heartbeat("g", a, r.generation_id) == ErrorCode.NONE
        clock.advance(1)
        c.run_timers()  # b's session, started when the join ended, is over
        assert [m.member_id for m in c.describe_group("g").members] == [a]
        r2 = await join(c, a, session=1000)
        assert (r2.generation_id, len(r2.members)) == (generation + 2, 1)
        await c.stop()

    run(scenario)


def test_a_leader_that_disconnects_mid_join_is_expired_and_followers_rejoin() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        c = make(clock)
        generation, (a, b) = await form_group(c, 2, session=1000)
        a_join = asyncio.ensure_future(join(c, a, session=1000))
        await settle()
        a_join.cancel()
        await settle()
        rb = await join(c, b, session=1000)
        assert (rb.generation_id, rb.leader_id) == (generation + 1, a)
        b_sync = asyncio.ensure_future(c.sync_group("g", b, rb.generation_id, {}))
        await settle()
        assert not b_sync.done()  # waiting for a leader that is gone
        clock.advance(1000)
        c.run_timers()
        assert (await b_sync).error == ErrorCode.REBALANCE_IN_PROGRESS
        r = await join(c, b, session=1000)
        assert (r.generation_id, r.leader_id) == (generation + 2, b)
        await c.stop()

    run(scenario)


def test_the_timers_expire_sessions_on_the_real_clock() -> None:
    async def scenario() -> None:
        c = make(SystemClock())
        await c.start()
        r = await join(c, session=100, rebalance=100)
        await c.sync_group("g", r.member_id, 1, {})
        started = time.monotonic()
        while c.describe_group("g").state is not GroupState.EMPTY:
            assert time.monotonic() - started < 5
            await asyncio.sleep(0.01)
        assert c.heartbeat("g", r.member_id, 1) == ErrorCode.UNKNOWN_MEMBER_ID
        await c.stop()

    run(scenario)


def test_stop_answers_waiting_joins_not_coordinator() -> None:
    async def scenario() -> None:
        c = make(initial_rebalance_delay_ms=1000)
        waiting = asyncio.ensure_future(join(c))
        await settle()
        await c.stop()
        assert (await waiting).error == ErrorCode.NOT_COORDINATOR

    run(scenario)


# -- offsets ----------------------------------------------------------------------------


def test_standalone_consumers_commit_with_generation_minus_one(manager: LogManager) -> None:
    async def scenario() -> None:
        c = make(store=manager.group_offsets)
        offsets = {("t", 0): OffsetAndMetadata(5, "m", 3), ("t", 1): OffsetAndMetadata(9)}
        assert await c.commit_offsets("solo", "", -1, offsets) == ErrorCode.NONE
        code, fetched = c.fetch_offsets("solo")
        assert code == ErrorCode.NONE
        assert {tp: (o.offset, o.metadata, o.leader_epoch) for tp, o in fetched.items()} == {
            ("t", 0): (5, "m", 3),
            ("t", 1): (9, "", -1),
        }
        assert c.fetch_offsets("solo", [("t", 1), ("t", 7)])[1].keys() == {("t", 1)}
        (overview,) = c.list_groups()
        assert (overview.group_id, overview.protocol_type, overview.state) == (
            "solo",
            "consumer",
            GroupState.EMPTY,
        )
        assert c.describe_group("solo").state is GroupState.EMPTY
        assert await c.commit_offsets("other", "", 3, offsets) == ErrorCode.ILLEGAL_GENERATION
        assert await c.commit_offsets("", "", -1, offsets) == ErrorCode.INVALID_GROUP_ID
        assert c.fetch_offsets("")[0] == ErrorCode.INVALID_GROUP_ID

    run(scenario)


def test_member_commits_are_checked_against_member_and_generation(manager: LogManager) -> None:
    async def scenario() -> None:
        c = make(store=manager.group_offsets)
        offsets = {("t", 0): OffsetAndMetadata(1)}
        generation, (a, b) = await form_group(c, 2)

        async def commit(member: str, gen: int) -> ErrorCode:
            return await c.commit_offsets("g", member, gen, offsets)

        assert await commit(a, generation) == ErrorCode.NONE
        assert await commit(a, generation - 1) == ErrorCode.ILLEGAL_GENERATION
        assert await commit("nobody", generation) == ErrorCode.UNKNOWN_MEMBER_ID
        assert await commit("", -1) == ErrorCode.UNKNOWN_MEMBER_ID  # the group has members

        rejoin = asyncio.ensure_future(join(c, a))
        await settle()
        assert await commit(b, generation) == ErrorCode.NONE  # PreparingRebalance: allowed
        await join(c, b)
        await rejoin
        assert await commit(b, generation + 1) == ErrorCode.REBALANCE_IN_PROGRESS
        assert c.fetch_offsets("g")[1][("t", 0)].offset == 1

        c.leave_group("g", [(a, None), (b, None)])
        assert await commit("", -1) == ErrorCode.NONE  # an Empty group takes simple commits
        await c.stop()

    run(scenario)


def test_committed_offsets_survive_a_restart(tmp_path: Path) -> None:
    data = str(tmp_path / "data")

    async def commit() -> None:
        with LogManager.open(data) as m:
            c = make(store=m.group_offsets)
            await c.commit_offsets("g", "", -1, {("t", 2): OffsetAndMetadata(42, "x")})

    async def fetch() -> dict[tuple[str, int], OffsetAndMetadata]:
        with LogManager.open(data) as m:
            return make(store=m.group_offsets).fetch_offsets("g")[1]

    run(commit)
    fetched = run(fetch)
    assert (fetched[("t", 2)].offset, fetched[("t", 2)].metadata) == (42, "x")


def test_list_groups_filters_by_state_case_insensitively(manager: LogManager) -> None:
    async def scenario() -> None:
        c = make(store=manager.group_offsets)
        await form_group(c, 1)  # "g": Stable
        await join(c, group="pending", require_known_member_id=True)  # Empty
        await c.commit_offsets("offsets-only", "", -1, {("t", 0): OffsetAndMetadata(0)})

        def listed(states: list[str] | None) -> list[tuple[str, str, str]]:
            return [(g.group_id, g.protocol_type, g.state.value) for g in c.list_groups(states)]

        assert listed(None) == [
            ("g", "consumer", "Stable"),
            ("offsets-only", "consumer", "Empty"),
            ("pending", "", "Empty"),
        ]
        assert listed(["stable"]) == [("g", "consumer", "Stable")]
        assert [g for g, _, _ in listed(["EMPTY", "Dead"])] == ["offsets-only", "pending"]
        await c.stop()

    run(scenario)


def test_describe_unknown_group_is_dead() -> None:
    d = make().describe_group("never-seen")
    assert (d.state, d.protocol_type, d.protocol_name, d.members) == (
        GroupState.DEAD,
        "",
        "",
        (),
    )
