"""Transactions, the same scenarios on every transport: ``memory://``, ``file://``,
``kafka://`` on ``streamlog broker`` and ``kafka://`` on Tansu (the ``transport`` fixture,
``conftest.py``). What passes here is what an app may rely on whichever URL it runs on.

A kafka broker that refuses transactional ids is probed as ``test_kafka_transactions.py``
probes it, and its cases skip with the broker's own answer as the reason (``streamlog
broker`` and Tansu both have transaction coordinators). Tansu's known differences are declared
below and change the expected values (or skip) on Tansu only.

The last test kills (SIGKILL) a process in the middle of its transactions on a
``file://`` log and reopens the log: the open transactions are aborted, one when its
transactional id is initialised again, the other when it times out, and nothing of
them is ever visible to read_committed readers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from streamlog.transport.embedded import EmbeddedTransport
from streamlog.transport.errors import (
    ProducerFencedError,
    TransactionAbortableError,
    TransactionError,
    TransactionStateError,
)
from streamlog.transport.types import ConsumerRecord, OffsetAndMetadata, TopicPartition

from .conftest import TransportCase
from .test_kafka_connection import KafkaCase
from .test_kafka_transactions import _refusal

pytestmark = pytest.mark.timeout(120)

# Tansu 0.6's transaction quirks (the same ones test_kafka_transactions.py records).
ABORTED_VISIBLE = "aborted_visible"
NO_GENERATION_CHECK = "no_generation_check"
TXN_QUIRKS = {
    ABORTED_VISIBLE: "its Fetch responses list no aborted transactions, so read_committed "
    "readers get aborted records",
    NO_GENERATION_CHECK: "its TxnOffsetCommit does not check the member's generation",
}

# kind -> why the broker cannot run transactions (None: it can); probed once a session
_REFUSALS: dict[str, str | None] = {}


def has_quirk(case: TransportCase, quirk: str) -> bool:
    return case.kind == "kafka-tansu" and quirk in TXN_QUIRKS


def skip_if(case: TransportCase, quirk: str) -> None:
    if has_quirk(case, quirk):
        pytest.skip(f"Tansu: {TXN_QUIRKS[quirk]}")


@pytest.fixture
def txn(transport: TransportCase) -> TransportCase:
    """``transport``, skipped (with the broker's answer) where it has no transactions."""
    case = transport
    if case.is_kafka:
        if case.kind not in _REFUSALS:
            host, port = case.url.removeprefix("kafka://").rsplit(":", 1)
            probe = KafkaCase(case.kind.removeprefix("kafka-"), host, int(port))
            _REFUSALS[case.kind] = case.run(_refusal(probe))
        reason = _REFUSALS[case.kind]
        if reason is not None:
            pytest.skip(f"{case.kind} broker has no transactions: {reason}")
    return case


# ---------------------------------------------------------------------------------------
# helpers


async def transactional(case: TransportCase, **options: Any) -> Any:
    """An initialised transactional producer."""
    options.setdefault("transactional_id", case.group("txn-id"))
    producer = case.transport.producer(**options)
    await producer.init_transactions()
    return producer


async def new_topic(case: TransportCase, prefix: str, partitions: int = 1) -> str:
    topic = case.topic(prefix)
    await case.transport.admin().create_topic(topic, partitions)
    return topic


async def read_all(
    consumer: Any, count: int, timeout: float = 20.0
) -> dict[TopicPartition, list[tuple[int, bytes | None]]]:
    """(offset, value) per partition once ``count`` records came, then one more poll to
    catch extras; fails with what came if they do not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: dict[TopicPartition, list[tuple[int, bytes | None]]] = {}

    def add(batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for tp, records in batches.items():
            seen.setdefault(tp, []).extend((r.offset, r.value) for r in records)

    while sum(map(len, seen.values())) < count:
        if loop.time() > deadline:
            raise AssertionError(f"{count} records expected in {timeout} s, got {seen}")
        add(await consumer.getmany(timeout_ms=200))
    add(await consumer.getmany(timeout_ms=300))
    return seen


def reader(case: TransportCase, level: str, *partitions: TopicPartition) -> Any:
    consumer = case.transport.consumer(isolation_level=level)
    consumer.assign(partitions)
    return consumer


# ---------------------------------------------------------------------------------------
# commit and abort


def test_a_commit_shows_records_and_offsets_together(txn: TransportCase) -> None:
    """Records on two partitions and a group's offsets: invisible to read_committed and
    uncommitted before the commit, all there after it; a read_committed reader that was
    waiting is woken by the commit."""
    case = txn

    async def body() -> None:
        out = await new_topic(case, "txn-commit-out", 2)
        source = await new_topic(case, "txn-commit-src")
        group = case.group("txn-commit")
        out0, out1, src = TopicPartition(out, 0), TopicPartition(out, 1), TopicPartition(source, 0)
        observer = case.consumer(group_id=group)
        committed_reader = reader(case, "read_committed", out0, out1)
        waiting = asyncio.ensure_future(committed_reader.getmany(timeout_ms=20_000))

        producer = await transactional(case)
        producer.begin_transaction()
        for i in range(3):
            await producer.send(out, b"a%d" % i, partition=0)
        for i in range(2):
            await producer.send(out, b"b%d" % i, partition=1)
        await producer.flush()
        await producer.send_offsets_to_transaction({src: OffsetAndMetadata(7, "seven")}, group)

        uncommitted = await read_all(reader(case, "read_uncommitted", out0, out1), 5)
        assert uncommitted == {
            out0: [(0, b"a0"), (1, b"a1"), (2, b"a2")],
            out1: [(0, b"b0"), (1, b"b1")],
        }
        assert not waiting.done()  # nothing is stable yet
        assert await observer.committed(src) is None  # the offsets wait for the commit

        await producer.commit_transaction()
        seen: dict[TopicPartition, list[tuple[int, bytes | None]]] = {}
        for tp, records in (await waiting).items():
            seen.setdefault(tp, []).extend((r.offset, r.value) for r in records)
        assert seen, "the commit did not wake the waiting read_committed reader"
        missing = 5 - sum(map(len, seen.values()))
        for tp, pairs in (await read_all(committed_reader, missing)).items():
            seen.setdefault(tp, []).extend(pairs)
        assert seen == {
            out0: [(0, b"a0"), (1, b"a1"), (2, b"a2")],
            out1: [(0, b"b0"), (1, b"b1")],
        }
        assert await observer.committed(src) == 7
        # each partition: the records and the commit marker
        assert await committed_reader.position(out0) == 4
        assert await committed_reader.position(out1) == 3
        assert await committed_reader.end_offsets([out0, out1]) == {out0: 4, out1: 3}
        await producer.close()

    case.run(body())


def test_an_abort_is_seen_by_read_uncommitted_only(txn: TransportCase) -> None:
    """Committed, aborted (one record written, one still lingering, offsets sent),
    committed: read_committed readers get the committed records only, read_uncommitted
    readers the aborted one too; the lingering record never reaches the log, and the
    aborted offsets never become the group's."""
    case = txn

    async def body() -> None:
        out = await new_topic(case, "txn-abort-out")
        source = await new_topic(case, "txn-abort-src")
        group = case.group("txn-abort")
        tp, src = TopicPartition(out, 0), TopicPartition(source, 0)
        producer = await transactional(case, linger_ms=60_000)

        producer.begin_transaction()
        first = [await producer.send(out, b"c1-%d" % i, partition=0) for i in range(3)]
        await producer.send_offsets_to_transaction({src: 3}, group)
        await producer.commit_transaction()
        assert [(await h).offset for h in first] == [0, 1, 2]

        producer.begin_transaction()
        aborted = await producer.send(out, b"aborted", partition=0)
        await producer.flush()
        assert (await aborted).offset == 4  # after c1 and its commit marker
        lingering = await producer.send(out, b"never", partition=0)
        await producer.send_offsets_to_transaction({src: 9}, group)
        await producer.abort_transaction()
        with pytest.raises(TransactionError, match="aborted before the record was sent"):
            await lingering

        producer.begin_transaction()
        last = await producer.send(out, b"c2", partition=0)
        await producer.send_offsets_to_transaction({src: 4}, group)
        await producer.commit_transaction()
        assert (await last).offset == 6  # after the abort marker
        await producer.close()

        everything = [(0, b"c1-0"), (1, b"c1-1"), (2, b"c1-2"), (4, b"aborted"), (6, b"c2")]
        committed = [pair for pair in everything if pair[1] != b"aborted"]
        if has_quirk(case, ABORTED_VISIBLE):
            committed = everything
        committed_reader = reader(case, "read_committed", tp)
        assert await read_all(committed_reader, len(committed)) == {tp: committed}
        assert await committed_reader.position(tp) == 8  # five records, three markers
        assert await read_all(reader(case, "read_uncommitted", tp), 5) == {tp: everything}
        observer = case.consumer(group_id=group)
        assert await observer.committed(src) == 4  # 3, then 4; never the aborted 9

    case.run(body())


def test_a_second_producer_with_the_same_id_fences_the_first(txn: TransportCase) -> None:
    case = txn

    async def body() -> None:
        topic = await new_topic(case, "txn-fence")
        tid = case.group("fenced-id")
        first = await transactional(case, transactional_id=tid)
        first.begin_transaction()
        await (await first.send(topic, b"zombie-1", partition=0))

        second = await transactional(case, transactional_id=tid)  # fences the first
        second.begin_transaction()
        await second.send(topic, b"second", partition=0)
        await second.commit_transaction()

        late = await first.send(topic, b"zombie-2", partition=0)
        with pytest.raises(ProducerFencedError):
            await late
        with pytest.raises(ProducerFencedError):
            await first.commit_transaction()
        with pytest.raises(ProducerFencedError):  # fatal: every later call says so
            await first.send(topic, b"zombie-3", partition=0)
        with pytest.raises(ProducerFencedError):
            first.begin_transaction()
        with pytest.raises(ProducerFencedError):
            await first.abort_transaction()
        await first.close()
        await second.close()

        tp = TopicPartition(topic, 0)
        expected = [(2, b"second")]
        if has_quirk(case, ABORTED_VISIBLE):
            expected = [(0, b"zombie-1"), (2, b"second")]
        assert await read_all(reader(case, "read_committed", tp), len(expected)) == {tp: expected}
        # The second's init aborted the zombie's transaction: its marker took offset 1.
        assert await read_all(reader(case, "read_uncommitted", tp), 2) == {
            tp: [(0, b"zombie-1"), (2, b"second")]
        }

    case.run(body())


def test_calls_out_of_order_are_refused(txn: TransportCase) -> None:
    case = txn

    async def body() -> None:
        topic = await new_topic(case, "txn-order")
        tp = TopicPartition(topic, 0)
        plain = case.transport.producer()
        with pytest.raises(TransactionStateError, match="no transactional_id"):
            plain.begin_transaction()
        await plain.close()
        with pytest.raises(ValueError, match="acks=-1"):
            case.transport.producer(transactional_id="x", acks=1)
        producer = case.transport.producer(transactional_id=case.group("order-id"))
        with pytest.raises(TransactionStateError, match="begin_transaction: .*uninitialized"):
            producer.begin_transaction()
        with pytest.raises(TransactionStateError, match="send: not possible while uninitialized"):
            await producer.send(topic, b"x", partition=0)
        await producer.init_transactions()
        with pytest.raises(TransactionStateError, match="init_transactions"):
            await producer.init_transactions()
        with pytest.raises(TransactionStateError, match="send: not possible while ready"):
            await producer.send(topic, b"x", partition=0)
        with pytest.raises(TransactionStateError, match="commit_transaction"):
            await producer.commit_transaction()
        with pytest.raises(TransactionStateError, match="abort_transaction"):
            await producer.abort_transaction()
        with pytest.raises(TransactionStateError, match="send_offsets_to_transaction"):
            await producer.send_offsets_to_transaction({tp: 1}, "g")
        producer.begin_transaction()
        with pytest.raises(TransactionStateError, match="begin_transaction"):
            producer.begin_transaction()
        await producer.send(topic, b"in", partition=0)
        await producer.commit_transaction()
        with pytest.raises(TransactionStateError, match="send: not possible while ready"):
            await producer.send(topic, b"after", partition=0)
        await producer.close()
        assert await read_all(reader(case, "read_committed", tp), 1) == {tp: [(0, b"in")]}

    case.run(body())


# ---------------------------------------------------------------------------------------
# KIP-447: offsets of a zombie member are refused


def test_offsets_of_an_older_generation_are_refused(txn: TransportCase) -> None:
    """A member's group metadata from before a rebalance (and a generation the group
    never had) cannot commit offsets in a transaction: the transaction must be aborted;
    the member's current metadata then commits."""
    case = txn
    skip_if(case, NO_GENERATION_CHECK)

    async def body() -> None:
        source = await new_topic(case, "txn-zombie-src", 2)
        group = case.group("txn-zombie")
        tp = TopicPartition(source, 0)
        member = case.consumer(group_id=group)
        await member.subscribe([source])
        old = member.group_metadata()
        assert old.group_id == group and old.generation_id >= 0 and old.member_id

        # A second member joins: a new generation, which the first completes by polling.
        other = case.consumer(group_id=group)

        async def poll_until_rejoined() -> None:
            while member.group_metadata().generation_id == old.generation_id:
                await member.getmany(timeout_ms=100)

        await asyncio.gather(other.subscribe([source]), poll_until_rejoined())
        current = member.group_metadata()
        assert current.generation_id > old.generation_id
        assert current.member_id == old.member_id

        producer = await transactional(case)
        for stale in (old, current._replace(generation_id=current.generation_id + 5)):
            producer.begin_transaction()
            with pytest.raises(TransactionAbortableError):
                await producer.send_offsets_to_transaction({tp: 3}, stale)
            with pytest.raises(TransactionAbortableError, match="must be aborted"):
                await producer.commit_transaction()
            await producer.abort_transaction()
        owned = next(iter(member.assignment()))
        producer.begin_transaction()
        await producer.send_offsets_to_transaction({owned: 2}, current)
        await producer.commit_transaction()
        assert await member.committed(owned) == 2
        await producer.close()
        await other.close()
        await member.close()

    case.run(body())


# ---------------------------------------------------------------------------------------
# a process killed in the middle of its transactions (file:// only)

_VICTIM = textwrap.dedent(
    """
    import asyncio, sys
    from streamlog.transport.embedded import EmbeddedTransport
    from streamlog.transport.types import TopicPartition

    async def main(url):
        transport = EmbeddedTransport(url)
        await transport.start()
        await transport.admin().create_topic("out", 2)
        src = TopicPartition("src", 0)
        done = transport.producer(transactional_id="id-a")
        await done.init_transactions()
        done.begin_transaction()
        for i in range(2):
            await done.send("out", b"c-%d" % i, partition=0)
        await done.send_offsets_to_transaction({src: 2}, "victims")
        await done.commit_transaction()
        # two transactions left open: one that is initialised again, one that times out
        again = done
        again.begin_transaction()
        for i in range(3):
            await again.send("out", b"open-a-%d" % i, partition=0)
        await again.send_offsets_to_transaction({src: 5}, "victims")
        await again.flush()
        expiring = transport.producer(transactional_id="id-b", transaction_timeout_ms=1000)
        await expiring.init_transactions()
        expiring.begin_transaction()
        await expiring.send("out", b"open-b", partition=1)
        await expiring.flush()
        print("ready", flush=True)
        await asyncio.sleep(120)

    asyncio.run(main(sys.argv[1]))
    """
)


def test_a_killed_process_leaves_no_partial_transaction(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'log'}"
    victim = subprocess.Popen(
        [sys.executable, "-c", _VICTIM, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    try:
        assert victim.stdout is not None
        line = victim.stdout.readline()  # bounded by the test's timeout
        assert line == "ready\n", victim.stderr.read() if victim.stderr else line
    finally:
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(30)
    assert victim.returncode == -signal.SIGKILL

    async def body() -> None:
        transport = EmbeddedTransport(url, maintenance_interval_ms=100)
        await transport.start()
        try:
            out0, out1 = TopicPartition("out", 0), TopicPartition("out", 1)
            src = TopicPartition("src", 0)
            case = _Local(transport)
            committed = [(0, b"c-0"), (1, b"c-1")]
            open_a = [(3, b"open-a-0"), (4, b"open-a-1"), (5, b"open-a-2")]
            # Before id-a is initialised again its transaction is open: read_committed
            # readers stop at it, read_uncommitted ones see it; its offsets are pending.
            assert await read_all(case.reader("read_committed", out0), 2) == {out0: committed}
            assert await read_all(case.reader("read_uncommitted", out0), 5) == {
                out0: committed + open_a
            }
            observer = transport.consumer(group_id="victims")
            assert await observer.committed(src) == 2
            assert await case.reader("read_committed", out0).end_offsets([out0]) == {out0: 3}

            again = transport.producer(transactional_id="id-a")
            await again.init_transactions()  # aborts the killed one's transaction
            everything = case.reader("read_committed", out0)
            assert await read_all(everything, 2) == {out0: committed}
            assert await everything.position(out0) == 7  # past the abort marker at 6
            assert await everything.end_offsets([out0]) == {out0: 7}
            assert await observer.committed(src) == 2  # the aborted 5 never lands
            again.begin_transaction()
            await again.send("out", b"c-after", partition=0)
            await again.commit_transaction()
            assert await read_all(everything, 1) == {out0: [(7, b"c-after")]}

            # id-b's transaction times out (1 s) and the transport's coordinator aborts
            # it: out-1's last stable offset moves past its abort marker.
            timed_out = case.reader("read_committed", out1)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while (await timed_out.end_offsets([out1]))[out1] != 2:
                assert loop.time() < deadline, "id-b's transaction was not aborted"
                await timed_out.getmany(timeout_ms=100)
            assert await timed_out.getmany(timeout_ms=100) == {}
            assert await timed_out.position(out1) == 2
            assert await read_all(case.reader("read_uncommitted", out1), 1) == {
                out1: [(0, b"open-b")]
            }
            await again.close()
        finally:
            await transport.close()

    asyncio.run(asyncio.wait_for(body(), 60))


class _Local:
    """``reader`` for a transport made in the test itself."""

    def __init__(self, transport: EmbeddedTransport) -> None:
        self.transport = transport

    def reader(self, level: str, *partitions: TopicPartition) -> Any:
        consumer = self.transport.consumer(isolation_level=level)
        consumer.assign(partitions)
        return consumer
