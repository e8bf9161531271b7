"""The APIs this codec serves, the versions of each, and version negotiation.

``SUPPORTED_VERSIONS`` is the single source of truth: the server decodes exactly these,
advertises them in its ApiVersions response, and our client negotiates within them.
Minimums are Kafka 4's (older versions were removed by KIP-896 and kio does not model
them); maximums stop before versions that need features the broker does not have (topic
IDs in Fetch v13+/Produce v13, the KIP-848 group protocol, KIP-890 transactions v2,
batched ListGroups type filters).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, NamedTuple

__all__ = [
    "ApiKey",
    "VersionRange",
    "SUPPORTED_VERSIONS",
    "negotiate",
    "negotiate_all",
]


class ApiKey(enum.IntEnum):
    """Kafka API keys of the requests this codec serves."""

    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    INIT_PRODUCER_ID = 22
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    TXN_OFFSET_COMMIT = 28
    DESCRIBE_CONFIGS = 32
    SASL_AUTHENTICATE = 36
    CREATE_PARTITIONS = 37
    DESCRIBE_TRANSACTIONS = 65
    LIST_TRANSACTIONS = 66


class VersionRange(NamedTuple):
    """An inclusive range of versions of one API."""

    min: int
    max: int

    def __contains__(self, version: object) -> bool:
        return isinstance(version, int) and self.min <= version <= self.max


SUPPORTED_VERSIONS: Final[Mapping[int, VersionRange]] = MappingProxyType(
    {
        ApiKey.PRODUCE: VersionRange(3, 9),
        ApiKey.FETCH: VersionRange(4, 12),
        ApiKey.LIST_OFFSETS: VersionRange(1, 7),
        ApiKey.METADATA: VersionRange(0, 12),
        ApiKey.OFFSET_COMMIT: VersionRange(2, 8),
        ApiKey.OFFSET_FETCH: VersionRange(1, 8),
        ApiKey.FIND_COORDINATOR: VersionRange(0, 4),
        ApiKey.JOIN_GROUP: VersionRange(0, 9),
        ApiKey.HEARTBEAT: VersionRange(0, 4),
        ApiKey.LEAVE_GROUP: VersionRange(0, 5),
        ApiKey.SYNC_GROUP: VersionRange(0, 5),
        ApiKey.DESCRIBE_GROUPS: VersionRange(0, 5),
        ApiKey.LIST_GROUPS: VersionRange(0, 4),
        ApiKey.SASL_HANDSHAKE: VersionRange(0, 1),
        ApiKey.API_VERSIONS: VersionRange(0, 4),
        ApiKey.CREATE_TOPICS: VersionRange(2, 7),
        ApiKey.DELETE_TOPICS: VersionRange(1, 6),
        ApiKey.INIT_PRODUCER_ID: VersionRange(0, 4),
        ApiKey.ADD_PARTITIONS_TO_TXN: VersionRange(0, 3),
        ApiKey.ADD_OFFSETS_TO_TXN: VersionRange(0, 3),
        ApiKey.END_TXN: VersionRange(0, 3),
        ApiKey.TXN_OFFSET_COMMIT: VersionRange(0, 3),
        ApiKey.DESCRIBE_CONFIGS: VersionRange(1, 4),
        ApiKey.SASL_AUTHENTICATE: VersionRange(0, 2),
        ApiKey.CREATE_PARTITIONS: VersionRange(0, 3),
        ApiKey.DESCRIBE_TRANSACTIONS: VersionRange(0, 0),
        ApiKey.LIST_TRANSACTIONS: VersionRange(0, 1),
    }
)


def negotiate(ours: VersionRange, theirs: VersionRange) -> int | None:
    """The highest version both sides support, or ``None`` if the ranges are disjoint."""
    low = max(ours.min, theirs.min)
    high = min(ours.max, theirs.max)
    return high if low <= high else None


def negotiate_all(
    theirs: Mapping[int, VersionRange],
    ours: Mapping[int, VersionRange] = SUPPORTED_VERSIONS,
) -> dict[int, int]:
    """Per API key both sides know, the version to use; keys with no common version are left out.

    ``theirs`` is typically what a broker's ApiVersions response advertised.
    """
    chosen: dict[int, int] = {}
    for api_key, our_range in ours.items():
        their_range = theirs.get(api_key)
        if their_range is None:
            continue
        version = negotiate(our_range, their_range)
        if version is not None:
            chosen[api_key] = version
    return chosen
