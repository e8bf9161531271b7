"""Partition assignment for the "consumer" group protocol: the range and round-robin
assignors, and the byte formats members exchange through the coordinator.

The coordinator treats a member's subscription and assignment as opaque bytes; Kafka's
clients agree on ``ConsumerProtocolSubscription`` and ``ConsumerProtocolAssignment``
(``clients/src/main/resources/common/message/``), big-endian, non-flexible::

    Subscription  version int16 | topics [string] | user_data nullable bytes
                  | owned_partitions [(topic string, partitions [int32])]    (v1+)
                  | generation_id int32                                      (v2+)
                  | rack_id nullable string                                  (v3+)
    Assignment    version int16 | assigned [(topic string, partitions [int32])]
                  | user_data nullable bytes

We write version 0 of both (what every client reads) and read any version, ignoring the
fields past the ones we use, as Kafka does for newer versions than it knows.

Members that advertise user data in their subscription learn each other's: a streamlog
leader puts the *peer list* (every such member's id, user data and assigned partitions)
in the user data of every member's assignment, as Kafka Streams' leader shares each
member's ``application.server`` and partitions. Other clients ignore an assignment's
user data under the range and round-robin assignors. Its layout::

    Peers         magic "streamlog.peers" | version int16
                  | peers [(member_id string, user_data bytes,
                            assigned [(topic string, partitions [int32])],
                            standby [(topic string, partitions [int32])]       (v1+))]

Version 1 adds each member's standby partitions (``sticky.standby_assign``); a version 0
list (an older leader) reads as no standbys.

The assignors are Kafka's (``RangeAssignor``, ``RoundRobinAssignor``), so a group mixing
streamlog with Java or librdkafka members gets the same answer whoever leads.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from streamlog.transport.errors import MalformedMemberDataError
from streamlog.transport.sticky import Claim, cooperative_assign
from streamlog.transport.types import GroupPeer, TopicPartition

__all__ = [
    "Subscription",
    "encode_subscription",
    "decode_subscription",
    "encode_assignment",
    "decode_assignment",
    "decode_assignment_user_data",
    "encode_peers",
    "decode_peers",
    "Assignor",
    "RangeAssignor",
    "RoundRobinAssignor",
    "CooperativeStickyAssignor",
    "ASSIGNORS",
    "claims_of",
    "MalformedMemberDataError",
]

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


@dataclass(frozen=True, slots=True)
class Subscription:
    topics: tuple[str, ...]
    user_data: bytes | None = None
    owned: frozenset[TopicPartition] = frozenset()  # owned_partitions (v1+)


def _string(value: str) -> bytes:
    raw = value.encode()
    return _INT16.pack(len(raw)) + raw


def _nullable_bytes(value: bytes | None) -> bytes:
    if value is None:
        return _INT32.pack(-1)
    return _INT32.pack(len(value)) + value


def encode_subscription(
    topics: Iterable[str],
    user_data: bytes | None = None,
    owned: Iterable[TopicPartition] | None = None,
) -> bytes:
    """Version 0, or version 1 with ``owned`` partitions (what a cooperative member
    sends: the leader must know what each member holds)."""
    names = sorted(set(topics))
    parts = [_INT16.pack(0 if owned is None else 1), _INT32.pack(len(names))]
    parts.extend(_string(name) for name in names)
    parts.append(_nullable_bytes(user_data))
    if owned is not None:
        parts.extend(_topic_partitions(owned))
    return b"".join(parts)


def _topic_partitions(partitions: Iterable[TopicPartition]) -> list[bytes]:
    """``[(topic string, partitions [int32])]``, topics and partitions sorted."""
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    parts = [_INT32.pack(len(by_topic))]
    for topic in sorted(by_topic):
        numbers = sorted(by_topic[topic])
        parts.append(_string(topic))
        parts.append(_INT32.pack(len(numbers)))
        parts.append(struct.pack(f">{len(numbers)}i", *numbers))
    return parts


def encode_assignment(
    partitions: Iterable[TopicPartition], user_data: bytes | None = None
) -> bytes:
    parts = [_INT16.pack(0), *_topic_partitions(partitions), _nullable_bytes(user_data)]
    return b"".join(parts)


_PEERS_MAGIC = b"streamlog.peers"


def encode_peers(peers: Iterable[GroupPeer]) -> bytes:
    """The peer list a leader shares in every assignment (module docstring)."""
    ordered = sorted(peers, key=lambda peer: peer.member_id)
    parts = [_PEERS_MAGIC, _INT16.pack(1), _INT32.pack(len(ordered))]
    for peer in ordered:
        parts.append(_string(peer.member_id))
        parts.append(_nullable_bytes(peer.user_data))
        parts.extend(_topic_partitions(peer.partitions))
        parts.extend(_topic_partitions(peer.standby))
    return b"".join(parts)


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def _take(self, size: int) -> bytes:
        end = self.pos + size
        if size < 0 or end > len(self.buf):
            raise MalformedMemberDataError("truncated consumer protocol data")
        chunk = self.buf[self.pos : end]
        self.pos = end
        return chunk

    def int16(self) -> int:
        return int(_INT16.unpack(self._take(2))[0])

    def int32(self) -> int:
        return int(_INT32.unpack(self._take(4))[0])

    def string(self) -> str:
        length = self.int16()
        if length < 0:
            raise MalformedMemberDataError("null string in consumer protocol data")
        try:
            return self._take(length).decode()
        except UnicodeDecodeError:
            raise MalformedMemberDataError("topic name is not UTF-8") from None

    def count(self) -> int:
        n = self.int32()
        if n < 0:
            return 0  # a null array
        if n > len(self.buf):
            raise MalformedMemberDataError(f"array of {n} items in {len(self.buf)} bytes")
        return n

    def nullable_bytes(self) -> bytes | None:
        if self.pos == len(self.buf):
            return None  # some clients leave user data out entirely
        n = self.int32()
        return None if n < 0 else self._take(n)


def decode_subscription(data: bytes) -> Subscription:
    r = _Reader(bytes(data))
    version = r.int16()
    if version < 0:
        raise MalformedMemberDataError("negative subscription version")
    topics = tuple(r.string() for _ in range(r.count()))
    user_data = r.nullable_bytes()
    owned: frozenset[TopicPartition] = frozenset()
    if version >= 1 and r.pos < len(r.buf):
        owned = frozenset(_read_topic_partitions(r))
    return Subscription(topics, user_data, owned)


def _read_topic_partitions(r: _Reader) -> set[TopicPartition]:
    assigned: set[TopicPartition] = set()
    for _ in range(r.count()):
        topic = r.string()
        for _ in range(r.count()):
            assigned.add(TopicPartition(topic, r.int32()))
    return assigned


def decode_assignment(data: bytes) -> set[TopicPartition]:
    """The partitions of an assignment; empty bytes (a member given nothing) is empty."""
    return decode_assignment_user_data(data)[0]


def decode_assignment_user_data(data: bytes) -> tuple[set[TopicPartition], bytes | None]:
    """The partitions of an assignment and its user data (None when it has none)."""
    if not data:
        return set(), None
    r = _Reader(bytes(data))
    if r.int16() < 0:
        raise MalformedMemberDataError("negative assignment version")
    assigned = _read_topic_partitions(r)
    return assigned, r.nullable_bytes()


def decode_peers(data: bytes | None) -> tuple[GroupPeer, ...] | None:
    """The peer list in an assignment's user data; None when the user data is something
    else (no list: the leader is not streamlog's, or nobody advertised anything);
    ``MalformedMemberDataError`` when it is a peer list but a broken one."""
    if data is None or not data.startswith(_PEERS_MAGIC):
        return None
    r = _Reader(bytes(data))
    r.pos = len(_PEERS_MAGIC)
    version = r.int16()
    if version < 0:
        raise MalformedMemberDataError("negative peer list version")
    peers = []
    for _ in range(r.count()):
        member_id = r.string()
        user_data = r.nullable_bytes()
        partitions = frozenset(_read_topic_partitions(r))
        standby = frozenset(_read_topic_partitions(r)) if version >= 1 else frozenset()
        peers.append(GroupPeer(member_id, user_data or b"", partitions, standby))
    return tuple(peers)


class Assignor(Protocol):
    name: str

    def assign(
        self, partition_counts: Mapping[str, int], subscriptions: Mapping[str, Subscription]
    ) -> dict[str, set[TopicPartition]]:
        """Member id -> partitions, for every member (possibly with nothing)."""
        ...


class RangeAssignor:
    """Per topic, consecutive ranges of partitions to the subscribed members in id order;
    the first ``partitions % members`` members get one extra."""

    name = "range"

    def assign(
        self, partition_counts: Mapping[str, int], subscriptions: Mapping[str, Subscription]
    ) -> dict[str, set[TopicPartition]]:
        result: dict[str, set[TopicPartition]] = {member: set() for member in subscriptions}
        by_topic: dict[str, list[str]] = {}
        for member, sub in subscriptions.items():
            for topic in sub.topics:
                by_topic.setdefault(topic, []).append(member)
        for topic, members in by_topic.items():
            count = partition_counts.get(topic, 0)
            if count <= 0:
                continue
            members.sort()
            per, extra = divmod(count, len(members))
            for i, member in enumerate(members):
                start = per * i + min(i, extra)
                length = per + (1 if i < extra else 0)
                result[member].update(
                    TopicPartition(topic, p) for p in range(start, start + length)
                )
        return result


class RoundRobinAssignor:
    """All subscribed partitions sorted by (topic, partition), dealt to the members in id
    order, skipping members not subscribed to a partition's topic."""

    name = "roundrobin"

    def assign(
        self, partition_counts: Mapping[str, int], subscriptions: Mapping[str, Subscription]
    ) -> dict[str, set[TopicPartition]]:
        result: dict[str, set[TopicPartition]] = {member: set() for member in subscriptions}
        members = sorted(subscriptions)
        if not members:
            return result
        topics = sorted({t for sub in subscriptions.values() for t in sub.topics})
        subscribed = {m: set(subscriptions[m].topics) for m in members}
        turn = 0
        for topic in topics:
            for p in range(partition_counts.get(topic, 0)):
                for _ in range(len(members)):
                    member = members[turn % len(members)]
                    turn += 1
                    if topic in subscribed[member]:
                        result[member].add(TopicPartition(topic, p))
                        break
        return result


class CooperativeStickyAssignor:
    """Kafka's cooperative protocol (KIP-429) with streamlog's sticky, co-partitioned
    rule (``streamlog.transport.sticky``): what stays put keeps being processed through a
    rebalance; a partition that moves is withheld one round while its owner revokes it.
    Members using it revoke only what they lose (``group.py``)."""

    name = "cooperative-sticky"
    cooperative = True

    def assign(
        self,
        partition_counts: Mapping[str, int],
        subscriptions: Mapping[str, Subscription],
        warm: Mapping[str, frozenset[TopicPartition]] | None = None,
    ) -> dict[str, set[TopicPartition]]:
        """``warm``: each member's standby partitions of the last generation (the
        leader's peer list), so a departed member's tasks go to their standbys."""
        return cooperative_assign(partition_counts, claims_of(subscriptions, warm))


def claims_of(
    subscriptions: Mapping[str, Subscription],
    warm: Mapping[str, frozenset[TopicPartition]] | None = None,
) -> dict[str, Claim]:
    """The sticky rule's view of the members' subscriptions."""
    warm = warm or {}
    return {
        member: Claim(frozenset(sub.topics), sub.owned, warm.get(member, frozenset()))
        for member, sub in subscriptions.items()
    }


ASSIGNORS: dict[str, Assignor] = {
    RangeAssignor.name: RangeAssignor(),
    RoundRobinAssignor.name: RoundRobinAssignor(),
    CooperativeStickyAssignor.name: CooperativeStickyAssignor(),
}
