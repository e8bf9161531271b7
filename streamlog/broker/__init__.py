"""``streamlog broker``: the log engine served over Kafka's wire protocol.

The server only moves bytes: frames are decoded by ``streamlog.protocol``, each API has
one handler in ``streamlog.broker.handlers``, and stored record batches go out as they
were written.
"""

from streamlog.broker.config import BrokerConfig
from streamlog.broker.server import Broker, BrokerStartError

__all__ = ["Broker", "BrokerConfig", "BrokerStartError"]
