"""The conductor on its own, over a real ``memory://`` log and consumer group, with a small
host in place of the app (``ConductorHost``): when records reach inboxes, what is
committed, and what revocations and losses do."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from streamlog.dsl.errors import StreamlogError
from streamlog.dsl.runtime.barrier import ProcessingBarrier
from streamlog.dsl.runtime.clock import SystemAsyncClock
from streamlog.dsl.runtime.conductor import Conductor
from streamlog.dsl.runtime.inbox import Inbox
from streamlog.dsl.settings import Settings
from streamlog.serde import Schema
from streamlog.transport import open_transport
from streamlog.transport.errors import BrokerUnavailableError
from streamlog.transport.types import TopicPartition
from tests.dsl.helpers import run, wait_for

TOPIC = "orders"
TP = TopicPartition(TOPIC, 0)


class Host:
    """What the app does for the conductor, recorded; preparation can be held or fail."""

    def __init__(self, transport: Any) -> None:
        self.conf = Settings(id="conductor-test", broker="memory://", broker_commit_interval=3600)
        self.clock = SystemAsyncClock()
        self.barrier: ProcessingBarrier | None = ProcessingBarrier()
        self._transport = transport
        self.conductor: Conductor | None = None
        self.crashed: BaseException | None = None
        self.ready = asyncio.Event()
        self.ready.set()
        self.failures: list[BaseException] = []  # raised by the next preparations
        self.prepared: list[set[TopicPartition]] = []
        self.assigned: list[set[TopicPartition]] = []
        self.revoked: list[set[TopicPartition]] = []
        self.discarded = 0
        self.rebalances = 0
        self.completed = 0
        self.checkpoints: list[dict[TopicPartition, int]] = []

    @property
    def transport(self) -> Any:
        return self._transport

    def crash(self, reason: BaseException) -> None:
        self.crashed = reason

    async def checkpoint(self, offsets: dict[TopicPartition, int]) -> None:
        self.checkpoints.append(dict(offsets))
        assert self.conductor is not None
        await self.conductor.commit_offsets(offsets)

    async def prepare_partitions(self, assigned: set[TopicPartition]) -> None:
        await self.ready.wait()
        if self.failures:
            raise self.failures.pop(0)
        self.prepared.append(set(assigned))

    async def partitions_ready(self, assigned: set[TopicPartition]) -> None:
        self.assigned.append(set(assigned))

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.revoked.append(set(revoked))

    def drop_revoked(self) -> int:
        return 0

    async def discard_uncommitted(self) -> None:
        self.discarded += 1

    def rebalance_started(self) -> None:
        self.rebalances += 1

    async def rebalance_complete(self) -> None:
        self.completed += 1

    standby_replicas = 0  # no tables to keep warm

    def standbys_assigned(
        self, standby: frozenset[TopicPartition], held: set[TopicPartition]
    ) -> None:
        assert standby == frozenset()  # none asked for, none given


async def started(values: int = 5) -> tuple[Any, Host, Conductor, Inbox]:
    transport = open_transport("memory://")
    await transport.start()
    await transport.admin().create_topic(TOPIC, 1)
    producer = transport.producer()
    for i in range(values):
        await producer.send(TOPIC, b"%d" % i, partition=0)
    await producer.flush()
    host = Host(transport)
    conductor = Conductor(host)
    host.conductor = conductor
    inbox = Inbox("orders", maxsize=64)
    conductor.attach(SimpleNamespace(name=TOPIC, schema=Schema()), inbox)
    return transport, host, conductor, inbox


async def stopped(transport: Any, conductor: Conductor) -> None:
    await conductor.stop_fetching()
    await conductor.close()
    await transport.close()


def test_no_record_reaches_an_inbox_before_its_partition_is_prepared():
    async def body() -> tuple[bool, list[int]]:
        transport, host, conductor, inbox = await started()
        host.ready.clear()  # the table recovery takes its time
        starting = asyncio.ensure_future(conductor.start())

        async def first_batch() -> tuple[bool, list[int]]:
            got = await inbox.get()
            offsets = [r.offset for r in got.records] if got is not None else []
            return bool(host.prepared), offsets

        reading = asyncio.ensure_future(first_batch())
        # the new partition is paused while it is prepared
        await wait_for(lambda: conductor.consumer is not None)
        await wait_for(lambda: conductor.consumer.paused() == {TP})
        host.ready.set()
        await starting
        result = await reading
        assert conductor.consumer.paused() == set()
        await stopped(transport, conductor)
        return result

    prepared_first, offsets = run(body())
    assert prepared_first  # the batch came after the preparation finished
    assert offsets == [0, 1, 2, 3, 4]


def test_a_failed_preparation_is_retried_and_a_broken_state_crashes():
    async def body() -> tuple[list[set[TopicPartition]], BaseException | None, int]:
        transport, host, conductor, inbox = await started()
        host.failures = [BrokerUnavailableError("the broker restarts")]  # an outage
        await conductor.start()
        retried = list(host.prepared)
        got = await inbox.get()
        count = len(got.records) if got is not None else 0
        await stopped(transport, conductor)

        transport, host, conductor, _ = await started()
        host.failures = [StreamlogError("a store that cannot be opened")]
        await conductor.start()
        crashed = host.crashed
        await stopped(transport, conductor)
        return retried, crashed, count

    retried, crashed, count = run(body())
    assert retried == [{TP}]  # the failed attempt, then the one that worked
    assert count == 5
    assert isinstance(crashed, StreamlogError)


def test_revocation_commits_what_was_processed_and_abandons_the_rest():
    async def body() -> tuple[dict[TopicPartition, int], bool, list[set[TopicPartition]]]:
        transport, host, conductor, inbox = await started()
        await conductor.start()
        got = await inbox.get()
        assert got is not None
        got.ack_upto(3)  # offsets 0, 1, 2 processed; 3 and 4 not
        await conductor.on_partitions_revoked({TP})
        committed = await conductor.consumer.committed(TP)
        revoked_batch, revoked = got.revoked, list(host.revoked)
        await stopped(transport, conductor)
        return {TP: committed}, revoked_batch, revoked

    committed, revoked_batch, revoked = run(body())
    assert committed == {TP: 3}
    assert revoked_batch  # an agent reading it stops at the next record
    assert revoked == [{TP}]


def test_a_lost_partition_commits_nothing_and_drops_the_uncommitted_work():
    async def body() -> tuple[int | None, int, bool]:
        transport, host, conductor, inbox = await started()
        await conductor.start()
        got = await inbox.get()
        assert got is not None
        got.ack_upto(3)  # three processed, none committed yet
        await conductor.on_partitions_lost({TP})
        committed = await conductor.consumer.committed(TP)
        await stopped(transport, conductor)
        return committed, host.discarded, got.revoked

    committed, discarded, revoked = run(body())
    assert committed is None  # the next owner starts where the last commit left off
    assert discarded == 1
    assert revoked
