"""Plain data passed across the transport interface: partitions, records, metadata."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from typing import NamedTuple

__all__ = [
    "TopicPartition",
    "RecordMetadata",
    "metadata_run",
    "ConsumerRecord",
    "OffsetAndMetadata",
    "ConsumerGroupMetadata",
    "TxnState",
    "PartitionInfo",
    "TopicInfo",
    "GroupMemberInfo",
    "GroupPartitionLag",
    "GroupInfo",
    "GroupPeer",
    "Header",
]

Header = tuple[str, bytes | None]


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class RecordMetadata(NamedTuple):
    """Where a produced record landed."""

    topic: str
    partition: int
    offset: int
    timestamp: int


_new_metadata = partial(tuple.__new__, RecordMetadata)


def metadata_run(
    topic: str, partition: int, offsets: Sequence[int], timestamp: int
) -> list[RecordMetadata]:
    """``RecordMetadata`` of records at ``offsets`` of one partition, all stamped
    ``timestamp``: what ``send_many`` results are made of, built with no Python call per
    record (a commit's changelog ``send_many`` has one record per changed key)."""
    n = len(offsets)
    fields = zip(repeat(topic, n), repeat(partition, n), offsets, repeat(timestamp, n), strict=True)
    return list(map(_new_metadata, fields))


class ConsumerRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[Header] = ()


class OffsetAndMetadata(NamedTuple):
    offset: int
    metadata: str = ""


class TxnState(enum.Enum):
    """A transactional producer's state, the same on every transport (error messages
    quote the values)."""

    UNINITIALIZED = "uninitialized"  # init_transactions not called or not done yet
    READY = "ready"  # no transaction open
    IN_TRANSACTION = "in transaction"
    COMMITTING = "committing"
    ABORTING = "aborting"
    ABORTABLE_ERROR = "abortable error"  # only abort_transaction helps
    FATAL_ERROR = "fatal error"  # fenced or refused: close the producer


class ConsumerGroupMetadata(NamedTuple):
    """A group member's identity as a transactional producer hands it to the group's
    coordinator with its offsets (KIP-447): offsets of a member the group has fenced
    since (an older generation) are refused."""

    group_id: str
    generation_id: int = -1
    member_id: str = ""
    group_instance_id: str | None = None


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    log_start_offset: int = -1
    log_end_offset: int = -1


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    partitions: tuple[PartitionInfo, ...]
    configs: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    topic_overrides: frozenset[str] | None = None
    """The names among ``configs`` set on the topic itself rather than inherited from the
    broker's defaults (what a copy of the topic should carry); None: the cluster did not
    say."""


@dataclass(frozen=True, slots=True)
class GroupMemberInfo:
    member_id: str
    client_id: str
    host: str
    assignment: tuple[TopicPartition, ...]


@dataclass(frozen=True, slots=True)
class GroupPartitionLag:
    topic: str
    partition: int
    log_end_offset: int
    committed_offset: int  # -1 when nothing is committed
    member_id: str | None

    @property
    def lag(self) -> int:
        if self.committed_offset < 0:
            return self.log_end_offset
        return max(0, self.log_end_offset - self.committed_offset)


@dataclass(frozen=True, slots=True)
class GroupInfo:
    group_id: str
    state: str
    protocol: str
    members: tuple[GroupMemberInfo, ...]
    partitions: tuple[GroupPartitionLag, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupPeer:
    """A member of a consumer's group as the last rebalance left it: the ``user_data`` it
    advertised when it subscribed (opaque to the transport) and the partitions the group
    gave it. What Kafka Streams shares for interactive queries (each member's
    ``application.server`` and partitions), so that one member can tell which other holds
    a key."""

    member_id: str
    user_data: bytes
    partitions: frozenset[TopicPartition]
    standby: frozenset[TopicPartition] = frozenset()
    """Partitions it keeps warm as a standby replica (their tables' changelogs)."""
