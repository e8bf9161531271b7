"""The mirror engine in-process, between two bundled logs (``file://``): what it copies,
how it resumes after a crash (records already on the target are matched, not copied
again), what it refuses, and how group offsets are translated. The same engine over the
Kafka protocol, through the ``streamlog mirror`` command, is in test_mirror_clusters.py.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from streamlog.mirror import Mirror, MirrorOptions, NoTopicsError, TargetDivergedError
from streamlog.mirror.state import CHECKPOINTS_TOPIC, OFFSET_SYNCS_TOPIC
from streamlog.transport import open_transport
from streamlog.transport.base import Transport
from streamlog.transport.types import ConsumerRecord, TopicPartition

pytestmark = pytest.mark.timeout(60)


async def read_all(transport: Transport, topic: str, **kwargs) -> list[ConsumerRecord]:  # type: ignore[no-untyped-def]
    info = await transport.admin().describe_topic(topic)
    tps = [TopicPartition(topic, p.partition) for p in info.partitions]
    consumer = transport.consumer(**kwargs)
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    ends = await consumer.end_offsets(tps)
    out: list[ConsumerRecord] = []
    try:
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out += records
    finally:
        await consumer.close()
    return sorted(out, key=lambda r: (r.partition, r.offset))


def content(records: list[ConsumerRecord]) -> list[tuple[object, ...]]:
    """What must survive a mirror: all but the offset."""
    return [(r.partition, r.key, r.value, list(r.headers), r.timestamp) for r in records]


Body = Callable[[Transport, Transport], Awaitable[None]]


def with_logs(body: Body) -> Callable[[Path], None]:
    """The test ``body(source, target)`` run on two fresh bundled logs in ``tmp_path``."""

    @functools.wraps(body)
    def test(tmp_path: Path) -> None:
        async def run() -> None:
            source = open_transport(f"file://{tmp_path / 'source'}")
            target = open_transport(f"file://{tmp_path / 'target'}")
            await source.start()
            await target.start()
            try:
                await body(source, target)
            finally:
                await source.close()
                await target.close()

        asyncio.run(asyncio.wait_for(run(), 50))

    del test.__wrapped__  # pytest must see (tmp_path), not the body's parameters
    return test


async def produce(transport: Transport, topic: str, n: int, start: int = 0) -> None:
    producer = transport.producer()
    for i in range(start, start + n):
        await producer.send(
            topic,
            None if i % 50 == 49 else b"value-%d" % i,  # some tombstones
            key=b"key-%d" % (i % 40),
            headers=[("seq", b"%d" % i), ("empty", None)],
            timestamp_ms=1_700_000_000_000 + i,
        )
    await producer.flush()
    await producer.close()


@with_logs
async def test_once_copies_records_configs_and_partitions(
    source: Transport, target: Transport
) -> None:
    admin = source.admin()
    await admin.create_topic("orders", 3, {"cleanup.policy": "compact", "retention.ms": "3600000"})
    await admin.create_topic("audit", 1)
    await admin.create_topic("skipped", 2)
    await produce(source, "orders", 600)
    await produce(source, "audit", 50)
    await produce(source, "skipped", 5)

    summary = await Mirror(source, target, MirrorOptions(topics="orders|audit", once=True)).run()

    assert summary.records == 650 and summary.matched == 0
    for topic in ("orders", "audit"):
        assert content(await read_all(target, topic)) == content(await read_all(source, topic))
    info = await target.admin().describe_topic("orders")
    assert len(info.partitions) == 3
    assert info.configs == {"cleanup.policy": "compact", "retention.ms": "3600000"}
    assert "skipped" not in await target.admin().list_topics()
    assert {tp: p.copied for tp, p in summary.partitions.items() if tp.topic == "audit"} == {
        TopicPartition("audit", 0): 50
    }
    # a second run finds everything copied
    again = await Mirror(source, target, MirrorOptions(topics="orders|audit", once=True)).run()
    assert again.records == 0 and again.matched == 0
    assert len(await read_all(target, "orders")) == 600


@with_logs
async def test_aborted_transactions_are_not_copied_and_offsets_translate(
    source: Transport, target: Transport
) -> None:
    await source.admin().create_topic("payments", 1)
    producer = source.producer(transactional_id="payer")
    await producer.init_transactions()
    for round_, commit in enumerate([True, False, True, False, True]):
        producer.begin_transaction()
        for i in range(10):
            await producer.send("payments", b"r%d-%d" % (round_, i), key=b"k", partition=0)
        if commit:
            await producer.commit_transaction()
        else:
            await producer.abort_transaction()
    await producer.close()
    committed = await read_all(source, "payments", isolation_level="read_committed")
    assert len(committed) == 30
    # a group that has read up to round 2's fifth record (the 16th committed one)
    fifth_of_round_2 = next(r for r in committed if r.value == b"r2-5")
    group = source.consumer(group_id="billing")
    await group.commit({TopicPartition("payments", 0): fifth_of_round_2.offset})
    await group.close()

    mirror = Mirror(source, target, MirrorOptions(topics="payments", groups="billing", once=True))
    summary = await mirror.run()

    copied = await read_all(target, "payments")
    assert [r.value for r in copied] == [r.value for r in committed]
    assert [r.offset for r in copied] == list(range(30))  # no gaps on the target
    tp = TopicPartition("payments", 0)
    # the group resumes at the same record on the target
    assert summary.groups == {"billing": {tp: (fifth_of_round_2.offset, 15)}}
    assert copied[15].value == b"r2-5"
    reader = target.consumer(group_id="billing")
    assert await reader.committed(tp) == 15
    await reader.close()
    # every copied record's offset translates to where it is on the target
    for source_record, target_record in zip(committed, copied, strict=True):
        assert mirror.offset_map.translate(tp, source_record.offset) == target_record.offset
    # the source's end (after the last marker) is the target's end
    end = (await source.consumer().end_offsets([tp]))[tp]
    assert mirror.offset_map.translate(tp, end) == 30


@with_logs
async def test_a_restart_matches_what_the_target_got_after_the_checkpoint(
    source: Transport, target: Transport
) -> None:
    """A crash after records reached the target but before the checkpoint said so: the
    restarted mirror finds them there and copies only the rest."""
    await source.admin().create_topic("clicks", 2)
    await produce(source, "clicks", 100)
    first = await Mirror(source, target, MirrorOptions(topics="clicks", once=True)).run()
    assert first.records == 100
    await produce(source, "clicks", 100, start=100)
    # what a crashed mirror had sent: the first 20 new records of each partition
    new = [r for r in await read_all(source, "clicks") if r.offset >= 0]
    by_partition: dict[int, list[ConsumerRecord]] = {}
    for record in new:
        by_partition.setdefault(record.partition, []).append(record)
    producer = target.producer()
    already = 0
    for partition, records in by_partition.items():
        done = first.partitions[TopicPartition("clicks", partition)].source_next
        for record in [r for r in records if r.offset >= done][:20]:
            await producer.send(
                "clicks",
                record.value,
                key=record.key,
                partition=partition,
                headers=record.headers,
                timestamp_ms=record.timestamp,
            )
            already += 1
    await producer.flush()
    await producer.close()
    assert already == 40

    second = await Mirror(source, target, MirrorOptions(topics="clicks", once=True)).run()

    assert (second.records, second.matched) == (60, 40)
    assert content(await read_all(target, "clicks")) == content(await read_all(source, "clicks"))


@with_logs
async def test_a_target_written_by_someone_else_stops_the_mirror(
    source: Transport, target: Transport
) -> None:
    await source.admin().create_topic("clicks", 1)
    await produce(source, "clicks", 10)
    await Mirror(source, target, MirrorOptions(topics="clicks", once=True)).run()
    await produce(source, "clicks", 10, start=10)
    intruder = target.producer()
    await intruder.send_and_wait("clicks", b"not from the source", key=b"x", partition=0)
    await intruder.close()
    before = await read_all(target, "clicks")

    with pytest.raises(TargetDivergedError, match=r"clicks\[0\].*another producer"):
        await Mirror(source, target, MirrorOptions(topics="clicks", once=True)).run()
    assert await read_all(target, "clicks") == before  # nothing written


@with_logs
async def test_unknown_topics_are_refused(source: Transport, target: Transport) -> None:
    await source.admin().create_topic("orders", 1)
    with pytest.raises(NoTopicsError, match="no topic on the source matches 'ord'$"):
        await Mirror(source, target, MirrorOptions(topics="ord", once=True)).run()
    with pytest.raises(NoTopicsError, match="orderz"):
        await Mirror(source, target, MirrorOptions(topics=["orders", "orderz"], once=True)).run()


@with_logs
async def test_group_offsets_never_move_backwards_nor_under_a_live_group(
    source: Transport, target: Transport
) -> None:
    await source.admin().create_topic("events", 1)
    await produce(source, "events", 30)
    tp = TopicPartition("events", 0)
    for group, offset in (("ahead", 10), ("live", 10), ("fresh", 10)):
        consumer = source.consumer(group_id=group)
        await consumer.commit({tp: offset})
        await consumer.close()
    await target.admin().create_topic("events", 1)
    moved_on = target.consumer(group_id="ahead")
    await moved_on.commit({tp: 20})  # this group went on consuming on the target
    await moved_on.close()
    member = target.consumer(group_id="live")
    await member.subscribe(["events"])
    await member.getmany(timeout_ms=100)
    try:
        summary = await Mirror(
            source, target, MirrorOptions(topics="events", groups=".*", once=True)
        ).run()
        assert summary.groups == {"fresh": {tp: (10, 10)}}
        check = target.consumer(group_id="ahead")
        assert await check.committed(tp) == 20
        await check.close()
    finally:
        await member.close()


@with_logs
async def test_continuous_mirror_follows_new_records_and_topics(
    source: Transport, target: Transport
) -> None:
    await source.admin().create_topic("a", 1)
    await produce(source, "a", 10)
    options = MirrorOptions(topics="[ab]", checkpoint_interval_s=0.1, topic_refresh_interval_s=0.2)
    mirror = Mirror(source, target, options)
    task = asyncio.ensure_future(mirror.run())

    async def copied(topic: str, n: int) -> None:
        while True:
            if topic in await target.admin().list_topics():
                if len(await read_all(target, topic)) >= n:
                    return
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(copied("a", 10), 20)
        await produce(source, "a", 10, start=10)
        await source.admin().create_topic("b", 2)
        await produce(source, "b", 8)
        await asyncio.wait_for(copied("a", 20), 20)
        await asyncio.wait_for(copied("b", 8), 20)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    for topic in ("a", "b"):
        assert content(await read_all(target, topic)) == content(await read_all(source, topic))
    # the last checkpoint was written on the way out: a restart copies nothing
    again = await Mirror(source, target, MirrorOptions(topics="[ab]", once=True)).run()
    assert (again.records, again.matched) == (0, 0)
    assert {CHECKPOINTS_TOPIC, OFFSET_SYNCS_TOPIC} <= set(
        await target.admin().list_topics(include_internal=True)
    )


@with_logs
async def test_a_compacted_source_with_a_gap_at_every_record(source: Transport, target: Transport):
    """After the cleaner ran, nearly every record is a gap: the map holds a breakpoint per
    record, read back from the offset syncs (several records of them) after a restart, and
    still translates every offset exactly."""
    from streamlog.log.cleaner import LogCleaner
    from streamlog.log.clock import SystemClock
    from streamlog.mirror import state as mirror_state

    configs = {"cleanup.policy": "compact", "segment.bytes": "4096"}
    await source.admin().create_topic("changelog", 1, configs)
    producer = source.producer()
    keys = random.Random(7)
    for i in range(3000):  # 1000 keys in random order: the latest of each is anywhere
        await producer.send("changelog", b"v%d" % i, key=b"k%d" % keys.randrange(1000), partition=0)
        if i % 50 == 49:
            await producer.flush()  # one batch each: segments roll between batches
    await producer.close()
    manager = source.manager  # type: ignore[attr-defined]
    assert LogCleaner(SystemClock()).clean(manager.partition("changelog", 0)) is not None
    kept = await read_all(source, "changelog")
    assert 900 <= len(kept) < 1500  # the last segment is never cleaned
    tp = TopicPartition("changelog", 0)
    middle = kept[len(kept) // 2]
    group = source.consumer(group_id="app")
    await group.commit({tp: middle.offset})
    await group.close()

    # a small chunk size, so the breakpoints span several offset-sync records
    saved = mirror_state.POINTS_PER_RECORD
    mirror_state.POINTS_PER_RECORD = 100
    try:
        first = Mirror(source, target, MirrorOptions(topics="changelog", once=True))
        await first.run()
    finally:
        mirror_state.POINTS_PER_RECORD = saved
    copied = await read_all(target, "changelog")
    assert content(copied) == content(kept)
    gaps = sum(1 for a, b in zip(kept, kept[1:], strict=False) if b.offset != a.offset + 1)
    assert len(first.offset_map[tp].sources) == gaps + 1 > 400
    # (the mirror's own records: each run also leaves a probe there, identity.py)
    syncs = [
        r for r in await read_all(target, OFFSET_SYNCS_TOPIC) if r.key.startswith(b'["default"')
    ]
    assert len(syncs) == (gaps + 1 + 99) // 100

    # a new mirror (a restart) reads the map back and translates like the first one
    later = Mirror(source, target, MirrorOptions(topics="changelog", groups="app", once=True))
    summary = await later.run()
    assert summary.records == 0
    for source_record, target_record in zip(kept, copied, strict=True):
        assert later.offset_map.translate(tp, source_record.offset) == target_record.offset
        assert later.offset_map.translate(tp, source_record.offset - 1) in (
            target_record.offset,  # in a gap: the next copied record
            target_record.offset - 1,  # right after the previous one
        )
    assert summary.groups == {"app": {tp: (middle.offset, kept.index(middle))}}
