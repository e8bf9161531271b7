"""The embedded transport: ``memory://`` and ``file://PATH``, the log engine in-process.

``open_transport("memory://")`` returns an ``EmbeddedTransport``; see ``transport.py``
for what it owns, ``producer.py``, ``txn_producer.py``, ``consumer.py``, ``admin.py`` for
the clients, ``groups.py`` for consumer groups without a coordinator and
``transactions.py`` for the log's transaction coordinator.
"""

from streamlog.transport.embedded.admin import EmbeddedAdmin
from streamlog.transport.embedded.consumer import EmbeddedConsumer
from streamlog.transport.embedded.producer import EmbeddedProducer, RecordFuture
from streamlog.transport.embedded.transport import EmbeddedTransport
from streamlog.transport.embedded.txn_producer import EmbeddedTransactionalProducer

__all__ = [
    "EmbeddedAdmin",
    "EmbeddedConsumer",
    "EmbeddedProducer",
    "EmbeddedTransactionalProducer",
    "EmbeddedTransport",
    "RecordFuture",
]
