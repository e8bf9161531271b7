"""A ``file://`` worker's consumer group as other processes see it: ``streamlog groups
describe`` (a real process) against the worker's Kafka listener and against its data
directory reports the worker's in-process group as it is (Stable, its member, the
partitions it owns), and a Kafka client can neither join that group through the listener
nor commit offsets to it."""

from __future__ import annotations

import asyncio
import os
import re

import pytest

from streamlog.transport import open_transport
from streamlog.transport.errors import GroupError, TransportError
from streamlog.transport.types import TopicPartition

from .workerproc import APPS, WorkerProcess, group_offsets, produce, run_cli, wait_until

WORDCOUNT = os.path.join(APPS, "wordcount.py")
MEMBER = r"wordcount-[0-9a-f-]{36}"


def describe(url: str) -> str:
    out = run_cli("groups", "describe", "wordcount", "--broker", url)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.timeout(90)
def test_groups_describe_shows_a_file_workers_members_and_assignment(tmp_path):
    data = tmp_path / "data"
    worker = WorkerProcess(WORDCOUNT, f"file://{data}", str(tmp_path))
    try:
        worker.start()
        listener = worker.kafka_url
        produce(listener, "words", ["a b", "c"])
        wait_until(
            lambda: sum(o for tp, o in group_offsets(listener, "wordcount").items()) >= 2,
            30,
            "both lines committed",
        )
        for url in (listener, f"file://{data}"):
            lines = describe(url).splitlines()
            assert (
                lines[0]
                == "Group: wordcount  State: Stable  Members: 1  Assignor: cooperative-sticky"
            )
            rows = [line.split() for line in lines[3:]]
            # one member owns every partition of words and the leader topic
            members = {row[5] for row in rows}
            assert len(members) == 1 and re.fullmatch(MEMBER, members.pop()), rows
            assert [(r[0], r[1]) for r in rows] == [
                ("wordcount-__assignor-__leader", "0"),
                ("words", "0"),
                ("words", "1"),
                ("words", "2"),
                ("words", "3"),
            ]
            assert {(r[6], r[7]) for r in rows} == {("localhost", "wordcount")}
            committed = sum(int(r[2]) for r in rows if r[0] == "words" and r[2] != "-")
            assert committed == 2
        out = run_cli("groups", "list", "--broker", listener)
        assert out.returncode == 0 and out.stdout.splitlines() == ["wordcount"], out

        # a Kafka admin client (librdkafka) reads the same: the assignment bytes are the
        # consumer protocol's
        from confluent_kafka import ConsumerGroupState
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": worker.listener()})
        group = admin.describe_consumer_groups(["wordcount"])["wordcount"].result(30)
        assert (group.state, group.partition_assignor) == (
            ConsumerGroupState.STABLE,
            "cooperative-sticky",
        )
        [member] = group.members
        assert re.fullmatch(MEMBER, member.member_id) and member.client_id == "wordcount"
        assert sorted((tp.topic, tp.partition) for tp in member.assignment.topic_partitions) == [
            ("wordcount-__assignor-__leader", 0),
            *(("words", p) for p in range(4)),
        ]
    finally:
        worker.stop()


async def _join(url: str, group: str) -> BaseException | None:
    transport = open_transport(url)
    await transport.start()
    try:
        consumer = transport.consumer(group_id=group)
        try:
            await consumer.subscribe(["words"])
            await consumer.getmany(timeout_ms=5000)
        except TransportError as exc:
            return exc
        finally:
            await consumer.close()
    finally:
        await transport.close()
    return None


async def _commit(url: str, group: str, offset: int) -> BaseException | None:
    """Commit ``offset`` for words[0] as ``group`` without joining it (manual assignment)."""
    transport = open_transport(url)
    await transport.start()
    try:
        consumer = transport.consumer(group_id=group)
        try:
            consumer.assign([TopicPartition("words", 0)])
            await consumer.commit({TopicPartition("words", 0): offset})
        except TransportError as exc:
            return exc
        finally:
            await consumer.close()
    finally:
        await transport.close()
    return None


@pytest.mark.timeout(90)
def test_a_kafka_client_cannot_join_or_commit_to_a_file_workers_group(tmp_path):
    worker = WorkerProcess(WORDCOUNT, f"file://{tmp_path / 'data'}", str(tmp_path))
    try:
        worker.start()
        listener = worker.kafka_url
        refused = asyncio.run(asyncio.wait_for(_join(listener, "wordcount"), 60))
        assert isinstance(refused, GroupError), repr(refused)
        assert "INCONSISTENT_GROUP_PROTOCOL" in str(refused), str(refused)
        assert "refused a member" in worker.logs()
        committed = group_offsets(listener, "wordcount")
        refused = asyncio.run(asyncio.wait_for(_commit(listener, "wordcount", 99), 60))
        assert isinstance(refused, TransportError) and "UNKNOWN_MEMBER_ID" in str(refused), repr(
            refused
        )
        assert group_offsets(listener, "wordcount") == committed
        # another group id joins and commits as usual; the worker's group is still its own
        assert asyncio.run(asyncio.wait_for(_commit(listener, "tools", 1), 60)) is None
        assert group_offsets(listener, "tools") == {TopicPartition("words", 0): 1}
        assert asyncio.run(asyncio.wait_for(_join(listener, "tools"), 60)) is None
        lines = describe(listener).splitlines()
        assert (
            lines[0] == "Group: wordcount  State: Stable  Members: 1  Assignor: cooperative-sticky"
        )
    finally:
        worker.stop()
