"""Connectors: reusable sources and sinks between topics and outside systems (Kafka's
Connect API, in Python). ``base.py`` says what a connector is."""

from streamlog.connect.base import Position, Sink, SinkRecord, Source, SourceRecord
from streamlog.connect.errors import (
    BadRecordError,
    ConnectError,
    ConnectorConfigError,
    SinkError,
    SinkUnavailableError,
    SourceError,
)

__all__ = [
    "Source",
    "Sink",
    "SourceRecord",
    "SinkRecord",
    "Position",
    "ConnectError",
    "ConnectorConfigError",
    "SourceError",
    "SinkError",
    "SinkUnavailableError",
    "BadRecordError",
]
