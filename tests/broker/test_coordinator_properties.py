"""Random operation sequences against the coordinator: invariants hold, nothing wedges.

Members join, rejoin with other protocols, sync, heartbeat, leave, abandon their
requests (a cancelled task, as when a connection drops) and let time pass, in any order.
After every step the group's invariants hold; at the end, once enough time has passed
for every timeout, no request is still waiting and every member has expired.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from streamlog.broker.config import BrokerConfig
from streamlog.broker.coordinator import GroupCoordinator
from streamlog.broker.group_metadata import GroupState, JoinResult, SyncResult
from streamlog.log.clock import ManualClock
from streamlog.protocol import ErrorCode

PROTOCOL_CHOICES = [
    [("range", b"r1")],
    [("range", b"r2"), ("roundrobin", b"x")],
    [("roundrobin", b"x")],
    [("cooperative-sticky", b"c"), ("range", b"r1")],
]

member = st.integers(0, 5)
join_op = st.tuples(
    st.just("join"),
    st.sampled_from(range(len(PROTOCOL_CHOICES))),
    st.booleans(),  # KIP-394: member id required
    st.sampled_from([None, "static-a", "static-b"]),
    st.sampled_from([1_000, 10_000]),
)
sync_op = st.tuples(st.just("sync"), member)
operations = st.lists(
    st.one_of(
        join_op,
        join_op,
        sync_op,
        sync_op,
        st.tuples(st.just("rejoin"), member, st.sampled_from(range(len(PROTOCOL_CHOICES)))),
        st.tuples(st.just("heartbeat"), member),
        st.tuples(st.just("leave"), member),
        st.tuples(st.just("cancel"), st.integers(0, 20)),
        st.tuples(st.just("advance"), st.sampled_from([0, 100, 1_000, 10_000, 40_000])),
    ),
    max_size=40,
)


def check_invariants(c: GroupCoordinator) -> None:
    d = c.describe_group("g")
    event(f"state {d.state.value}")
    if d.state is GroupState.EMPTY:
        assert d.members == ()
    if d.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
        assert d.members
    if d.state is GroupState.STABLE:
        # everyone supports the chosen protocol (every choice has non-empty metadata)
        assert d.protocol_name
        assert all(m.metadata for m in d.members)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(operations)
def test_random_operations_keep_invariants_and_never_wedge(ops: list[tuple[Any, ...]]) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        config = BrokerConfig(group_min_session_timeout_ms=10, group_initial_rebalance_delay_ms=0)
        c = GroupCoordinator(clock=clock, config=config)
        ids: list[str] = []
        generation_of: dict[str, int] = {}
        instance_of: dict[str, str | None] = {}
        tasks: list[asyncio.Future[Any]] = []
        generations: list[int] = []
        protocol_of_generation: dict[int, str | None] = {}

        def record(result: JoinResult) -> None:
            event(f"join {result.error.name}")
            if result.error == ErrorCode.NONE:
                generation_of[result.member_id] = result.generation_id
                generations.append(result.generation_id)
                chosen = protocol_of_generation.setdefault(
                    result.generation_id, result.protocol_name
                )
                assert chosen == result.protocol_name
                if result.members:  # the leader's view
                    assert result.leader_id == result.member_id
                    assert result.member_id in {m.member_id for m in result.members}
            if result.member_id and result.member_id not in ids:
                ids.append(result.member_id)

        async def join(member_id: str, choice: int, required: bool, instance: str | None,
                       session: int) -> None:  # fmt: skip
            result = await c.join_group(
                "g",
                member_id,
                protocol_type="consumer",
                protocols=PROTOCOL_CHOICES[choice],
                session_timeout_ms=session,
                rebalance_timeout_ms=session * 3,
                group_instance_id=instance,
                client_id="c",
                require_known_member_id=required,
            )
            if result.member_id:
                instance_of.setdefault(result.member_id, instance)
            record(result)

        async def sync(member_id: str) -> SyncResult:
            leader = c.describe_group("g")
            assignments = {m.member_id: b"a" for m in leader.members}
            result = await c.sync_group(
                "g",
                member_id,
                generation_of.get(member_id, -1),
                assignments,
                group_instance_id=instance_of.get(member_id),
            )
            event(f"sync {result.error.name}")
            return result

        def pick(i: int) -> str | None:
            return ids[i % len(ids)] if ids else None

        for op in ops:
            kind = op[0]
            if kind == "join":
                _, choice, required, instance, session = op
                tasks.append(asyncio.ensure_future(join("", choice, required, instance, session)))
            elif kind == "rejoin" and (m := pick(op[1])) is not None:
                tasks.append(
                    asyncio.ensure_future(join(m, op[2], False, instance_of.get(m), 10_000))
                )
            elif kind == "sync" and (m := pick(op[1])) is not None:
                tasks.append(asyncio.ensure_future(sync(m)))
            elif kind == "heartbeat" and (m := pick(op[1])) is not None:
                c.heartbeat("g", m, generation_of.get(m, -1), instance_of.get(m))
            elif kind == "leave" and (m := pick(op[1])) is not None:
                result = c.leave_group("g", [(m, instance_of.get(m))])
                assert len(result.member_errors) == 1
            elif kind == "cancel" and tasks:
                tasks[op[1] % len(tasks)].cancel()
            elif kind == "advance":
                clock.advance(op[1])
                c.run_timers()
            for _ in range(5):
                await asyncio.sleep(0)
            check_invariants(c)
            assert generations == sorted(generations)

        # Every timeout is at most a few minutes: after that, nothing may still wait.
        for _ in range(30):
            clock.advance(60_000)
            c.run_timers()
            for _ in range(5):
                await asyncio.sleep(0)
        assert all(t.done() for t in tasks)
        assert c.describe_group("g").members == ()
        for t in tasks:
            if not t.cancelled():
                t.result()  # no request raised
        await c.stop()

    async def main() -> None:
        await asyncio.wait_for(scenario(), 20)

    asyncio.run(main())
