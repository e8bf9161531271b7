"""Consumer groups of the embedded transport: assignment, the barrier, commits, liveness.

The shared group behaviour (split, rebalance, listener order) is in ``test_contract.py``;
these check what only an in-process group does, or what is easier to pin down here.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from streamlog.transport.embedded import EmbeddedTransport
from streamlog.transport.errors import GroupError, RebalanceInProgressError
from streamlog.transport.types import TopicPartition

from ..waiting import started, until

TIMEOUT = 30


def run(body: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(body(), TIMEOUT))


def tps(topic: str, *partitions: int) -> set[TopicPartition]:
    return {TopicPartition(topic, p) for p in partitions}


class Recorder:
    def __init__(self, on_revoked: Callable[[set[TopicPartition]], Awaitable[None]] | None = None):
        self.events: list[tuple[str, set[TopicPartition]]] = []
        self._on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.events.append(("revoked", set(revoked)))
        if self._on_revoked is not None:
            await self._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.events.append(("assigned", set(assigned)))


def test_group_commands_need_a_group_id() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            consumer = transport.consumer()
            with pytest.raises(GroupError):
                await consumer.subscribe(["t"])
            with pytest.raises(GroupError):
                await consumer.commit({TopicPartition("t", 0): 1})
            with pytest.raises(GroupError):
                await consumer.committed(TopicPartition("t", 0))
            member = transport.consumer(group_id="g")
            await member.subscribe(["t"])
            with pytest.raises(GroupError):
                member.assign([TopicPartition("t", 0)])

    run(body)


def test_subscribe_takes_a_free_assignment_at_once_and_creates_topics() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://", default_partitions=2) as transport:
            events = Recorder()
            consumer = transport.consumer(group_id="g")
            await consumer.subscribe(["new-topic"], events)
            assert consumer.assignment() == tps("new-topic", 0, 1)
            assert events.events == [("assigned", tps("new-topic", 0, 1))]
            assert await transport.admin().list_topics() == ["new-topic"]

    run(body)


def test_a_joining_member_waits_until_the_owner_lets_go() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            await transport.admin().create_topic("t", 2)
            a = transport.consumer(group_id="g", client_id="a")
            b = transport.consumer(group_id="g", client_id="b")
            await a.subscribe(["t"])
            await b.subscribe(["t"])
            # A has not polled since B joined: B must not read A's partitions yet.
            assert b.assignment() == set()
            assert await b.getmany(timeout_ms=50) == {}
            assert b.assignment() == set()
            # Concurrently: B's long poll, parked waiting for A (``started`` returns once
            # it waits), is woken when A releases, takes its partition and goes on
            # waiting for records.
            waiting = await started(b.getmany(timeout_ms=5000))
            assert not waiting.done()
            assert b.assignment() == set()
            await a.getmany()
            await until(lambda: len(b.assignment()) == 1, "B takes the partition A released")
            assert not waiting.done()
            assert a.assignment() | b.assignment() == tps("t", 0, 1)
            assert not a.assignment() & b.assignment()
            (theirs,) = b.assignment()
            await transport.producer().send_and_wait("t", b"x", partition=theirs.partition)
            fetched = await asyncio.wait_for(waiting, 1)
            assert [r.value for r in fetched[theirs]] == [b"x"]

    run(body)


def test_commits_in_the_revoke_callback_reach_the_next_owner() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            await transport.admin().create_topic("t", 2)
            producer = transport.producer()
            for i in range(20):
                await producer.send("t", b"%d" % i, partition=i % 2)
            await producer.flush()

            a = transport.consumer(group_id="g", client_id="a")

            async def commit_positions(revoked: set[TopicPartition]) -> None:
                await a.commit()

            await a.subscribe(["t"], Recorder(commit_positions))
            read = 0
            while read < 20:
                read += sum(len(r) for r in (await a.getmany(timeout_ms=100)).values())
            b = transport.consumer(group_id="g", client_id="b")
            await b.subscribe(["t"])
            await a.getmany()  # A revokes (committing 10 and 10) and takes its half
            await b.getmany()
            (theirs,) = b.assignment()
            assert await b.committed(theirs) == 10
            assert await b.position(theirs) == 10
            await producer.send_and_wait("t", b"new", partition=theirs.partition)
            fetched = await b.getmany(timeout_ms=1000)
            assert [r.offset for r in fetched[theirs]] == [10]

    run(body)


def test_a_member_that_lost_partitions_cannot_commit_them_before_rejoining() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            await transport.admin().create_topic("t", 2)
            a = transport.consumer(group_id="g", client_id="a")
            b = transport.consumer(group_id="g", client_id="b")
            await a.subscribe(["t"])
            await b.subscribe(["t"])
            await a.getmany()  # A revokes both, takes partition 0
            await b.getmany()  # B takes partition 1
            assert a.assignment() == tps("t", 0) and b.assignment() == tps("t", 1)
            await b.close()  # A is now due a rebalance, and would own both
            await a.commit({TopicPartition("t", 0): 1})  # still its own: fine
            with pytest.raises(RebalanceInProgressError):
                await a.commit({TopicPartition("t", 1): 1})
            await a.getmany()
            await a.commit({TopicPartition("t", 1): 1})
            assert await a.committed(TopicPartition("t", 1)) == 1

    run(body)


def test_an_idle_member_is_evicted_after_its_session_timeout() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            await transport.admin().create_topic("t", 2)
            idle_events = Recorder()
            idle = transport.consumer(group_id="g", client_id="idle", session_timeout_ms=200)
            await idle.subscribe(["t"], idle_events)
            busy = transport.consumer(group_id="g", client_id="busy")
            await busy.subscribe(["t"])
            loop = asyncio.get_running_loop()
            started = loop.time()
            while busy.assignment() != tps("t", 0, 1):
                await busy.getmany(timeout_ms=100)
                assert loop.time() - started < 5, "the idle member was never evicted"
            # The evicted member finds out on its next poll and rejoins.
            await idle.getmany()
            assert ("revoked", tps("t", 0, 1)) in idle_events.events
            info = await transport.admin().describe_group("g")
            assert sorted(m.client_id for m in info.members) == ["busy", "idle"]

    run(body)


def test_a_garbage_collected_member_leaves_its_group() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            await transport.admin().create_topic("t", 2)
            keeper = transport.consumer(group_id="g", client_id="keeper")
            await keeper.subscribe(["t"])
            dropped = transport.consumer(group_id="g", client_id="dropped")
            await dropped.subscribe(["t"])
            await keeper.getmany()
            await dropped.getmany()
            assert len(keeper.assignment()) == 1
            del dropped
            gc.collect()
            await keeper.getmany()
            assert keeper.assignment() == tps("t", 0, 1)

    run(body)


def test_added_partitions_rebalance_the_subscribers() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            admin = transport.admin()
            await admin.create_topic("t", 1)
            events = Recorder()
            consumer = transport.consumer(group_id="g")
            await consumer.subscribe(["t"], events)
            assert consumer.assignment() == tps("t", 0)
            await admin.add_partitions("t", 3)
            await consumer.getmany()
            assert consumer.assignment() == tps("t", 0, 1, 2)
            # incremental: partition 0 stays put (never revoked), the new ones are added
            assert events.events == [("assigned", tps("t", 0)), ("assigned", tps("t", 1, 2))]

    run(body)


def test_group_listing_and_states() -> None:
    async def body() -> None:
        async with EmbeddedTransport("memory://") as transport:
            admin = transport.admin()
            await admin.create_topic("t", 1)
            assert await admin.list_groups() == []
            dead = await admin.describe_group("nobody")
            assert (dead.state, dead.members, dead.partitions) == ("Dead", (), ())

            committer = transport.consumer(group_id="committed-only")
            committer.assign([TopicPartition("t", 0)])
            await committer.commit({TopicPartition("t", 0): 0})
            member = transport.consumer(group_id="active")
            await member.subscribe(["t"])
            assert await admin.list_groups() == ["active", "committed-only"]
            assert (await admin.describe_group("committed-only")).state == "Empty"
            active = await admin.describe_group("active")
            assert (active.state, active.protocol) == ("Stable", "cooperative-sticky")
            (lag,) = active.partitions
            assert (lag.committed_offset, lag.member_id) == (-1, active.members[0].member_id)

            other = transport.consumer(group_id="active")
            await other.subscribe(["t"])
            assert (await admin.describe_group("active")).state == "PreparingRebalance"
            await member.close()
            await other.getmany()
            assert (await admin.describe_group("active")).state == "Stable"

    run(body)
