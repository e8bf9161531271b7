"""The client side of streamlog: one async interface, embedded or over Kafka's protocol.

``open_transport(url)`` picks the implementation from the broker URL; ``connect(url)``
also starts it, reaching a ``file://`` log a running worker holds through the worker's
Kafka listener (``connect.py``). ``partition_for_key``
is the partitioner every transport uses for keyed records (Kafka's murmur2), for code
above that must place keys where the log does (tables).
"""

from __future__ import annotations

from streamlog.log.partitioner import partition_for_key
from streamlog.transport.base import Admin, Consumer, Producer, RebalanceListener, Transport
from streamlog.transport.connect import connect
from streamlog.transport.errors import (
    BrokerUnavailableError,
    TransportError,
    UnsupportedBrokerURLError,
)
from streamlog.transport.types import (
    ConsumerRecord,
    GroupInfo,
    OffsetAndMetadata,
    RecordMetadata,
    TopicInfo,
    TopicPartition,
)
from streamlog.transport.url import (
    BROKER_ENV,
    DEFAULT_BROKER_URL,
    BrokerURL,
    parse_broker_url,
)

__all__ = [
    "Admin",
    "BROKER_ENV",
    "BrokerURL",
    "BrokerUnavailableError",
    "Consumer",
    "ConsumerRecord",
    "DEFAULT_BROKER_URL",
    "GroupInfo",
    "OffsetAndMetadata",
    "Producer",
    "RebalanceListener",
    "RecordMetadata",
    "TopicInfo",
    "TopicPartition",
    "Transport",
    "TransportError",
    "UnsupportedBrokerURLError",
    "connect",
    "open_transport",
    "parse_broker_url",
    "partition_for_key",
]


def open_transport(url: str) -> Transport:
    """A transport for ``url`` (not started: ``await transport.start()``)."""
    parsed = parse_broker_url(url)
    if parsed.scheme == "kafka":
        from streamlog.transport.kafka import KafkaTransport

        return KafkaTransport(parsed)
    from streamlog.transport.embedded import EmbeddedTransport

    return EmbeddedTransport(parsed)
