"""The directory of workers read from the group's peer list: cards told apart from other
user data, and the holder of a topic partition or a table partition."""

from __future__ import annotations

import json

from streamlog.dsl.app.web.directory import CARD_KIND, Directory, encode_card
from streamlog.transport.types import GroupPeer
from streamlog.transport.types import TopicPartition as TP

LEADER = "app-__assignor-__leader"


def peer(member: str, data: bytes, *partitions: TP) -> GroupPeer:
    return GroupPeer(member, data, frozenset(partitions))


def test_cards_are_read_and_other_user_data_is_left_out() -> None:
    peers = [
        peer("m1", encode_card("http://a:1/", "id-a"), TP("t", 0), TP("t", 1), TP(LEADER, 0)),
        peer("m2", encode_card("http://b:2", "id-b"), TP("t", 2), TP("t", 3)),
        peer("m3", b"not json", TP("u", 0)),
        peer("m4", json.dumps({"kind": "other", "url": "x", "id": "y"}).encode()),
        peer("m5", json.dumps({"kind": CARD_KIND, "url": 5, "id": "z"}).encode()),
        peer("m6", b"\xff\xfe", TP("u", 1)),
        peer("m7", json.dumps({"kind": CARD_KIND}).encode()),
    ]
    directory = Directory.from_peers(peers)
    assert [(w.url, w.id) for w in directory.workers] == [
        ("http://a:1", "id-a"),
        ("http://b:2", "id-b"),
    ]
    assert json.loads(encode_card("http://a:1", "i")) == {
        "kind": CARD_KIND,
        "url": "http://a:1",
        "id": "i",
    }
    a, b = directory.workers
    assert directory.owner_of(TP("t", 1)) is a
    assert directory.owner_of(TP("t", 3)) is b
    assert directory.owner_of(TP("u", 0)) is None  # held by a member with no card
    assert directory.holder_of_table_partition(1, LEADER) is a
    assert directory.holder_of_table_partition(2, LEADER) is b
    assert directory.holder_of_table_partition(7, LEADER) is None
    assert a.table_partitions(LEADER) == {0, 1}
    # holding the leader topic's partition 0 is not holding table partition 0
    leader_only = Directory.from_peers([peer("m8", encode_card("http://c:3", "c"), TP(LEADER, 0))])
    assert leader_only.workers[0].table_partitions(LEADER) == set()
    assert leader_only.holder_of_table_partition(0, LEADER) is None
    assert directory.by_id("id-b") is b and directory.by_id("nope") is None
