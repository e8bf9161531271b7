"""``app.Table``: a dict-like, partitioned table in a store, backed by a changelog topic.

Table partition N lives in a store partition (RocksDB under ``<datadir>/tables/<table>/N``,
or memory) and in partition N of the compacted changelog ``<app-id>-<table>-changelog``.
A key belongs to the partition Kafka's partitioner gives its serialised key, i.e. the one a
stream keyed by the same key (after ``group_by``) is read from, so the worker that owns an
input partition owns the table partition its keys update. Writing a key whose partition
this worker does not own is an error that says so (re-key the stream with ``group_by``).

Reads and writes go through the partition's open ``PartitionTransaction`` (read your own
writes); the app's commit sequence produces the changes to the changelog, writes the store
with the changelog offset, and only then commits source offsets. When partitions are
assigned, each table partition is recovered from its changelog before any event of that
partition reaches an agent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from streamlog.dsl.errors import ImproperlyConfigured, StreamlogError
from streamlog.log.partitioner import partition_for_key
from streamlog.state.changelog import changelog_configs, changelog_topic_name
from streamlog.state.memory_store import MemoryStore
from streamlog.state.recovery import recover_partition
from streamlog.state.rocksdb_store import RocksDBStore
from streamlog.state.stores import Store, StorePartition
from streamlog.state.transaction import PartitionTransaction
from streamlog.transport.types import TopicPartition

if TYPE_CHECKING:
    from streamlog.dsl.app import App

__all__ = ["Table", "PartitionNotOwnedError"]

log = logging.getLogger(__name__)


class PartitionNotOwnedError(StreamlogError):
    """A table key whose partition is not assigned to this worker."""


class Table:
    """Faust's ``app.Table(name, default=int)``: see the module docstring."""

    def __init__(
        self,
        app: App,
        name: str,
        *,
        default: Callable[[], Any] | None = None,
        key_type: Any = None,
        value_type: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = "json",
        partitions: int | None = None,
        store: str | None = None,
        help: str | None = None,
    ) -> None:
        self.app = app
        self.name = name
        self.default = default
        self.help = help or ""
        self.partitions = partitions or app.conf.topic_partitions
        store_url = store or app.conf.store
        if store_url not in ("rocksdb://", "memory://"):
            raise ImproperlyConfigured(f"table {name}: store must be rocksdb:// or memory://")
        self.store_kind = store_url[: -len("://")]
        self.changelog_topic = app.topic(
            changelog_topic_name(app.conf.id, name),
            key_type=key_type,
            value_type=value_type,
            key_serializer=key_serializer,
            value_serializer=value_serializer,
            partitions=self.partitions,
            config=changelog_configs(),
            internal=True,
        )
        schema = self.changelog_topic.schema
        self._dumps_key = schema.dumps_key
        self._loads_key = schema.loads_key
        self._dumps_value = schema.dumps_value
        self._loads_value = schema.loads_value
        self._store: Store | None = None
        self._active: dict[int, StorePartition] = {}
        self.recovered_records = 0

    def __repr__(self) -> str:
        return f"<Table {self.name} ({self.store_kind}, {self.partitions} partitions)>"

    # ------------------------------------------------------------------ partitions

    def _open_store(self) -> Store:
        if self._store is None:
            if self.store_kind == "memory":
                self._store = MemoryStore(self.name)
            else:
                directory = os.path.join(str(self.app.conf.datadir), "tables")
                os.makedirs(directory, exist_ok=True)
                self._store = RocksDBStore(directory, self.name)
        return self._store

    async def assign(self, partitions: set[int]) -> None:
        """Open and recover these table partitions (called on assignment, before events)."""
        store = self._open_store()
        new = sorted(p for p in partitions if p not in self._active and p < self.partitions)
        if not new:
            return
        consumer = self.app.transport.consumer(client_id=f"{self.app.conf.id}-recovery")
        try:
            for number in new:
                partition = store.partition(number)
                result = await recover_partition(
                    consumer, partition, TopicPartition(self.changelog_topic.name, number)
                )
                self.recovered_records += result.records
                self._active[number] = partition
        finally:
            await consumer.close()
        log.info("table %s: partitions %s ready", self.name, new)

    def revoke(self, partitions: set[int]) -> None:
        """Close table partitions this worker no longer owns (after the revoke commit)."""
        if self._store is None:
            return
        for number in sorted(partitions):
            if self._active.pop(number, None) is not None:
                self._store.close_partition(number)

    def close(self) -> None:
        self._active.clear()
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def active_partitions(self) -> list[int]:
        return sorted(self._active)

    def _transaction(self, raw_key: bytes) -> PartitionTransaction:
        number = partition_for_key(raw_key, self.partitions)
        store = self._active.get(number)
        if store is None:
            raise PartitionNotOwnedError(
                f"table {self.name}: key {raw_key!r} belongs to partition {number}, which this "
                f"worker does not own (owned: {self.active_partitions}); re-key the stream "
                "with group_by so a table key is read from its own partition"
            )
        return self.app.state_transaction(store, TopicPartition(self.changelog_topic.name, number))

    def _raw_key(self, key: Any) -> bytes:
        raw = self._dumps_key(key)
        if raw is None:
            raise KeyError("tables have no None keys")
        return raw

    # ------------------------------------------------------------------ dict API

    def __getitem__(self, key: Any) -> Any:
        raw = self._raw_key(key)
        data = self._transaction(raw).get(raw)
        if data is None:
            if self.default is None:
                raise KeyError(key)
            return self.default()
        return self._loads_value(data)

    def __setitem__(self, key: Any, value: Any) -> None:
        raw = self._raw_key(key)
        data = self._dumps_value(value)
        if data is None:
            raise ValueError(f"table {self.name}: None is not a value (use del table[key])")
        self._transaction(raw).set(raw, data)

    def __delitem__(self, key: Any) -> None:
        raw = self._raw_key(key)
        transaction = self._transaction(raw)
        if transaction.get(raw) is None:
            raise KeyError(key)
        transaction.delete(raw)

    def __contains__(self, key: Any) -> bool:
        raw = self._raw_key(key)
        return self._transaction(raw).get(raw) is not None

    def get(self, key: Any, default: Any = None) -> Any:
        raw = self._raw_key(key)
        data = self._transaction(raw).get(raw)
        return default if data is None else self._loads_value(data)

    def pop(self, key: Any, *default: Any) -> Any:
        try:
            value = self[key] if self.default is None or key in self else self[key]
            del self[key]
            return value
        except KeyError:
            if default:
                return default[0]
            raise

    def _raw_items(self) -> Iterator[tuple[bytes, bytes]]:
        for number in sorted(self._active):
            store = self._active[number]
            transaction = self.app.state_transaction(
                store, TopicPartition(self.changelog_topic.name, number)
            )
            yield from transaction.items()

    def items(self) -> Iterator[tuple[Any, Any]]:
        """(key, value) of every partition this worker owns, in key byte order per partition."""
        for raw_key, data in self._raw_items():
            yield self._loads_key(raw_key), self._loads_value(data)

    def keys(self) -> Iterator[Any]:
        for key, _ in self.items():
            yield key

    def values(self) -> Iterator[Any]:
        for _, value in self.items():
            yield value

    def __iter__(self) -> Iterator[Any]:
        return self.keys()

    def __len__(self) -> int:
        return sum(1 for _ in self._raw_items())

    def as_dict(self) -> dict[Any, Any]:
        return dict(self.items())

    def as_ansitable(self, *, title: str | None = None, sort: bool = True, limit: int = 0) -> str:
        """The table as a text table for people (Faust's ``as_ansitable``)."""
        rows = [(repr(k), repr(v)) for k, v in self.items()]
        if sort:
            rows.sort()
        if limit:
            rows = rows[:limit]
        head = ("KEY", "VALUE")
        widths = [max([len(head[i])] + [len(r[i]) for r in rows]) for i in range(2)]
        line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        out = [title or f"{self.name}", line]
        out.append("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
        out.append(line)
        for row in rows:
            out.append(
                "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
            )
        out.append(line)
        return "\n".join(out)
