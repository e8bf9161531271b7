"""LogManager: topics persisted in the data directory, partitions, locking, maintenance."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from streamlog.log.clock import ManualClock
from streamlog.log.errors import (
    DataDirectoryLockedError,
    InternalTopicError,
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidTopicNameError,
    TopicExistsError,
    UnknownTopicError,
)
from streamlog.log.manager import LogManager
from streamlog.log.partitioner import partition_for_key

from .logutil import make_batch, read_all_records

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def manager(tmp_path):
    with LogManager.open(str(tmp_path / "data"), clock=ManualClock()) as m:
        yield m


def test_topics_with_partitions_and_configs_survive_a_restart(tmp_path) -> None:
    data = str(tmp_path / "data")
    with LogManager.open(data) as m:
        desc = m.create_topic("orders", 3, {"retention.ms": "1000", "cleanup.policy": "delete"})
        assert [p.partition for p in desc.partitions] == [0, 1, 2]
        assert desc.overrides == {"retention.ms": "1000"}
        m.create_topic("users", 1, {"cleanup.policy": "compact"})
        m.append("orders", 2, make_batch(4))
        topic_id = m.topic_id("orders")
    assert sorted(os.listdir(data)).count("orders-2") == 1
    with LogManager.open(data) as m:
        assert m.list_topics() == ["orders", "users"]
        assert "__consumer_offsets" in m.list_topics(include_internal=True)
        assert m.partition_count("orders") == 3
        assert m.topic_config("orders").retention_ms == 1000
        assert m.topic_config("users").compact
        assert m.topic_id("orders") == topic_id
        assert [r.key for r in read_all_records(m.partition("orders", 2))] == [
            b"k0",
            b"k1",
            b"k2",
            b"k3",
        ]
        desc = m.describe_topic("orders")
        assert [(p.log_start_offset, p.log_end_offset) for p in desc.partitions] == [
            (0, 0),
            (0, 0),
            (0, 4),
        ]


def test_bad_topic_requests_get_specific_errors(manager) -> None:
    with pytest.raises(InvalidTopicNameError, match="illegal"):
        manager.create_topic("bad name!", 1)
    with pytest.raises(InvalidTopicNameError):
        manager.create_topic("x" * 250, 1)
    with pytest.raises(InvalidTopicNameError):
        manager.create_topic("..", 1)
    with pytest.raises(InvalidPartitionsError):
        manager.create_topic("zero", 0)
    with pytest.raises(InvalidConfigError, match="retention.ms"):
        manager.create_topic("cfg", 1, {"retention.ms": "soon"})
    with pytest.raises(InvalidConfigError, match="no.such.key"):
        manager.create_topic("cfg", 1, {"no.such.key": "1"})
    manager.create_topic("a.b", 1)
    with pytest.raises(TopicExistsError):
        manager.create_topic("a.b", 2)
    with pytest.raises(InvalidTopicNameError, match="collides with existing"):
        manager.create_topic("a_b", 1)
    with pytest.raises(UnknownTopicError, match="nope"):
        manager.partition("nope", 0)
    with pytest.raises(UnknownTopicError, match="no partition 5"):
        manager.partition("a.b", 5)
    with pytest.raises(InvalidTopicNameError, match="internal"):
        manager.delete_topic("__consumer_offsets")
    # Nothing half-made is left behind by the refused requests.
    assert manager.list_topics() == ["a.b"]


def test_add_partitions_grows_but_never_shrinks(manager) -> None:
    manager.create_topic("t", 2)
    manager.append("t", 1, make_batch(2))
    desc = manager.add_partitions("t", 5)
    assert len(desc.partitions) == 5
    assert manager.partition("t", 1).log_end_offset == 2
    manager.append("t", 4, make_batch(1))
    with pytest.raises(InvalidPartitionsError, match="larger"):
        manager.add_partitions("t", 5)
    with pytest.raises(InvalidPartitionsError):
        manager.add_partitions("t", 3)


@pytest.mark.parametrize("internal", ["__consumer_offsets", "__transaction_state"])
def test_internal_topics_are_written_and_shaped_by_the_broker_only(manager, internal) -> None:
    offsets = manager.partition("__consumer_offsets", 0)
    end = offsets.log_end_offset
    with pytest.raises(InternalTopicError, match=f"Cannot append to internal topic {internal}"):
        manager.append(internal, 0, make_batch(1))
    with pytest.raises(InternalTopicError, match="Cannot create"):
        manager.create_topic("__transaction_state", 1)
    with pytest.raises(InternalTopicError, match="Cannot add partitions"):
        manager.check_add_partitions("__consumer_offsets", 20)
    with pytest.raises(InternalTopicError, match="Cannot add partitions"):
        manager.add_partitions("__consumer_offsets", 20)
    with pytest.raises(InternalTopicError, match="Cannot delete"):
        manager.delete_topic("__consumer_offsets")
    assert offsets.log_end_offset == end
    assert manager.partition_count("__consumer_offsets") == 10
    assert not manager.topic_exists("__transaction_state")
    manager.create_topic("__mine", 1)  # "__" alone does not make a topic internal
    assert manager.append("__mine", 0, make_batch(1)).base_offset == 0


def test_delete_topic_removes_data_and_the_name_can_be_reused(manager) -> None:
    manager.create_topic("gone", 2)
    manager.append("gone", 0, make_batch(3))
    old_id = manager.topic_id("gone")
    manager.delete_topic("gone")
    assert not manager.topic_exists("gone")
    assert not [n for n in os.listdir(manager.data_dir) if n.startswith("gone")]
    with pytest.raises(UnknownTopicError):
        manager.delete_topic("gone")
    manager.create_topic("gone", 1)
    assert manager.topic_id("gone") != old_id
    assert manager.partition("gone", 0).log_end_offset == 0


def test_alter_config_applies_to_running_logs_and_persists(tmp_path) -> None:
    data = str(tmp_path / "d")
    with LogManager.open(data) as m:
        m.create_topic("t", 1)
        m.alter_topic_config("t", {"segment.bytes": "5000"})
        assert m.partition("t", 0).config.segment_bytes == 5000
    with LogManager.open(data) as m:
        assert m.topic_config("t").segment_bytes == 5000
        assert m.describe_topic("t").overrides == {"segment.bytes": "5000"}


def test_keys_land_where_kafka_would_put_them(manager) -> None:
    manager.create_topic("keyed", 6)
    for key in (b"alice", b"bob", b"carol", b"\x00\xff"):
        assert manager.partition_for("keyed", key) == partition_for_key(key, 6)
    seen = {manager.partition_for("keyed", None) for _ in range(10)}
    assert seen and seen <= set(range(6))


HOLDER = textwrap.dedent(
    """
    import sys, time
    from streamlog.log.manager import LogManager
    m = LogManager.open(sys.argv[1])
    print("locked", flush=True)
    sys.stdin.readline()
    m.close()
    """
)


def test_a_second_process_gets_a_clear_error_for_a_locked_directory(tmp_path) -> None:
    data = str(tmp_path / "d")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, data],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DataDirectoryLockedError, match=f"pid {holder.pid}"):
            LogManager.open(data)
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=20)
    with LogManager.open(data) as m:  # released when the holder stopped
        assert m.list_topics() == []


def test_same_process_second_open_is_refused_too(tmp_path) -> None:
    with LogManager.open(str(tmp_path)):
        with pytest.raises(DataDirectoryLockedError):
            LogManager.open(str(tmp_path))


def test_maintenance_enforces_retention_and_compaction(tmp_path) -> None:
    clock = ManualClock()
    with LogManager.open(str(tmp_path), clock=clock) as m:
        m.create_topic("events", 1, {"retention.ms": "1000", "segment.bytes": "2000"})
        m.create_topic(
            "table",
            1,
            {
                "cleanup.policy": "compact",
                "segment.bytes": "2000",
                "min.cleanable.dirty.ratio": "0.1",
            },
        )
        for i in range(30):
            m.append("events", 0, make_batch(2, start=i * 2, ts=clock.time_ms()))
            m.append("table", 0, make_batch(2, keys=[b"a", b"b"], ts=clock.time_ms()))
        clock.advance(5000)
        report = m.run_maintenance()
        assert report.segments_deleted > 0 and report.logs_cleaned == 1
        events = m.partition("events", 0)
        assert events.log_start_offset == events.log_end_offset == 60
        table = read_all_records(m.partition("table", 0))
        active = m.partition("table", 0).active_segment.base_offset
        assert len([r for r in table if r.offset < active]) <= 2
        assert table[-1].offset == 59


def test_interrupted_create_and_delete_leave_no_orphans(tmp_path) -> None:
    data = tmp_path / "d"
    with LogManager.open(str(data)) as m:
        m.create_topic("kept", 1)
    os.makedirs(data / "half-made-0")  # a create that crashed before its commit point
    os.makedirs(data / "old-0.abc123-delete")  # a delete that crashed mid-way
    with LogManager.open(str(data)) as m:
        assert m.list_topics() == ["kept"]
    assert not (data / "half-made-0").exists()
    assert not (data / "old-0.abc123-delete").exists()


def test_producer_ids_are_never_reused_across_restarts(tmp_path) -> None:
    with LogManager.open(str(tmp_path)) as m:
        first = [m.allocate_producer_id() for _ in range(5)]
    with LogManager.open(str(tmp_path)) as m:
        second = [m.allocate_producer_id() for _ in range(5)]
    assert first == [0, 1, 2, 3, 4]
    assert min(second) >= 1000 and len(set(second)) == 5
