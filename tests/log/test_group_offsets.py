"""Committed consumer-group offsets: durable in __consumer_offsets, reloaded on start."""

from __future__ import annotations

import logging
import os

import pytest

from streamlog.log.clock import ManualClock
from streamlog.log.group_offsets import (
    OFFSETS_TOPIC,
    OffsetAndMetadata,
    decode_offset_key,
    decode_offset_value,
    encode_offset_key,
    encode_offset_value,
    java_string_hash,
)
from streamlog.log.manager import LogManager
from streamlog.log.records import decode_batch, encode_batch

from .logutil import append_to_segment_file, undecodable_batch


def test_java_string_hash_matches_java() -> None:
    # Values of "...".hashCode() in Java.
    assert java_string_hash("") == 0
    assert java_string_hash("a") == 97
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("abc") == 96354
    # overflow wraps to a negative int, as in Java
    assert java_string_hash("polygenelubricants") == -2147483648


def test_key_and_value_use_kafkas_schemas() -> None:
    key = encode_offset_key("g", "t", 3)
    assert key == b"\x00\x01" + b"\x00\x01g" + b"\x00\x01t" + b"\x00\x00\x00\x03"
    assert decode_offset_key(key) == ("g", "t", 3)
    value = OffsetAndMetadata(42, "meta", 7, 1234)
    raw = encode_offset_value(value)
    assert raw[:2] == b"\x00\x03"
    assert decode_offset_value(raw) == value
    assert decode_offset_key(b"\x00\x02\x00\x01g") is None  # group metadata: not ours


def test_commits_survive_restart_and_deletes_too(tmp_path) -> None:
    clock = ManualClock(5_000)
    with LogManager.open(str(tmp_path), clock=clock) as m:
        store = m.group_offsets
        store.commit("g1", {("orders", 0): 10, ("orders", 1): OffsetAndMetadata(20, "m")})
        store.commit("g1", {("orders", 0): 11})
        store.commit("g2", {("users", 0): 5})
        store.commit("g3", {("x", 0): 1})
        assert store.delete_group("g3") == 1
        assert store.fetch("g1") == {
            ("orders", 0): OffsetAndMetadata(11, "", -1, 5_000),
            ("orders", 1): OffsetAndMetadata(20, "m", -1, 5_000),
        }
        partition = store.partition_for("g1")
        raw = m.partition(OFFSETS_TOPIC, partition).read(0).records
        assert decode_offset_key(decode_batch(raw).records[0].key) == ("g1", "orders", 0)
    with LogManager.open(str(tmp_path), clock=clock) as m:
        store = m.group_offsets
        assert store.groups() == ["g1", "g2"]
        assert store.fetch("g1", [("orders", 0), ("orders", 9)]) == {
            ("orders", 0): OffsetAndMetadata(11, "", -1, 5_000)
        }
        assert store.fetch("g2")[("users", 0)].offset == 5
        assert store.fetch("g3") == {}


def test_group_partition_follows_kafkas_rule(tmp_path) -> None:
    with LogManager.open(str(tmp_path), offsets_topic_partitions=50) as m:
        store = m.group_offsets
        for group in ("a", "consumers", "my-group"):
            assert store.partition_for(group) == (java_string_hash(group) & 0x7FFFFFFF) % 50


@pytest.mark.parametrize("n", [1, 200])
def test_many_commits_reload_to_the_latest(tmp_path, n) -> None:
    with LogManager.open(str(tmp_path)) as m:
        for i in range(n):
            m.group_offsets.commit("g", {("t", i % 3): i})
    with LogManager.open(str(tmp_path)) as m:
        expected = {
            ("t", p): max(i for i in range(n) if i % 3 == p)
            for p in range(3)
            if any(i % 3 == p for i in range(n))
        }
        assert {tp: o.offset for tp, o in m.group_offsets.fetch("g").items()} == expected


def test_an_undecodable_batch_is_skipped_and_logged_and_the_rest_loads(tmp_path, caplog) -> None:
    """The probe's case: a garbage batch in __consumer_offsets stopped every later start
    ("record 0: varint too long or too wide"). Now it is logged and skipped."""
    with LogManager.open(str(tmp_path)) as m:
        store = m.group_offsets
        partition = store.partition_for("victim")
        other = next(g for i in range(100) if store.partition_for(g := f"other-{i}") == partition)
        store.commit("victim", {("orders", 0): 10})
        store.commit(other, {("orders", 0): 20})  # same partition, before the bad batch
    directory = os.path.join(tmp_path, f"{OFFSETS_TOPIC}-{partition}")
    bad_offset = append_to_segment_file(directory, undecodable_batch())
    for restart in range(2):  # the bad batch stays; every start skips it
        with caplog.at_level(logging.WARNING, logger="streamlog.log.group_offsets"):
            with LogManager.open(str(tmp_path)) as m:
                store = m.group_offsets
                assert store.fetch("victim")[("orders", 0)].offset == 10 + restart
                assert store.fetch(other)[("orders", 0)].offset == 20
                store.commit("victim", {("orders", 0): 11 + restart})  # after the bad batch
        assert f"{OFFSETS_TOPIC}-{partition} offset {bad_offset}: skipped" in caplog.text
        assert "varint" in caplog.text
        caplog.clear()
    with LogManager.open(str(tmp_path)) as m:
        assert m.group_offsets.fetch("victim")[("orders", 0)].offset == 12
        assert m.group_offsets.fetch(other)[("orders", 0)].offset == 20


def test_a_record_that_does_not_decode_is_skipped_alone(tmp_path, caplog) -> None:
    with LogManager.open(str(tmp_path)) as m:
        store = m.group_offsets
        partition = store.partition_for("g")
        good = encode_offset_value(OffsetAndMetadata(7, "", -1, 1))
        entries = [
            (encode_offset_key("g", "a", 0), good, 1, ()),
            (b"\x00\x01\x7f\xff", good, 1, ()),  # group name longer than the key
            (encode_offset_key("g", "b", 0), b"\x00\x03\x00", 1, ()),  # value cut short
            (encode_offset_key("g", "c", 0), good, 1, ()),
        ]
        # the broker's own write path (the partition log), as a corrupted commit would be
        m.partition(OFFSETS_TOPIC, partition).append(encode_batch(entries))
    with caplog.at_level(logging.WARNING, logger="streamlog.log.group_offsets"):
        with LogManager.open(str(tmp_path)) as m:
            assert sorted(m.group_offsets.fetch("g")) == [("a", 0), ("c", 0)]
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 2
    assert f"{OFFSETS_TOPIC}-{partition} offset 1: skipped" in skipped[0]
    assert f"{OFFSETS_TOPIC}-{partition} offset 2: skipped" in skipped[1]


def test_garbage_bytes_in_an_offsets_segment_never_stop_a_start(tmp_path, caplog) -> None:
    with LogManager.open(str(tmp_path)) as m:
        m.group_offsets.commit("g", {("t", 0): 3})
        partition = m.group_offsets.partition_for("g")
    directory = os.path.join(tmp_path, f"{OFFSETS_TOPIC}-{partition}")
    log_file = sorted(n for n in os.listdir(directory) if n.endswith(".log"))[-1]
    with open(os.path.join(directory, log_file), "ab") as f:
        f.write(b"\x00" * 8 + b"\xff\xff\xff\xf4" + os.urandom(300))  # length -12
    with caplog.at_level(logging.WARNING):
        with LogManager.open(str(tmp_path)) as m:
            assert m.group_offsets.fetch("g")[("t", 0)].offset == 3
            m.group_offsets.commit("g", {("t", 0): 4})
    assert "cut 312 bytes" in caplog.text
    with LogManager.open(str(tmp_path)) as m:
        assert m.group_offsets.fetch("g")[("t", 0)].offset == 4
