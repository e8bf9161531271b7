"""The Kafka-protocol transport: our own asyncio client (``kafka://HOST:PORT[,...]``).

Modules, bottom up: ``connection`` (one TCP connection, pipelined requests),
``cluster`` (metadata and a client's connections), ``offsets`` (ListOffsets, the group
coordinator's offset requests), ``batches``/``producer``, ``fetcher``/``group``/
``consumer`` (with ``assignors``), ``admin``, and ``transport`` tying them together.
Wire messages come from ``streamlog.protocol``, record batches from ``streamlog.log``.
"""

from streamlog.transport.kafka.admin import KafkaAdmin
from streamlog.transport.kafka.consumer import KafkaConsumer
from streamlog.transport.kafka.producer import KafkaProducer
from streamlog.transport.kafka.transport import KafkaTransport

__all__ = ["KafkaTransport", "KafkaProducer", "KafkaConsumer", "KafkaAdmin"]
