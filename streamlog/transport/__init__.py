"""The client side of streamlog: one async interface, embedded or over Kafka's protocol.

``open_transport(url)`` picks the implementation from the broker URL; a Kafka one logs
in and encrypts as ``ClientSecurity`` says (by default, from ``STREAMLOG_SASL_*`` and
``STREAMLOG_SSL_*``). ``connect(url)`` also starts it, reaching a ``file://`` log a
running worker holds through the worker's Kafka listener (``connect.py``). ``partition_for_key``
is the partitioner every transport uses for keyed records (Kafka's murmur2), for code
above that must place keys where the log does (tables).
"""

from __future__ import annotations

from streamlog.log.partitioner import partition_for_key
from streamlog.transport.base import Admin, Consumer, Producer, RebalanceListener, Transport
from streamlog.transport.connect import connect
from streamlog.transport.errors import (
    AuthenticationError,
    BrokerUnavailableError,
    SecurityConfigError,
    TlsError,
    TransportError,
    UnsupportedBrokerURLError,
)
from streamlog.transport.security import SASL_MECHANISMS, SECURITY_ENV, ClientSecurity
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
    "AuthenticationError",
    "ClientSecurity",
    "SASL_MECHANISMS",
    "SECURITY_ENV",
    "SecurityConfigError",
    "TlsError",
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


def open_transport(url: str, security: ClientSecurity | None = None) -> Transport:
    """A transport for ``url`` (not started: ``await transport.start()``).

    ``security`` applies to ``kafka://`` and ``kafka+ssl://`` URLs; None reads it from the
    ``STREAMLOG_*`` variables (``ClientSecurity.from_env``); the in-process log needs none.

    :raises SecurityConfigError: settings that cannot work with ``url``.
    """
    parsed = parse_broker_url(url)
    if parsed.scheme == "kafka":
        from streamlog.transport.kafka import KafkaTransport

        return KafkaTransport(parsed, security=security or ClientSecurity.from_env())
    from streamlog.transport.embedded import EmbeddedTransport

    return EmbeddedTransport(parsed)
