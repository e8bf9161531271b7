"""streamlog: stream processing for Python on a bundled, Kafka-compatible log.

Importing this package defines things and does nothing else: no connection, no thread,
no logging configuration.
"""

from streamlog.dsl import (
    Agent,
    AgentError,
    App,
    AppNotFoundError,
    AskTimeoutError,
    Channel,
    Event,
    ImproperlyConfigured,
    ManualAsyncClock,
    Message,
    Stream,
    StreamlogError,
    Topic,
)
from streamlog.serde import (
    Codec,
    CodecRegistry,
    KeyDecodeError,
    Record,
    Schema,
    SerdeError,
    ValueDecodeError,
    codecs,
    default_codecs,
)

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentError",
    "App",
    "AppNotFoundError",
    "AskTimeoutError",
    "Channel",
    "Codec",
    "CodecRegistry",
    "Event",
    "ImproperlyConfigured",
    "KeyDecodeError",
    "ManualAsyncClock",
    "Message",
    "Record",
    "Schema",
    "SerdeError",
    "Stream",
    "StreamlogError",
    "Topic",
    "ValueDecodeError",
    "__version__",
    "codecs",
    "default_codecs",
]
