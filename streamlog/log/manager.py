"""The log manager: every topic and partition of one data directory.

It owns the directory (a lock file), the durable topic metadata, one ``PartitionLog`` per
partition (directories named ``<topic>-<partition>`` as in Kafka), the consumer-group
offsets kept in ``__consumer_offsets``, and the background maintenance that flushes on
``flush.ms``, enforces retention and compacts ``cleanup.policy=compact`` topics (passes of
``streamlog.log.maintenance``: a partition that fails is logged and skipped, and the
others are maintained as usual).

Thread-safety: topic-level changes (create, delete, add partitions, alter configs) take
the manager's lock; appends and reads go straight to the partition log, which has its
own lock. Maintenance runs in one background thread, so retention and cleaning of a log
never run concurrently with each other.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from streamlog.log.checkpoint import OffsetCheckpoint
from streamlog.log.cleaner import LogCleaner
from streamlog.log.clock import Clock, SystemClock
from streamlog.log.config import TopicConfig
from streamlog.log.data_format import check_format
from streamlog.log.dir_lock import DirectoryLock
from streamlog.log.errors import (
    InvalidPartitionsError,
    InvalidTopicNameError,
    LogClosedError,
    TopicExistsError,
    UnknownTopicError,
)
from streamlog.log.file_cache import FileCache
from streamlog.log.group_offsets import OFFSETS_TOPIC, GroupOffsetStore
from streamlog.log.maintenance import LogMaintenance, MaintenanceReport
from streamlog.log.partition_log import AppendResult, IsolationLevel, PartitionLog, ReadResult
from streamlog.log.partitioner import DefaultPartitioner
from streamlog.log.topic_names import (
    check_collisions,
    check_not_internal,
    is_internal,
    validate_topic_name,
)
from streamlog.log.topic_store import TOPICS_DIR, TopicRecord, TopicStore

__all__ = ["LogManager", "TopicDescription", "PartitionDescription", "MaintenanceReport"]

log = logging.getLogger(__name__)

MAX_PARTITIONS = 10_000
PRODUCER_ID_BLOCK = 1000
_PRODUCER_IDS_FILE = ".producer-ids"
_DELETE_SUFFIX = "-delete"


@dataclass(frozen=True, slots=True)
class PartitionDescription:
    partition: int
    log_start_offset: int
    log_end_offset: int
    size_bytes: int
    segments: int


@dataclass(frozen=True, slots=True)
class TopicDescription:
    name: str
    topic_id: str
    internal: bool
    config: TopicConfig
    overrides: dict[str, str]
    partitions: tuple[PartitionDescription, ...]


class LogManager:
    """See the module docstring. ``LogManager.open(path)`` or use as a context manager."""

    def __init__(
        self,
        data_dir: str,
        *,
        clock: Clock | None = None,
        default_config: TopicConfig | None = None,
        offsets_topic_partitions: int = 10,
        durable_offset_commits: bool = True,
        max_open_segment_files: int | None = None,
    ) -> None:
        """``max_open_segment_files``: how many segment files may be open at once across
        every partition (default: a quarter of ``ulimit -n``; see ``file_cache.py``)."""
        self.data_dir = os.path.abspath(data_dir)
        self.clock: Clock = clock or SystemClock()
        self.default_config = default_config or TopicConfig()
        self._lock = threading.RLock()
        self._dir_lock = DirectoryLock(self.data_dir)
        self._store: TopicStore | None = None
        self._topics: dict[str, TopicRecord] = {}
        self._configs: dict[str, TopicConfig] = {}
        self._logs: dict[str, list[PartitionLog]] = {}
        self.file_cache = FileCache(max_open_segment_files)
        self._partitioner = DefaultPartitioner()
        self._maintenance_pass = LogMaintenance(self.clock, LogCleaner(self.clock))
        self._offsets_topic_partitions = offsets_topic_partitions
        self._durable_offset_commits = durable_offset_commits
        self.group_offsets: GroupOffsetStore | None = None
        self._producer_ids: tuple[int, int] = (0, 0)  # next id, end of reserved block
        self._maintenance: threading.Thread | None = None
        self._stop = threading.Event()
        self._open = False

    @classmethod
    def open(cls, data_dir: str, **kwargs: object) -> LogManager:
        manager = cls(data_dir, **kwargs)  # type: ignore[arg-type]
        manager.start()
        return manager

    def __enter__(self) -> LogManager:
        if not self._open:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- start and stop ------------------------------------------------------------------

    def start(self) -> None:
        """Lock the directory, load topics and their logs, reload committed offsets."""
        os.makedirs(self.data_dir, exist_ok=True)
        self._dir_lock.acquire()
        try:
            had_topics = os.path.isdir(os.path.join(self.data_dir, TOPICS_DIR))
            check_format(self.data_dir, has_data=had_topics)
            self._store = TopicStore(self.data_dir)
            self._topics = self._store.load_all()
            self._remove_orphans()
            for name, record in self._topics.items():
                config = self.default_config.with_overrides(record.overrides)
                self._configs[name] = config
                self._logs[name] = [
                    self._open_partition(name, p, config) for p in range(record.partitions)
                ]
            self._open = True
            if OFFSETS_TOPIC not in self._topics:
                self._create(
                    OFFSETS_TOPIC,
                    self._offsets_topic_partitions,
                    GroupOffsetStore.topic_configs(),
                    internal_ok=True,
                )
            self.group_offsets = GroupOffsetStore(
                self._logs[OFFSETS_TOPIC], self.clock, durable=self._durable_offset_commits
            )
            self.group_offsets.load()
        except BaseException:
            self._close_logs()
            self._dir_lock.release()
            raise
        log.info("log manager opened %s with %d topics", self.data_dir, len(self._topics))

    def close(self) -> None:
        """Stop maintenance, close every log cleanly and release the directory."""
        self.stop_background()
        with self._lock:
            if not self._open:
                return
            self._open = False
            self._close_logs()
            self._dir_lock.release()

    def _close_logs(self) -> None:
        """Close every log; one that cannot be closed cleanly never keeps the others open."""
        for topic, logs in self._logs.items():
            for partition, plog in enumerate(logs):
                try:
                    plog.close()
                except OSError as exc:
                    log.error(
                        "%s-%d could not be closed cleanly (%s); it will be recovered on "
                        "the next start",
                        topic,
                        partition,
                        exc,
                    )
        self._logs.clear()

    def _remove_orphans(self) -> None:
        expected = {
            f"{name}-{p}" for name, rec in self._topics.items() for p in range(rec.partitions)
        }
        for entry in os.listdir(self.data_dir):
            path = os.path.join(self.data_dir, entry)
            if entry.startswith(".") or not os.path.isdir(path) or entry in expected:
                continue
            topic, dash, part = entry.rpartition("-")
            if entry.endswith(_DELETE_SUFFIX) or (dash and part.isdigit()):
                log.info("removing leftover partition directory %s", path)
                shutil.rmtree(path, ignore_errors=True)

    def _check_open(self) -> None:
        if not self._open:
            raise LogClosedError(f"log manager for {self.data_dir} is not open")

    def _open_store(self) -> TopicStore:
        """The topic store, for a change to the topics; ``LogClosedError`` unless the
        manager is open."""
        store = self._store
        if not self._open or store is None:
            raise LogClosedError(f"log manager for {self.data_dir} is not open")
        return store

    def _partition_dir(self, topic: str, partition: int) -> str:
        return os.path.join(self.data_dir, f"{topic}-{partition}")

    # -- topics --------------------------------------------------------------------------

    def create_topic(
        self, name: str, partitions: int = 1, configs: Mapping[str, str | int] | None = None
    ) -> TopicDescription:
        """Create a topic; configs are Kafka topic configs (``retention.ms`` ...)."""
        self._create(name, partitions, configs or {}, internal_ok=False)
        return self.describe_topic(name)

    def _create(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str | int],
        internal_ok: bool,
    ) -> None:
        validate_topic_name(name)
        _check_partition_count(partitions)
        config = self.default_config.with_overrides(configs)
        with self._lock:
            store = self._open_store()
            if name in self._topics:
                raise TopicExistsError(f"topic {name!r} already exists")
            if not internal_ok:
                check_not_internal(name, "create")
            check_collisions(name, self._topics)
            record = TopicRecord.new(
                name, partitions, config.overrides(self.default_config), self.clock.time_ms()
            )
            logs = self._open_new_partitions(name, range(partitions), config)
            try:
                store.save(record)  # the commit point
            except BaseException:
                self._discard_partitions(name, range(partitions), logs)
                raise
            self._topics[name] = record
            self._configs[name] = config
            self._logs[name] = logs

    def internal_topic_logs(
        self, name: str, partitions: int, configs: Mapping[str, str | int]
    ) -> list[PartitionLog]:
        """The partition logs of the internal topic ``name``, created with ``partitions``
        and ``configs`` if it does not exist yet (the broker's own state topics, such as
        ``__transaction_state``; an existing topic keeps its partition count, since the
        partition of a key follows from it)."""
        if not is_internal(name):
            raise InvalidTopicNameError(f"{name!r} is not an internal topic")
        with self._lock:
            if name not in self._topics:
                self._create(name, partitions, configs, internal_ok=True)
            return list(self._logs[name])

    def _open_partition(self, topic: str, partition: int, config: TopicConfig) -> PartitionLog:
        return PartitionLog.open(
            self._partition_dir(topic, partition), config, self.clock, self.file_cache
        )

    def _open_new_partitions(
        self, topic: str, partitions: range, config: TopicConfig
    ) -> list[PartitionLog]:
        """Create the directories of new partitions, all or none.

        If one fails (EMFILE, ENOSPC, a file in the way), the ones already made are
        removed before the error goes up: a failed create leaves no orphan directory.
        """
        logs: list[PartitionLog] = []
        try:
            for p in partitions:
                logs.append(self._open_partition(topic, p, config))
        except BaseException:
            self._discard_partitions(topic, partitions, logs)
            raise
        return logs

    def _discard_partitions(self, topic: str, partitions: range, logs: list[PartitionLog]) -> None:
        """Undo ``_open_new_partitions`` (before the topic store recorded them)."""
        for plog in logs:
            plog.delete()
        for p in partitions:
            path = self._partition_dir(topic, p)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)

    def delete_topic(self, name: str) -> None:
        with self._lock:
            store = self._open_store()
            if name not in self._topics:
                raise UnknownTopicError(f"topic {name!r} does not exist")
            check_not_internal(name, "delete")
            store.remove(name)  # the commit point: the topic is gone from here on
            logs = self._logs.pop(name)
            del self._topics[name]
            del self._configs[name]
        tag = uuid.uuid4().hex
        for p, plog in enumerate(logs):
            plog.close()
            src = self._partition_dir(name, p)
            dst = f"{src}.{tag}{_DELETE_SUFFIX}"
            os.rename(src, dst)
            shutil.rmtree(dst, ignore_errors=True)

    def check_add_partitions(self, name: str, total: int) -> None:
        """Raise what ``add_partitions(name, total)`` would refuse, changing nothing.

        Internal topics never grow: which ``__consumer_offsets`` partition holds a group
        follows from the partition count, so growing it would strand committed offsets.
        """
        _check_partition_count(total)
        check_not_internal(name, "add partitions to")
        record = self._record(name)
        if total <= record.partitions:
            raise InvalidPartitionsError(
                f"topic {name!r} has {record.partitions} partitions; the new count "
                f"{total} must be larger"
            )

    def add_partitions(self, name: str, total: int) -> TopicDescription:
        """Grow a topic to ``total`` partitions (Kafka's CreatePartitions; never shrinks)."""
        with self._lock:
            store = self._open_store()
            self.check_add_partitions(name, total)
            record = self._record(name)
            config = self._configs[name]
            added = range(record.partitions, total)
            new_logs = self._open_new_partitions(name, added, config)
            updated = TopicRecord(
                name, total, record.topic_id, record.created_ms, dict(record.overrides)
            )
            try:
                store.save(updated)
            except BaseException:
                self._discard_partitions(name, added, new_logs)
                raise
            self._topics[name] = updated
            self._logs[name].extend(new_logs)
        return self.describe_topic(name)

    def alter_topic_config(
        self, name: str, configs: Mapping[str, str | int], *, replace: bool = False
    ) -> TopicConfig:
        """Set config overrides (``replace`` drops those not given, as AlterConfigs does)."""
        with self._lock:
            store = self._open_store()
            record = self._record(name)
            overrides: dict[str, str | int] = {} if replace else dict(record.overrides)
            overrides.update(configs)
            config = self.default_config.with_overrides(overrides)
            updated = TopicRecord(
                name,
                record.partitions,
                record.topic_id,
                record.created_ms,
                config.overrides(self.default_config),
            )
            store.save(updated)
            self._topics[name] = updated
            self._configs[name] = config
            for plog in self._logs[name]:
                plog.update_config(config)
            return config

    def _record(self, name: str) -> TopicRecord:
        try:
            return self._topics[name]
        except KeyError:
            raise UnknownTopicError(f"topic {name!r} does not exist") from None

    def list_topics(self, include_internal: bool = False) -> list[str]:
        with self._lock:
            return sorted(n for n in self._topics if include_internal or not is_internal(n))

    def topic_exists(self, name: str) -> bool:
        return name in self._topics

    def partition_count(self, name: str) -> int:
        return self._record(name).partitions

    def topic_config(self, name: str) -> TopicConfig:
        self._record(name)
        return self._configs[name]

    def topic_id(self, name: str) -> str:
        return self._record(name).topic_id

    def describe_topic(self, name: str) -> TopicDescription:
        with self._lock:
            record = self._record(name)
            parts = tuple(
                PartitionDescription(
                    p,
                    plog.log_start_offset,
                    plog.log_end_offset,
                    plog.size_bytes,
                    len(plog.segments),
                )
                for p, plog in enumerate(self._logs[name])
            )
            return TopicDescription(
                name,
                record.topic_id,
                is_internal(name),
                self._configs[name],
                dict(record.overrides),
                parts,
            )

    # -- partitions ----------------------------------------------------------------------

    def partition(self, topic: str, partition: int) -> PartitionLog:
        logs = self._logs.get(topic)
        if logs is None:
            self._check_open()
            raise UnknownTopicError(f"topic {topic!r} does not exist")
        if not 0 <= partition < len(logs):
            raise UnknownTopicError(
                f"topic {topic!r} has no partition {partition} (it has {len(logs)})"
            )
        return logs[partition]

    def append(
        self,
        topic: str,
        partition: int,
        records: bytes | memoryview,
        *,
        transaction_verified: bool = False,
    ) -> AppendResult:
        """Append a client's batches (Produce, the embedded producer).

        Internal topics are refused with ``InternalTopicError``: only the broker writes
        them, through its own handle on their partition logs. ``transaction_verified``:
        see ``PartitionLog.append`` (the transaction coordinator's
        ``run_in_transaction`` vouches for it).
        """
        check_not_internal(topic, "append to")
        return self.partition(topic, partition).append(
            records, transaction_verified=transaction_verified
        )

    def read(
        self,
        topic: str,
        partition: int,
        offset: int,
        max_bytes: int = 1 << 20,
        isolation: IsolationLevel = IsolationLevel.READ_UNCOMMITTED,
    ) -> ReadResult:
        """``PartitionLog.read`` of one partition (``READ_COMMITTED``: up to its last
        stable offset, with the aborted transactions read)."""
        return self.partition(topic, partition).read(offset, max_bytes, isolation=isolation)

    def partition_for(self, topic: str, key: bytes | None) -> int:
        """Kafka's default partitioner: murmur2 of the key, sticky for null keys."""
        return self._partitioner.partition(topic, key, self.partition_count(topic))

    def all_logs(self) -> Iterable[tuple[str, int, PartitionLog]]:
        with self._lock:
            items = [(t, list(logs)) for t, logs in self._logs.items()]
        for topic, logs in items:
            for p, plog in enumerate(logs):
                yield topic, p, plog

    # -- producer ids --------------------------------------------------------------------

    def allocate_producer_id(self) -> int:
        """A producer id never handed out before by this data directory.

        Ids are reserved durably in blocks, so a restart skips the rest of a block instead
        of reusing an id that a live producer may still hold.
        """
        with self._lock:
            self._check_open()
            next_id, end = self._producer_ids
            if next_id >= end:
                checkpoint = OffsetCheckpoint(os.path.join(self.data_dir, _PRODUCER_IDS_FILE))
                next_id = checkpoint.read() or 0
                end = next_id + PRODUCER_ID_BLOCK
                checkpoint.write(end, durable=True)
            self._producer_ids = (next_id + 1, end)
            return next_id

    # -- maintenance ---------------------------------------------------------------------

    def run_maintenance(self) -> MaintenanceReport:
        """One pass of time-based flushing, retention and compaction over every log.

        A partition whose maintenance raises is logged and skipped for a while; the
        others are maintained as usual (see ``streamlog.log.maintenance``).
        """
        return self._maintenance_pass.run(self.all_logs())

    def start_background(self, interval_ms: int = 1000) -> None:
        """Run ``run_maintenance`` every ``interval_ms`` in a daemon thread."""
        if self._maintenance is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval_ms / 1000):
                try:
                    self.run_maintenance()
                except Exception:
                    # a bug in the pass itself: a partition's own failure never gets here
                    log.exception("log maintenance failed")

        self._maintenance = threading.Thread(
            target=loop, name="streamlog-log-maintenance", daemon=True
        )
        self._maintenance.start()

    def stop_background(self) -> None:
        thread = self._maintenance
        if thread is not None:
            self._stop.set()
            thread.join()
            self._maintenance = None


def _check_partition_count(partitions: int) -> None:
    if not isinstance(partitions, int) or isinstance(partitions, bool):
        raise InvalidPartitionsError(f"partition count must be an integer, not {partitions!r}")
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise InvalidPartitionsError(
            f"partition count must be between 1 and {MAX_PARTITIONS}, not {partitions}"
        )
