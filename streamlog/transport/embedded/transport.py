"""``EmbeddedTransport``: the transport interface over a log engine in this process.

``memory://`` runs a ``LogManager`` in a fresh temporary directory on tmpfs (``/dev/shm``
when the machine has it, else the system temporary directory), removed on ``close``:
nothing reaches persistent storage, and committed offsets are not fsynced. ``file://PATH``
runs it on PATH (created if missing); the log's directory lock lets one process own it,
a second one gets ``BrokerUnavailableError``.

The transport owns what a broker would: the log manager and its background maintenance
(retention, compaction, ``flush.ms``), topic auto-creation, the consumer groups
(``groups.py``), the log's transaction coordinator (``transactions.py``: loaded at start,
timed-out transactions aborted every ``maintenance_interval_ms``) and the wake-ups from
producers to long-polling consumers (``wakeup.py``). Producers, consumers and the admin
client it hands out call the log directly: appends and reads are synchronous calls on the
event loop thread, which is what makes this transport fast (no sockets, no copies beyond
the codec).

Not thread-safe: use a transport, and everything it hands out, from one event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence

from streamlog.log import LogManager, TopicConfig
from streamlog.log import errors as log_errors
from streamlog.log.clock import Clock
from streamlog.transport.base import Compression
from streamlog.transport.embedded.admin import EmbeddedAdmin
from streamlog.transport.embedded.consumer import EmbeddedConsumer
from streamlog.transport.embedded.errors import translate, translated
from streamlog.transport.embedded.groups import GroupRegistry
from streamlog.transport.embedded.producer import EmbeddedProducer
from streamlog.transport.embedded.transactions import EmbeddedTransactions
from streamlog.transport.embedded.txn_producer import EmbeddedTransactionalProducer
from streamlog.transport.embedded.wakeup import Notifier
from streamlog.transport.errors import (
    BrokerUnavailableError,
    TransportClosedError,
    UnknownTopicError,
    UnsupportedBrokerURLError,
)
from streamlog.transport.url import BrokerURL, parse_broker_url

__all__ = ["EmbeddedTransport"]

log = logging.getLogger(__name__)

SHM_DIR = "/dev/shm"


def memory_base_dir() -> str | None:
    """Where ``memory://`` logs live: tmpfs if there is one, else the system default."""
    if os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK | os.X_OK):
        return SHM_DIR
    return None


class EmbeddedTransport:
    """The log engine behind the ``Transport`` protocol; see the module docstring.

    Options (keyword-only):

    * ``auto_create_topics`` (default True): sending to, or subscribing to, a missing
      topic creates it with ``default_partitions`` partitions, as a Kafka broker with
      ``auto.create.topics.enable`` does. Off, those raise ``UnknownTopicError``.
    * ``default_partitions`` (default 1): partitions of auto-created topics.
    * ``maintenance_interval_ms`` (default 1000): how often retention, compaction and
      ``flush.ms`` run in the log manager's background thread, and how often
      transactions open past their ``transaction_timeout_ms`` are aborted.
    * ``clock`` and ``default_config``: passed to the ``LogManager`` (tests).
    """

    def __init__(
        self,
        url: BrokerURL | str = "memory://",
        *,
        auto_create_topics: bool = True,
        default_partitions: int = 1,
        maintenance_interval_ms: int = 1000,
        clock: Clock | None = None,
        default_config: TopicConfig | None = None,
    ) -> None:
        parsed = parse_broker_url(url) if isinstance(url, str) else url
        if parsed.scheme not in ("memory", "file"):
            raise UnsupportedBrokerURLError(
                f"the embedded transport takes memory:// or file://PATH, not {parsed}"
            )
        self.url = str(parsed)
        self._parsed = parsed
        self.auto_create_topics = auto_create_topics
        self.default_partitions = default_partitions
        self._maintenance_interval_ms = maintenance_interval_ms
        # memory:// commits skip the fsync: nothing there outlives the process anyway.
        self.durable_commits = parsed.scheme == "file"
        self._clock = clock
        self._default_config = default_config
        self._manager: LogManager | None = None
        self._transactions: EmbeddedTransactions | None = None
        self._memory_dir: str | None = None
        self._closed = False
        self.notifier = Notifier()
        # Bumped on every topic change; producers and groups re-read partition counts.
        self.metadata_version = 0
        self.groups = GroupRegistry(
            self._partition_count_or_zero, self.notifier.notify, lambda: self.metadata_version
        )
        # Weak: a consumer dropped without close() leaves its group when collected.
        self._producers: weakref.WeakSet[EmbeddedProducer] = weakref.WeakSet()
        self._consumers: weakref.WeakSet[EmbeddedConsumer] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"EmbeddedTransport({self.url!r})"

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def data_dir(self) -> str | None:
        """The log's directory (a temporary one for ``memory://``), once started."""
        return self._manager.data_dir if self._manager is not None else None

    @property
    def manager(self) -> LogManager:
        """The log engine underneath (tools and tests); raises before ``start``."""
        if self._manager is None:
            raise TransportClosedError(f"{self.url} is not started (or closed)")
        return self._manager

    def _require_started(self) -> None:
        if self._manager is None:
            raise TransportClosedError(f"{self.url} is not started (or closed)")

    async def start(self) -> None:
        if self._closed:
            raise TransportClosedError(f"{self.url} was closed")
        if self._manager is not None:
            return
        manager, transactions = await asyncio.to_thread(self._open_manager)
        self._manager, self._transactions = manager, transactions
        transactions.start_expiring()

    @property
    def transactions(self) -> EmbeddedTransactions:
        """The log's transaction coordinator (see ``transactions.py``); raises before
        ``start``."""
        if self._transactions is None:
            raise TransportClosedError(f"{self.url} is not started (or closed)")
        return self._transactions

    def _open_manager(self) -> tuple[LogManager, EmbeddedTransactions]:
        kwargs: dict[str, object] = {}
        if self._clock is not None:
            kwargs["clock"] = self._clock
        if self._default_config is not None:
            kwargs["default_config"] = self._default_config
        if self._parsed.scheme == "memory":
            path = tempfile.mkdtemp(prefix="streamlog-memory-", dir=memory_base_dir())
            self._memory_dir = path
            kwargs["durable_offset_commits"] = False
        elif self._parsed.path is not None:
            path = self._parsed.path
        else:
            raise UnsupportedBrokerURLError(f"{self._parsed} has no directory (file://PATH)")
        manager = LogManager(path, **kwargs)  # type: ignore[arg-type]
        try:
            manager.start()
        except log_errors.DataDirectoryLockedError as exc:
            self._remove_memory_dir()
            raise BrokerUnavailableError(f"cannot open {self.url}: {exc}") from exc
        except log_errors.LogError as exc:
            self._remove_memory_dir()
            raise translate(exc) from exc
        except OSError as exc:
            self._remove_memory_dir()
            raise BrokerUnavailableError(f"cannot open {self.url}: {exc}") from exc
        try:
            transactions = EmbeddedTransactions(
                manager,
                self.notifier,
                durable=self.durable_commits,
                expire_interval_ms=self._maintenance_interval_ms,
            )
            transactions.load()
        except BaseException:
            self._close_manager(manager)
            raise
        manager.start_background(self._maintenance_interval_ms)
        return manager, transactions

    def _remove_memory_dir(self) -> None:
        if self._memory_dir is not None:
            shutil.rmtree(self._memory_dir, ignore_errors=True)
            self._memory_dir = None

    async def close(self) -> None:
        """Close consumers (leaving their groups) and producers (flushing), then the log."""
        if self._closed:
            return
        self._closed = True
        for consumer in list(self._consumers):
            try:
                await consumer.close()
            except Exception:  # one consumer's listener must not keep the log open
                log.exception("closing consumer %r failed", consumer)
        for producer in list(self._producers):
            await producer.close()
        self.notifier.notify_all()
        if self._transactions is not None:
            await self._transactions.close()
            self._transactions = None
        manager, self._manager = self._manager, None
        if manager is not None:
            await asyncio.to_thread(self._close_manager, manager)

    def _close_manager(self, manager: LogManager) -> None:
        try:
            manager.close()
        finally:
            self._remove_memory_dir()

    async def __aenter__(self) -> EmbeddedTransport:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- clients -------------------------------------------------------------------------

    def producer(
        self,
        *,
        acks: int = -1,
        linger_ms: int = 5,
        batch_size: int = 1 << 20,
        compression: Compression = "none",
        idempotent: bool = True,
        client_id: str = "streamlog",
        transactional_id: str | None = None,
        transaction_timeout_ms: int = 60_000,
    ) -> EmbeddedProducer:
        """A producer; with ``transactional_id`` an ``EmbeddedTransactionalProducer``
        over this log's transaction coordinator."""
        self._require_started()
        producer: EmbeddedProducer
        if transactional_id is not None:
            producer = EmbeddedTransactionalProducer(
                self,
                self.transactions,
                transactional_id=transactional_id,
                transaction_timeout_ms=transaction_timeout_ms,
                acks=acks,
                linger_ms=linger_ms,
                batch_size=batch_size,
                compression=compression,
                idempotent=idempotent,
                client_id=client_id,
            )
        else:
            producer = EmbeddedProducer(
                self,
                acks=acks,
                linger_ms=linger_ms,
                batch_size=batch_size,
                compression=compression,
                idempotent=idempotent,
                client_id=client_id,
            )
        self._producers.add(producer)
        return producer

    def consumer(
        self,
        *,
        group_id: str | None = None,
        client_id: str = "streamlog",
        auto_offset_reset: str = "earliest",
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 1_000,
        max_poll_records: int = 10_000,
        fetch_max_bytes: int = 50 * 1024 * 1024,
        isolation_level: str = "read_uncommitted",
        partition_assignment_strategy: Sequence[str] = ("range", "roundrobin"),
        standby_replicas: int = 0,
    ) -> EmbeddedConsumer:
        """A consumer; its group, if any, is always cooperative and sticky (the embedded
        groups wait for a partition to be free before giving it, so they need no other
        protocol): ``partition_assignment_strategy`` is accepted for the same calls to
        work on every transport."""
        self._require_started()
        consumer = EmbeddedConsumer(
            self,
            group_id=group_id,
            client_id=client_id,
            auto_offset_reset=auto_offset_reset,
            session_timeout_ms=session_timeout_ms,
            max_poll_records=max_poll_records,
            fetch_max_bytes=fetch_max_bytes,
            isolation_level=isolation_level,
            standby_replicas=standby_replicas,
        )
        self._consumers.add(consumer)
        return consumer

    def admin(self) -> EmbeddedAdmin:
        self._require_started()
        return EmbeddedAdmin(self)

    # -- for the clients -----------------------------------------------------------------

    def forget(self, client: EmbeddedProducer | EmbeddedConsumer) -> None:
        """A client closed itself."""
        self._producers.discard(client)  # type: ignore[arg-type]
        self._consumers.discard(client)  # type: ignore[arg-type]

    def topics_changed(self) -> None:
        """A topic was created, deleted or grown: cached partition counts are stale."""
        self.metadata_version += 1
        for producer in list(self._producers):
            producer.topics_changed()
        # Long-polling group members look again: their topics may have grown.
        self.groups.notify_all()

    def ensure_topic(self, topic: str, *, create: bool = True) -> int:
        """The partition count of ``topic``, auto-creating it if allowed and asked to."""
        manager = self.manager
        try:
            return manager.partition_count(topic)
        except log_errors.UnknownTopicError:
            if not (create and self.auto_create_topics):
                raise UnknownTopicError(f"topic {topic!r} does not exist") from None
        with translated():
            try:
                manager.create_topic(topic, self.default_partitions)
                log.info("auto-created topic %r with %d partitions", topic, self.default_partitions)
            except log_errors.TopicExistsError:
                pass
            self.topics_changed()
            return manager.partition_count(topic)

    def _partition_count_or_zero(self, topic: str) -> int:
        manager = self._manager
        if manager is None or not manager.topic_exists(topic):
            return 0
        return manager.partition_count(topic)
