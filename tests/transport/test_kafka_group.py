"""Consumer groups over the Kafka transport: the assignors and their byte formats (checked
against aiokafka's and Kafka's schemas), and real groups on real brokers: partitions
split between members, rebalances with callbacks in order, a mixed group with aiokafka,
and the leader noticing new partitions."""

from __future__ import annotations

import asyncio
import io
import struct
from typing import Any

import pytest

from streamlog.transport.errors import TransportError
from streamlog.transport.kafka.assignors import (
    MalformedMemberDataError,
    RangeAssignor,
    RoundRobinAssignor,
    Subscription,
    decode_assignment,
    decode_assignment_user_data,
    decode_peers,
    decode_subscription,
    encode_assignment,
    encode_peers,
    encode_subscription,
)
from streamlog.transport.types import GroupPeer
from streamlog.transport.types import TopicPartition as TP

from .test_kafka_connection import KafkaCase, kafka, read_records, run

__all__ = ["kafka"]  # the fixture, re-exported for pytest

pytestmark = pytest.mark.timeout(180)


# ---------------------------------------------------------------------------------------
# assignors and formats


def test_range_assignor_matches_kafkas_documented_example() -> None:
    # RangeAssignor's javadoc: C0, C1; t0 and t1 with 3 partitions each.
    subs = {"C0": Subscription(("t0", "t1")), "C1": Subscription(("t0", "t1"))}
    result = RangeAssignor().assign({"t0": 3, "t1": 3}, subs)
    assert result == {
        "C0": {TP("t0", 0), TP("t0", 1), TP("t1", 0), TP("t1", 1)},
        "C1": {TP("t0", 2), TP("t1", 2)},
    }


def test_roundrobin_assignor_matches_kafkas_documented_examples() -> None:
    subs = {"C0": Subscription(("t0", "t1")), "C1": Subscription(("t0", "t1"))}
    assert RoundRobinAssignor().assign({"t0": 3, "t1": 3}, subs) == {
        "C0": {TP("t0", 0), TP("t0", 2), TP("t1", 1)},
        "C1": {TP("t0", 1), TP("t1", 0), TP("t1", 2)},
    }
    # Unequal subscriptions: C0 -> t0; C1 -> t0, t1; C2 -> t0, t1, t2 (1, 2, 3 partitions).
    subs = {
        "C0": Subscription(("t0",)),
        "C1": Subscription(("t0", "t1")),
        "C2": Subscription(("t0", "t1", "t2")),
    }
    assert RoundRobinAssignor().assign({"t0": 1, "t1": 2, "t2": 3}, subs) == {
        "C0": {TP("t0", 0)},
        "C1": {TP("t1", 0)},
        "C2": {TP("t1", 1), TP("t2", 0), TP("t2", 1), TP("t2", 2)},
    }


@pytest.mark.parametrize("assignor", [RangeAssignor(), RoundRobinAssignor()])
def test_assignors_cover_every_partition_once(assignor: Any) -> None:
    counts = {"a": 5, "b": 1, "c": 8, "missing": 0}
    subs = {
        "m1": Subscription(("a", "b", "c")),
        "m2": Subscription(("a", "c", "missing")),
        "m3": Subscription(("c",)),
    }
    result = assignor.assign(counts, subs)
    owned = [tp for parts in result.values() for tp in parts]
    assert sorted(owned) == sorted(TP(t, p) for t, n in counts.items() for p in range(n))
    for member, parts in result.items():
        assert {tp.topic for tp in parts} <= set(subs[member].topics)


def test_member_formats_match_aiokafka() -> None:
    from aiokafka.coordinator.protocol import (
        ConsumerProtocolMemberAssignment,
        ConsumerProtocolMemberMetadata,
    )

    ours = encode_subscription(["b", "a"], b"data")
    theirs = ConsumerProtocolMemberMetadata(0, ["a", "b"], b"data").encode()
    assert ours == theirs
    assert decode_subscription(theirs) == Subscription(("a", "b"), b"data")

    assignment = {TP("t", 0), TP("t", 3), TP("u", 1)}
    theirs = ConsumerProtocolMemberAssignment(0, [("t", [0, 3]), ("u", [1])], b"").encode()
    assert encode_assignment(assignment, b"") == theirs
    assert decode_assignment(theirs) == assignment
    assert decode_assignment(b"") == set()


PEERS = (
    GroupPeer("m-2", b'{"url": "http://b:6067"}', frozenset({TP("t", 2), TP("t", 3)})),
    GroupPeer("m-1", b'{"url": "http://a:6066"}', frozenset({TP("t", 0), TP("t", 1), TP("u", 0)})),
    GroupPeer("m-3", b"", frozenset(), frozenset({TP("t", 0), TP("u", 0)})),
)


def test_peer_list_round_trips_inside_an_assignment_that_other_clients_read() -> None:
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

    shared = encode_peers(PEERS)
    assert decode_peers(shared) == tuple(sorted(PEERS, key=lambda p: p.member_id))
    ours = encode_assignment({TP("t", 2), TP("t", 3)}, shared)
    assert decode_assignment_user_data(ours) == ({TP("t", 2), TP("t", 3)}, shared)
    assert decode_assignment(ours) == {TP("t", 2), TP("t", 3)}
    # a client that knows nothing of peer lists reads its partitions and opaque user data
    theirs = ConsumerProtocolMemberAssignment.decode(ours)
    assert theirs.partitions() == [("t", 2), ("t", 3)]
    assert theirs.user_data == shared


def test_a_version_0_peer_list_reads_as_no_standbys() -> None:
    """What a leader of an older streamlog shares: the members without standby sets."""
    v0 = b"streamlog.peers" + struct.pack(">hi", 0, 1)
    v0 += struct.pack(">h", 3) + b"m-1" + struct.pack(">i", 2) + b"{}"
    v0 += struct.pack(">i", 1) + struct.pack(">h", 1) + b"t" + struct.pack(">ii", 1, 4)
    assert decode_peers(v0) == (GroupPeer("m-1", b"{}", frozenset({TP("t", 4)})),)


def test_user_data_that_is_not_a_peer_list_is_none_and_a_broken_one_is_refused() -> None:
    assert decode_peers(None) is None
    assert decode_peers(b"") is None
    assert decode_peers(b"sticky-assignor-data") is None
    shared = encode_peers(PEERS)
    for cut in range(len(b"streamlog.peers"), len(shared)):
        with pytest.raises(MalformedMemberDataError):
            decode_peers(shared[:cut])
    # a hostile peer count is refused before anything is allocated for it
    hostile = b"streamlog.peers" + struct.pack(">hi", 0, 1 << 30)
    with pytest.raises(MalformedMemberDataError):
        decode_peers(hostile)


def test_newer_subscription_versions_are_read() -> None:
    """Java writes ConsumerProtocolSubscription v3 (owned partitions, generation, rack):
    the fields we use are read and the rest ignored."""
    from kio.schema.consumer_protocol_subscription.v3.data import (
        ConsumerProtocolSubscription,
        TopicPartition,
    )
    from kio.serial import entity_writer

    buffer = io.BytesIO()
    buffer.write(struct.pack(">h", 3))
    entity_writer(ConsumerProtocolSubscription)(
        buffer,
        ConsumerProtocolSubscription(
            topics=("orders", "users"),
            user_data=b"u",
            owned_partitions=(TopicPartition(topic="orders", partitions=(0, 2)),),
            generation_id=7,
            rack_id="rack-a",
        ),
    )
    assert decode_subscription(buffer.getvalue()) == Subscription(
        ("orders", "users"), b"u", frozenset({TP("orders", 0), TP("orders", 2)})
    )


def test_a_cooperative_subscription_says_what_the_member_owns() -> None:
    owned = {TP("orders", 1), TP("users", 1)}
    data = encode_subscription(["users", "orders"], b"card", owned)
    assert struct.unpack(">h", data[:2]) == (1,)
    assert decode_subscription(data) == Subscription(("orders", "users"), b"card", frozenset(owned))
    # a v0 subscription (what eager members send) owns nothing
    assert decode_subscription(encode_subscription(["orders"])).owned == frozenset()


# ---------------------------------------------------------------------------------------
# real groups


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, frozenset[TP]]] = []

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.events.append(("revoked", frozenset(revoked)))

    async def on_partitions_assigned(self, assigned: set[TP]) -> None:
        self.events.append(("assigned", frozenset(assigned)))


async def poll_until(consumers: list[Any], done: Any, what: str, timeout: float = 60) -> None:
    """Keep every member polling (heartbeats run in the background regardless) until
    ``done()``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():
        if loop.time() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {what}")
        await asyncio.gather(*(c.getmany(timeout_ms=100) for c in consumers))


def test_two_members_split_and_rebalance_with_callbacks_in_order(kafka: KafkaCase) -> None:
    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("split")
        group = kafka.name("split-group")
        await transport.admin().create_topic(topic, 4)
        everything = {TP(topic, p) for p in range(4)}

        a_events, b_events = Recorder(), Recorder()
        a = kafka.consumer(transport, group_id=group, client_id="member-a")
        await a.subscribe([topic], a_events)
        assert a.assignment() == everything
        assert a_events.events == [("assigned", frozenset(everything))]

        b = kafka.consumer(transport, group_id=group, client_id="member-b")
        await b.subscribe([topic], b_events)
        await poll_until([a], lambda: len(a.assignment()) == 2, "A down to 2 partitions")
        assert a.assignment() | b.assignment() == everything
        assert not a.assignment() & b.assignment()
        # Range over sorted member ids: whoever sorts first gets partitions 0 and 1.
        assert {frozenset(a.assignment()), frozenset(b.assignment())} == {
            frozenset({TP(topic, 0), TP(topic, 1)}),
            frozenset({TP(topic, 2), TP(topic, 3)}),
        }
        assert a_events.events == [
            ("assigned", frozenset(everything)),
            ("revoked", frozenset(everything)),
            ("assigned", frozenset(a.assignment())),
        ]
        assert b_events.events == [("assigned", frozenset(b.assignment()))]

        # Records produced now are read once, each by the member owning its partition.
        producer = transport.producer(linger_ms=0)
        for i in range(40):
            await producer.send(topic, b"%d" % i, partition=i % 4)
        await producer.flush()
        got_a, got_b = await asyncio.gather(read_records(a, 20), read_records(b, 20))
        assert {r.partition for r in got_a} == {tp.partition for tp in a.assignment()}
        assert {r.partition for r in got_b} == {tp.partition for tp in b.assignment()}
        assert sorted(int(r.value) for r in got_a + got_b) == list(range(40))
        await a.commit()
        await b.commit()

        # B leaves: it is told first, then A gives up its half and gets everything.
        b_had = frozenset(b.assignment())
        a_had = frozenset(a.assignment())
        await b.close()
        assert b_events.events[-1] == ("revoked", b_had)
        await poll_until([a], lambda: a.assignment() == everything, "A owns all 4 again")
        assert a_events.events[-2:] == [("revoked", a_had), ("assigned", frozenset(everything))]
        # A continues from the commits: nothing is read twice.
        for i in range(40, 48):
            await producer.send(topic, b"%d" % i, partition=i % 4)
        await producer.flush()
        again = await read_records(a, 8)
        assert sorted(int(r.value) for r in again) == list(range(40, 48))
        await transport.close()

    run(body(), timeout=150)


def test_cooperative_members_keep_what_stays_put_through_joins_and_leaves(
    kafka: KafkaCase,
) -> None:
    """KIP-429 over the classic protocol: a joining member takes its share in a second
    round after the owner revoked only that share; the rest is never revoked. Ownership
    is checked at every callback: no partition is held by two members at once."""

    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("coop")
        group = kafka.name("coop-group")
        await transport.admin().create_topic(topic, 6)
        everything = {TP(topic, p) for p in range(6)}
        held: dict[TP, str] = {}

        class Owner(Recorder):
            def __init__(self, name: str) -> None:
                super().__init__()
                self.name = name

            async def on_partitions_revoked(self, revoked: set[TP]) -> None:
                for tp in revoked:
                    assert held.pop(tp) == self.name
                await super().on_partitions_revoked(revoked)

            async def on_partitions_assigned(self, assigned: set[TP]) -> None:
                for tp in assigned:
                    assert tp not in held, f"{tp} given to {self.name} while {held[tp]} holds it"
                    held[tp] = self.name
                await super().on_partitions_assigned(assigned)

        # with a standby replica per partition, shared by the leader in the peer list
        coop: dict[str, Any] = {
            "partition_assignment_strategy": ("cooperative-sticky",),
            "standby_replicas": 1,
        }
        a_events, b_events = Owner("a"), Owner("b")
        a = kafka.consumer(transport, group_id=group, client_id="coop-a", **coop)
        await a.subscribe([topic], a_events, user_data=b"")
        assert a.assignment() == everything
        assert a.standby_assignment() == frozenset()  # alone: nobody to keep a copy
        b = kafka.consumer(transport, group_id=group, client_id="coop-b", **coop)
        await b.subscribe([topic], b_events, user_data=b"")
        await poll_until(
            [a, b],
            lambda: (
                len(a.assignment()) == 3 == len(b.assignment())
                and a.standby_assignment() == frozenset(b.assignment())
            ),
            "3 and 3, each the other's standby",
        )
        kept = frozenset(a.assignment())
        moved = frozenset(everything - kept)
        assert b.standby_assignment() == kept
        # a gave up only what moved; b got it in its own round
        assert ("revoked", moved) in a_events.events
        assert all(kind == "assigned" or parts == moved for kind, parts in a_events.events)
        assert frozenset(b.assignment()) == moved
        assert [p for kind, p in b_events.events if kind == "revoked"] == []
        # records read once each, by their partition's member
        producer = transport.producer(linger_ms=0)
        for i in range(36):
            await producer.send(topic, b"%d" % i, partition=i % 6)
        await producer.flush()
        got_a, got_b = await asyncio.gather(read_records(a, 18), read_records(b, 18))
        assert sorted(int(r.value) for r in got_a + got_b) == list(range(36))
        assert {TP(topic, r.partition) for r in got_a} == kept
        await a.commit()
        await b.commit()
        # b leaves: a is given b's partitions and revokes nothing
        revokes_before = [e for e in a_events.events if e[0] == "revoked"]
        await b.close()
        await poll_until([a], lambda: a.assignment() == everything, "a owns all 6 again")
        assert a.standby_assignment() == frozenset()
        assert [e for e in a_events.events if e[0] == "revoked"] == revokes_before
        assert a_events.events[-1] == ("assigned", moved)
        for i in range(36, 42):
            await producer.send(topic, b"%d" % i, partition=i % 6)
        await producer.flush()
        again = await read_records(a, 6)
        assert sorted(int(r.value) for r in again) == list(range(36, 42))  # from b's commit
        await transport.close()

    run(body(), timeout=150)


def test_joining_is_true_while_a_join_round_is_in_flight(kafka: KafkaCase) -> None:
    """``joining()`` (what the streams layer's periodic commit waits out: a commit sent
    then queues behind the JoinGroup and is refused as of the old generation): true while
    a cooperative member that gave a partition up waits in its second round for the
    joiner, false once the group is stable."""

    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("joining")
        group = kafka.name("joining-group")
        await transport.admin().create_topic(topic, 2)
        coop = {"partition_assignment_strategy": ("cooperative-sticky",)}
        a = kafka.consumer(transport, group_id=group, client_id="joining-a", **coop)
        assert not a.joining()  # no group yet
        await a.subscribe([topic])
        assert not a.joining()
        b = kafka.consumer(transport, group_id=group, client_id="joining-b", **coop)
        subscribing = asyncio.ensure_future(b.subscribe([topic]))
        seen: set[bool] = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not (len(a.assignment()) == 1 == len(b.assignment())):
            assert loop.time() < deadline, "the group never split"
            seen.add(a.joining())
            await a.getmany(timeout_ms=5)
            if subscribing.done():
                await b.getmany(timeout_ms=5)
        await subscribing
        assert seen == {True, False}
        assert not a.joining() and not b.joining()
        await transport.close()

    run(body(), timeout=90)


def test_mixed_group_with_aiokafka(kafka: KafkaCase) -> None:
    """Our member and an aiokafka member agree on the protocol and formats: whoever
    leads, the partitions are split and each side reads its own."""
    aiokafka = pytest.importorskip("aiokafka")

    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("mixed")
        group = kafka.name("mixed-group")
        await transport.admin().create_topic(topic, 4)
        ours = kafka.consumer(transport, group_id=group)
        await ours.subscribe([topic])
        from aiokafka.coordinator.assignors.range import RangePartitionAssignor
        from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

        # aiokafka offers roundrobin only, we offer range then roundrobin: the broker
        # must settle on roundrobin. Tansu does not look for the common one (it answers
        # INCONSISTENT_GROUP_PROTOCOL), so there both offer the same list.
        strategies: tuple[Any, ...] = (RoundRobinPartitionAssignor,)
        if kafka.kind == "tansu":
            strategies = (RangePartitionAssignor, RoundRobinPartitionAssignor)
        theirs = aiokafka.AIOKafkaConsumer(
            topic,
            bootstrap_servers=f"{kafka.host}:{kafka.port}",
            group_id=group,
            session_timeout_ms=6000,
            heartbeat_interval_ms=300,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            partition_assignment_strategy=strategies,
        )
        try:
            await theirs.start()

            def split() -> bool:
                mine = {tp.partition for tp in ours.assignment()}
                other = {tp.partition for tp in theirs.assignment()}
                return len(mine) == len(other) == 2 and mine | other == {0, 1, 2, 3}

            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while not split():
                assert loop.time() < deadline, (ours.assignment(), theirs.assignment())
                await asyncio.gather(ours.getmany(timeout_ms=100), theirs.getmany(timeout_ms=100))
            producer = transport.producer(linger_ms=0)
            for i in range(20):
                await producer.send(topic, b"%d" % i, partition=i % 4)
            await producer.flush()
            mine = await read_records(ours, 10)
            assert {r.partition for r in mine} == {tp.partition for tp in ours.assignment()}
        finally:
            await theirs.stop()
            await transport.close()

    run(body(), timeout=150)


def test_leader_rebalances_when_partitions_are_added(kafka: KafkaCase) -> None:
    kafka.skip_on_tansu("does not implement CreatePartitions")

    async def body() -> None:
        transport = kafka.transport()
        topic = kafka.name("grow")
        group = kafka.name("grow-group")
        admin = transport.admin()
        await admin.create_topic(topic, 2)
        events = Recorder()
        consumer = kafka.consumer(transport, group_id=group)
        await consumer.subscribe([topic], events)
        assert consumer.assignment() == {TP(topic, 0), TP(topic, 1)}
        await admin.add_partitions(topic, 3)
        await poll_until(
            [consumer], lambda: len(consumer.assignment()) == 3, "the third partition", 30
        )
        assert events.events[-2][0] == "revoked"
        await transport.close()

    run(body())


def test_group_errors_are_transport_errors(kafka: KafkaCase) -> None:
    async def body() -> None:
        transport = kafka.transport()
        consumer = transport.consumer(group_id="")  # an empty group id is refused
        with pytest.raises(TransportError):
            await consumer.subscribe([kafka.name("nothing")])
        await transport.close()

    run(body())
