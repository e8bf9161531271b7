"""HTTP connectors, as the registry finds them: source type ``webhook`` (``webhook.py``:
POSTed JSON becomes records, answered once they are durable in the log) and sink type
``http`` (``http_sink.py``: records POSTed in batches, with retries and backoff)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamlog.connect.base import Sink, Source
from streamlog.connect.http_sink import HttpSink, http_sink_from_config
from streamlog.connect.webhook import WebhookSource, webhook_from_config

__all__ = [
    "HttpSink",
    "WebhookSource",
    "sink_from_config",
    "source_from_config",
]


def source_from_config(name: str, config: Mapping[str, Any]) -> Source:
    """The ``webhook`` source of a ``[[source]]`` table (``ConnectorConfigError`` naming a
    key that is unknown or cannot work)."""
    return webhook_from_config(name, config)


def sink_from_config(name: str, config: Mapping[str, Any]) -> Sink:
    """The ``http`` sink of a ``[[sink]]`` table (``ConnectorConfigError`` naming a key
    that is unknown or cannot work)."""
    return http_sink_from_config(name, config)
