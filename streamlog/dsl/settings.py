"""App settings, with Faust's names and meanings (``app.conf``).

Checked once when the app is made, so a typo or an impossible value fails at import time
with the setting's name in the message, not later inside the worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

from streamlog.dsl.errors import ImproperlyConfigured

__all__ = ["Settings", "DEFAULT_BROKER", "BROKER_ENV", "PROCESSING_GUARANTEES"]

DEFAULT_BROKER = "file://./.streamlog"
BROKER_ENV = "STREAMLOG_BROKER"
PROCESSING_GUARANTEES = ("at_least_once",)


@dataclass
class Settings:
    id: str
    broker: str = field(default_factory=lambda: os.environ.get(BROKER_ENV) or DEFAULT_BROKER)
    datadir: str | None = None  # default: "<id>-data", next to where the worker runs
    topic_partitions: int = 8
    processing_guarantee: str = "at_least_once"
    broker_commit_every: int = 10_000
    broker_commit_interval: float = 2.8
    broker_session_timeout: float = 10.0
    broker_heartbeat_interval: float = 1.0
    broker_max_poll_records: int = 10_000
    consumer_auto_offset_reset: str = "earliest"
    key_serializer: str = "raw"
    value_serializer: str = "json"
    stream_buffer_maxsize: int = 4096  # channel values waiting per reader
    stream_inbox_batches: int = 8  # fetched batches waiting per agent (back-pressure)
    # "crash" (stop the worker, the failing event uncommitted: nothing is lost, as in Kafka
    # Streams and Quix), "restart" (skip the event: Faust's behaviour) or "dlq"
    agent_on_error: str = "crash"
    producer_acks: int = -1
    producer_linger_ms: int = 5
    producer_compression: str = "none"
    producer_max_batch_size: int = 1 << 20
    web_enabled: bool = False
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    shutdown_timeout: float = 30.0
    store: str = "rocksdb://"  # table stores: "rocksdb://" or "memory://"
    table_cleanup_interval: float = 30.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id or not isinstance(self.id, str):
            raise ImproperlyConfigured(f"an App needs an id (a non-empty string), got {self.id!r}")
        bad = set(self.id) - set(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
        )
        if bad:
            raise ImproperlyConfigured(
                f"app id {self.id!r} may use only letters, digits, '.', '_' and '-' "
                f"(it names topics and the consumer group); found {''.join(sorted(bad))!r}"
            )
        if self.processing_guarantee not in PROCESSING_GUARANTEES:
            raise ImproperlyConfigured(
                f"processing_guarantee={self.processing_guarantee!r} is not supported "
                f"(supported: {', '.join(PROCESSING_GUARANTEES)}; exactly-once is not built yet)"
            )
        for name in (
            "topic_partitions",
            "broker_commit_every",
            "broker_max_poll_records",
            "stream_buffer_maxsize",
            "stream_inbox_batches",
        ):
            if int(getattr(self, name)) < 1:
                raise ImproperlyConfigured(f"{name} must be >= 1, not {getattr(self, name)!r}")
        for name in ("broker_commit_interval", "broker_session_timeout", "shutdown_timeout"):
            if float(getattr(self, name)) <= 0:
                raise ImproperlyConfigured(f"{name} must be > 0, not {getattr(self, name)!r}")
        if self.consumer_auto_offset_reset not in ("earliest", "latest"):
            raise ImproperlyConfigured("consumer_auto_offset_reset must be 'earliest' or 'latest'")
        if self.store not in ("rocksdb://", "memory://"):
            raise ImproperlyConfigured(
                f"store must be 'rocksdb://' or 'memory://', not {self.store!r}"
            )
        if self.datadir is None:
            self.datadir = f"{self.id}-data"

    @classmethod
    def from_kwargs(cls, id: str, options: dict[str, Any]) -> Settings:
        """Settings from ``App(id, **options)``; ``ImproperlyConfigured`` naming unknown
        settings."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ImproperlyConfigured(
                f"unknown App setting(s): {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known - {'id', 'extra'}))})"
            )
        return cls(id=id, **options)

    @property
    def app_datadir(self) -> str:
        """Where this app's table stores live (``datadir``, default ``<id>-data``)."""
        return self.datadir or f"{self.id}-data"
