"""``app.Table``: a dict-like, partitioned table in a store, backed by a changelog topic.

Table partition N lives in a store partition (RocksDB under ``<datadir>/tables/<table>/N``,
or memory) and in partition N of the compacted changelog ``<app-id>-<table>-changelog``.

Keys and values: a table declared the Faust way (no ``key_serializer``) uses Faust's
codecs, so its changelog holds the very bytes a Faust app writes: keys are Faust's JSON
(``FaustJsonCodec``: ``"word"``, ``42``, ``["k",[1.0,2.0]]``), values JSON (with the
``__faust`` tag of Records); a ``bytes`` type is ``raw``, a Record's ``serializer=``
option wins. ``key_serializer=``/``value_serializer=`` choose otherwise (``"raw"`` keeps
keys as bytes, streamlog's behaviour before Faust's defaults).

Which partition holds a key (``key_placement``):

* ``"event"`` (a table declared the Faust way): Faust's rule. A write while an agent
  processes an event goes to that event's partition, and a read there looks only in it,
  so each input partition keeps its own entries, as in Faust, and a Faust app's changelog
  recovers into the partitions Faust wrote it to. Away from an event (a timer, a web
  view, a test) a read looks in every partition held here (the key's hash partition
  first) and a write goes where the key is found, else to the key's hash partition.
* ``"hash"`` (``key_serializer=`` given, or Faust's ``use_partitioner=True``): Kafka's
  murmur2 partitioner of the serialised key, i.e. the partition a stream keyed by the same
  bytes is read from. Writing a key whose partition this worker does not own is an error
  that says so (re-key the stream with ``group_by``).

Either way a table must be co-partitioned with the topics its agents read
(``streamlog.dsl.topology.copartitioning``, which also gives a table whose changelog is
new its source topic's partition count).

Reads and writes go through the partition's open ``PartitionTransaction`` (read your own
writes); the app's commit sequence produces the changes to the changelog, writes the store
with the changelog offset, and only then commits source offsets. The table keeps each
partition's transaction between events and asks the app's checkpoint again only once that
transaction is no longer ``open`` (a commit began, or it failed): a read or write costs a
dict lookup, not a walk through the app and its checkpoint. When partitions are
assigned, each table partition is recovered from its changelog before any event of that
partition reaches an agent.

``tumbling``, ``hopping``, ``sliding`` and ``session`` make the table windowed (one value
per key and window, ``streamlog.dsl.windows.table``); the plain dict API then refuses keys and
``items()`` lists ((key, window), value).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from streamlog.dsl.durations import Seconds, to_ms
from streamlog.dsl.errors import ImproperlyConfigured, PartitionNotOwnedError, WindowedTableError
from streamlog.dsl.runtime.context import current_event, current_partition
from streamlog.dsl.tables.text import ansitable
from streamlog.dsl.tables.views import OnLate, OnWindowClose, PartitionListener, WindowedView
from streamlog.serde import Codec, Schema
from streamlog.serde.codecs import FaustJsonCodec
from streamlog.state.changelog import changelog_configs, changelog_topic_name
from streamlog.state.memory_store import MemoryStore
from streamlog.state.recovery import recover_partition
from streamlog.state.rocksdb_store import RocksDBStore
from streamlog.state.stores import Store, StorePartition
from streamlog.state.transaction import PartitionTransaction
from streamlog.state.windows import (
    NEVER_MS,
    HoppingWindow,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
)
from streamlog.transport import partition_for_key
from streamlog.transport.types import TopicPartition

if TYPE_CHECKING:
    from streamlog.dsl.tables.host import TableHost

__all__ = [
    "Table",
    "PartitionNotOwnedError",
    "PartitionListener",
    "WindowedView",
    "OnWindowClose",
    "OnLate",
    "ansitable",
]

log = logging.getLogger(__name__)


def _grace_and_expiry(grace: Seconds | None, expires: Seconds | None) -> tuple[int, int | None]:
    """(grace, expires) in ms of an aligned window. No ``grace`` is Faust's way: a window
    takes events until it expires, so grace is the expiry (``NEVER_MS`` without one)."""
    expires_ms = None if expires is None else to_ms(expires, "expires")
    if grace is not None:
        return to_ms(grace, "grace"), expires_ms
    if expires_ms is None:
        return NEVER_MS, NEVER_MS
    return expires_ms, expires_ms


class Table:
    """Faust's ``app.Table(name, default=int)``: see the module docstring."""

    def __init__(
        self,
        app: TableHost,
        name: str,
        *,
        default: Callable[[], Any] | None = None,
        key_type: Any = None,
        value_type: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        partitions: int | None = None,
        store: str | None = None,
        help: str | None = None,
        on_window_close: OnWindowClose | None = None,
        use_partitioner: bool = False,
    ) -> None:
        self.app = app
        self.name = name
        self.default = default
        self.help = help or ""
        self.partitions_given = partitions is not None
        """``partitions=`` was given: the count is the user's, not derived from a source."""
        self.partitions = partitions or app.conf.topic_partitions
        store_url = store or app.conf.store
        if store_url not in ("rocksdb://", "memory://"):
            raise ImproperlyConfigured(f"table {name}: store must be rocksdb:// or memory://")
        self.store_kind = store_url[: -len("://")]
        self.key_placement = "event" if key_serializer is None and not use_partitioner else "hash"
        """Where a key lives: ``"event"`` (Faust's rule) or ``"hash"`` (see the module)."""
        self._by_event = self.key_placement == "event"
        self.changelog_topic = app.topic(
            changelog_topic_name(app.conf.id, name),
            key_type=key_type,
            value_type=value_type,
            key_serializer=_faust_serializer(key_type, key_serializer, key=True),
            value_serializer=_faust_serializer(value_type, value_serializer, key=False),
            partitions=self.partitions,
            config=changelog_configs(),
            internal=True,
        )
        self.schema: Schema = self.changelog_topic.schema
        """How keys and values are serialised (the changelog's: what the store holds)."""
        self._dumps_key = self.schema.dumps_key
        self._loads_key = self.schema.loads_key
        self._dumps_value = self.schema.dumps_value
        self._loads_value = self.schema.loads_value
        self._store: Store | None = None
        self._active: dict[int, StorePartition] = {}
        self._changelog_tps: dict[int, TopicPartition] = {}
        # Owned partition -> its transaction in the app's checkpoint, kept while ``open``;
        # dropped with its partition (revoke, close) and on every assignment.
        self._transactions: dict[int, PartitionTransaction] = {}
        self.recovered_records = 0
        # partition -> (changelog offsets replayed, offsets to replay) of its last recovery
        self.recovery: dict[int, tuple[int, int]] = {}
        self.on_window_close = on_window_close  # Faust's place for it: used once windowed
        self.windowed: WindowedView | None = None
        self._listeners: list[PartitionListener] = []

    def __repr__(self) -> str:
        return f"<Table {self.name} ({self.store_kind}, {self.partitions} partitions)>"

    def set_partitions(self, count: int) -> None:
        """Take ``count`` partitions (the source topic's, for a new changelog) before the
        app starts; the changelog topic follows."""
        self.partitions = count
        self.changelog_topic.partitions = count

    # ------------------------------------------------------------------ partitions

    def _open_store(self) -> Store:
        if self._store is None:
            if self.store_kind == "memory":
                self._store = MemoryStore(self.name)
            else:
                directory = os.path.join(str(self.app.conf.datadir), self.app.conf.tabledir)
                os.makedirs(directory, exist_ok=True)
                self._store = RocksDBStore(directory, self.name)
        return self._store

    async def assign(self, partitions: set[int]) -> None:
        """Open and recover these table partitions (called on assignment, before events)."""
        # An assignment may follow a restart of the app, which made a new checkpoint:
        # transactions are asked for afresh.
        self._transactions.clear()
        store = self._open_store()
        new = sorted(p for p in partitions if p not in self._active and p < self.partitions)
        if not new:
            return
        consumer = self.app.transport.consumer(
            client_id=f"{self.app.conf.client_id}-recovery",
            isolation_level=self.app.conf.isolation_level,
        )
        try:
            for number in new:
                partition = store.partition(number)
                result = await recover_partition(
                    consumer,
                    partition,
                    TopicPartition(self.changelog_topic.name, number),
                    progress=self._progress_of(number),
                )
                self.recovered_records += result.records
                self._active[number] = partition
                for listener in self._listeners:
                    listener.partition_ready(number, partition)
        finally:
            await consumer.close()
        log.info("table %s: partitions %s ready", self.name, new)

    def _progress_of(self, number: int) -> Callable[[int, int], None]:
        def progress(done: int, total: int) -> None:
            self.recovery[number] = (done, total)

        return progress

    def read_stored(self, number: int, raw_key: bytes) -> bytes | None:
        """The stored value of ``raw_key`` in owned partition ``number`` (None: absent),
        with no default applied and no partition search: an interactive query's read."""
        self.require_owned(number, raw_key)
        return self._read_in(number, raw_key)

    def revoke(self, partitions: set[int]) -> None:
        """Close table partitions this worker no longer owns (after the revoke commit)."""
        if self._store is None:
            return
        for number in sorted(partitions):
            self._transactions.pop(number, None)
            self.recovery.pop(number, None)
            if self._active.pop(number, None) is not None:
                for listener in self._listeners:
                    listener.partition_revoked(number)
            # also one whose recovery was cancelled half way (it resumes from the offset
            # it reached if the partition comes back)
            self._store.close_partition(number)

    def close(self) -> None:
        """Close every store partition (the app stopped)."""
        for listener in self._listeners:
            listener.closed()
        self._active.clear()
        self._transactions.clear()
        if self._store is not None:
            self._store.close()
            self._store = None

    def owns(self, number: int) -> bool:
        """Whether table partition ``number`` is active here (recovered, processed)."""
        return number in self._active

    def standby_partition(self, number: int) -> StorePartition:
        """The store partition a standby replica of ``number`` reads the changelog into:
        the one an assignment of it would recover (``standby.py``)."""
        return self._open_store().partition(number)

    def release_standby(self, number: int) -> None:
        """This worker keeps ``number`` warm no more: close its store partition unless it
        is active here (what was stored stays, for a later assignment to resume from)."""
        if self._store is not None and number not in self._active:
            self._store.close_partition(number)

    @property
    def active_partitions(self) -> list[int]:
        """The table partitions this worker holds, recovered, in order."""
        return sorted(self._active)

    def store_partition(self, number: int) -> StorePartition:
        """The store partition of owned table partition ``number`` (what recovery built).

        Its committed contents, for tools and tests; processing reads and writes through
        the table, which sees uncommitted changes too.
        """
        try:
            return self._active[number]
        except KeyError:
            raise PartitionNotOwnedError(
                f"table {self.name}: partition {number} is not owned here "
                f"(owned: {self.active_partitions})"
            ) from None

    def partition_of(self, raw_key: bytes) -> int:
        """The table partition a write of this serialised key goes to now: the current
        event's partition for ``"event"`` placement (inside an event), else Kafka's murmur2
        partitioner, as for a topic keyed the same way with the same partition count."""
        if self._by_event:
            number = current_partition()
            if number is not None and number < self.partitions:
                return number
        return self.hash_partition(raw_key)

    def hash_partition(self, raw_key: bytes) -> int:
        """Kafka's murmur2 partition of a serialised key (owned here or not)."""
        partitions = self.partitions
        return 0 if partitions == 1 else partition_for_key(raw_key, partitions)

    def require_owned(self, number: int, raw_key: bytes | None = None) -> None:
        """``PartitionNotOwnedError`` unless this worker owns partition ``number``
        (``raw_key``, the key being accessed, makes the message say how to fix it)."""
        if number in self._active:
            return
        owned = self.active_partitions
        if raw_key is None:
            raise PartitionNotOwnedError(
                f"table {self.name}: partition {number} is not owned here (owned: {owned})"
            )
        raise PartitionNotOwnedError(self._not_owned_message(number, raw_key, owned))

    def _not_owned_message(self, number: int, raw_key: bytes, owned: list[int]) -> str:
        """Why a key's partition is elsewhere and how to fix it: the usual cause is a
        stream read from partitions that are not its keys' (an unkeyed topic counted by
        word), which works with one worker and fails once a second one owns the rest."""
        try:
            key: Any = self._loads_key(raw_key)
        except Exception:  # the message must not fail on an odd key: show the bytes
            key = raw_key
        event = current_event()
        source = (
            ""
            if event is None
            else f"; the event using it was read from {event.message.topic}"
            f"[{event.message.partition}]"
        )
        return (
            f"table {self.name}: key {key!r} belongs to partition {number} of {self.partitions}, "
            f"which this worker does not own (it owns {owned}){source}. "
            "Re-key the stream with group_by so each key is read from its own partition, "
            "e.g. "
            '`async for word in stream.group_by(lambda word: word, name="word"):`, or '
            "send records keyed by the table's key, e.g. "
            "`await words.send(key=word, value=word)`"
        )

    def transaction(self, number: int, raw_key: bytes | None = None) -> PartitionTransaction:
        """The open transaction of owned partition ``number``: writes go there, reads see
        them; the app's commit sequence makes it durable. The one way to get it.

        Kept between events while ``open`` (a dict lookup per access); asked of the app's
        checkpoint again once a commit began. ``PartitionNotOwnedError`` if this worker
        does not own the partition (``raw_key`` only makes the message clearer).
        """
        transaction = self._transactions.get(number)
        if transaction is not None and transaction.open:
            return transaction
        self.require_owned(number, raw_key)
        tp = self._changelog_tps.get(number)
        if tp is None:
            tp = self._changelog_tps[number] = TopicPartition(self.changelog_topic.name, number)
        transaction = self.app.state_transaction(self._active[number], tp)
        self._transactions[number] = transaction
        return transaction

    def reader(
        self, number: int, raw_key: bytes | None = None
    ) -> PartitionTransaction | StorePartition:
        """What reads of owned partition ``number`` go through: its open transaction, or
        (between events, or while a commit runs) the app's view of it, which opens none.
        ``PartitionNotOwnedError`` if this worker does not own it."""
        transaction = self._transactions.get(number)
        if transaction is not None and transaction.open:
            return transaction
        self.require_owned(number, raw_key)
        return self.app.state_reader(self._active[number])

    def _transaction(self, raw_key: bytes) -> PartitionTransaction:
        number = self._write_partition(raw_key)
        transaction = self._transactions.get(number)
        if transaction is not None and transaction.open:
            return transaction
        return self.transaction(number, raw_key)

    def _write_partition(self, raw_key: bytes) -> int:
        if self._by_event:
            number = current_partition()
            if number is not None and number < self.partitions:
                return number
            found = self._find(raw_key)  # away from an event: where the key already is
            if found is not None:
                return found
        return self.hash_partition(raw_key)

    def key_bytes(self, key: Any) -> bytes:
        """``key`` serialised as the store and the changelog hold it (KeyError for None)."""
        raw = self._dumps_key(key)
        if raw is None:
            raise KeyError("tables have no None keys")
        return raw

    def attach_windowed(self, view: WindowedView, listener: PartitionListener) -> None:
        """Make this table windowed (``streamlog.dsl.windows`` calls this): the plain dict
        API refuses keys from now on, and ``listener`` follows the partitions."""
        self.windowed = view
        self._listeners.append(listener)

    def _raw_key(self, key: Any) -> bytes:
        if self.windowed is not None:
            raise WindowedTableError(
                f"table {self.name} is windowed: read and write it through the table that "
                ".tumbling()/.hopping()/.sliding()/.session() returned"
            )
        raw = self._dumps_key(key)
        if raw is None:
            raise KeyError("tables have no None keys")
        return raw

    # ------------------------------------------------------------------ dict API

    # a GlobalTable reads a key wherever it is (Faust's ``is_global`` lookups)
    _reads_everywhere = False

    def _read(self, raw_key: bytes) -> bytes | None:
        if self._by_event:
            number = current_partition()
            if number is None or number >= self.partitions or self._reads_everywhere:
                found = self._find(raw_key)
                return None if found is None else self._read_in(found, raw_key)
        else:
            number = self.hash_partition(raw_key)
        return self._read_in(number, raw_key)

    def _read_in(self, number: int, raw_key: bytes) -> bytes | None:
        transaction = self._transactions.get(number)
        if transaction is not None and transaction.open:
            return transaction.get(raw_key)
        return self.reader(number, raw_key).get(raw_key)

    def locate(self, raw_key: bytes) -> int | None:
        """The partition held here that has ``raw_key``, or None (not held here, or absent).
        With Faust's key placement this is the only way to know where a key is: its events
        decided, not its hash."""
        return self._find(raw_key)

    def _find(self, raw_key: bytes) -> int | None:
        """The owned partition holding ``raw_key`` (its hash partition looked at first),
        or None: Faust's search of every partition when no event says which."""
        home = self.hash_partition(raw_key)
        owned = self._active
        if home in owned and self._read_in(home, raw_key) is not None:
            return home
        for number in sorted(owned):
            if number != home and self._read_in(number, raw_key) is not None:
                return number
        return None

    def __getitem__(self, key: Any) -> Any:
        raw = self._raw_key(key)
        data = self._read(raw)
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
        return self._read(raw) is not None

    def get(self, key: Any, default: Any = None) -> Any:
        """The value under ``key``, or ``default`` (the table's ``default=`` is not used)."""
        raw = self._raw_key(key)
        data = self._read(raw)
        return default if data is None else self._loads_value(data)

    def pop(self, key: Any, *default: Any) -> Any:
        """Remove ``key`` and return its value (or ``default`` when given and the key is absent)."""
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
            yield from self.reader(number).items()

    def items(self) -> Iterator[tuple[Any, Any]]:
        """(key, value) of every partition this worker owns, in key byte order per partition.

        A windowed table's keys are (key, window) pairs.
        """
        if self.windowed is not None:
            yield from self.windowed.items()
            return
        for raw_key, data in self._raw_items():
            yield self._loads_key(raw_key), self._loads_value(data)

    def keys(self) -> Iterator[Any]:
        """Keys of every owned partition."""
        for key, _ in self.items():
            yield key

    def values(self) -> Iterator[Any]:
        """Values of every owned partition."""
        for _, value in self.items():
            yield value

    def __iter__(self) -> Iterator[Any]:
        return self.keys()

    def count_keys(self, limit: int) -> int:
        """The keys (windowed: the windows) held here, counted up to ``limit`` + 1 (a
        scan of the store: bounded, as the status page counts them every few seconds)."""
        found = self.windowed.items() if self.windowed is not None else self._raw_items()
        return sum(1 for _ in itertools.islice(found, limit + 1))

    def __len__(self) -> int:
        if self.windowed is not None:
            return len(self.windowed)
        return sum(1 for _ in self._raw_items())

    def as_dict(self) -> dict[Any, Any]:
        """The owned partitions' contents as a dict."""
        return dict(self.items())

    def as_ansitable(
        self,
        *,
        title: str | None = None,
        key: str = "KEY",
        value: str = "VALUE",
        sort: bool = True,
        sortkey: Callable[[tuple[Any, Any]], Any] | None = None,
        limit: int = 0,
        target: Any = None,
    ) -> str:
        """The table as a text table for people (Faust's ``as_ansitable``): ``title`` may
        name the table as Faust's does (``"{table.name}"``), ``key``/``value`` head the
        columns, ``sortkey`` orders the (key, value) items. Unlike Faust's, rows are sorted
        by default (a stable picture); ``target`` (Faust's tty check) is accepted unused."""
        del target
        if self.windowed is not None:
            return self.windowed.as_ansitable(title=title, sort=sort, limit=limit)
        items = list(self.items())
        if sortkey is not None:
            items.sort(key=sortkey)
        rows = [(repr(k), repr(v)) for k, v in items]
        if sort and sortkey is None:
            rows.sort()
        if limit:
            rows = rows[:limit]
        heading = self.name if title is None else title.format(table=self)
        return ansitable(heading, (key, value), rows)

    # ------------------------------------------------------------------ windows

    def tumbling(
        self,
        size: Seconds,
        expires: Seconds | None = None,
        *,
        grace: Seconds | None = None,
        key_index: bool = False,
        on_window_close: OnWindowClose | None = None,
        on_late: OnLate | None = None,
        idle_advance: bool = True,
    ) -> WindowedView:
        """Windowed by back-to-back windows of ``size`` seconds (Faust's ``tumbling``).

        Declared the Faust way (no ``grace``), Faust's rules: a window takes every event
        that falls in it, late or not, until it expires ``expires`` seconds after its end
        (never, without ``expires``), and ``on_window_close`` runs at expiry. With
        ``grace=`` Kafka Streams' rules: a window closes ``grace`` seconds after its end
        (later events for it are late: dropped, counted, ``on_late``) and stays in the
        store until ``expires`` (default ``size + grace``). Times are the stream time of
        the table partition (event time), not the wall clock Faust's expiry reads.
        ``key_index`` is accepted for Faust compatibility: ``keys()`` always works.
        """
        grace_ms, expires_ms = _grace_and_expiry(grace, expires)
        window = TumblingWindow(to_ms(size, "size"), expires_ms, grace_ms)
        return self._windowed_by(window, on_window_close, on_late, idle_advance)

    def hopping(
        self,
        size: Seconds,
        step: Seconds,
        expires: Seconds | None = None,
        *,
        grace: Seconds | None = None,
        key_index: bool = False,
        on_window_close: OnWindowClose | None = None,
        on_late: OnLate | None = None,
        idle_advance: bool = True,
    ) -> WindowedView:
        """Windowed by overlapping windows of ``size`` seconds every ``step`` seconds
        (Faust's ``hopping``); ``grace`` and ``expires`` as for ``tumbling``."""
        grace_ms, expires_ms = _grace_and_expiry(grace, expires)
        window = HoppingWindow(to_ms(size, "size"), to_ms(step, "step"), expires_ms, grace_ms)
        return self._windowed_by(window, on_window_close, on_late, idle_advance)

    def sliding(
        self,
        size: Seconds,
        *,
        grace: Seconds = 0,
        on_window_close: OnWindowClose | None = None,
        on_late: OnLate | None = None,
        idle_advance: bool = True,
    ) -> WindowedView:
        """Windowed by Kafka Streams' sliding windows ``[start, start + size]``."""
        window = SlidingWindow(to_ms(size, "size"), to_ms(grace, "grace"))
        return self._windowed_by(window, on_window_close, on_late, idle_advance)

    def session(
        self,
        gap: Seconds,
        *,
        grace: Seconds = 0,
        expires: Seconds | None = None,
        merge: Callable[[Any, Any], Any] | None = None,
        on_window_close: OnWindowClose | None = None,
        on_late: OnLate | None = None,
        idle_advance: bool = True,
    ) -> WindowedView:
        """Windowed by sessions: events at most ``gap`` seconds apart share one.

        When an event joins sessions, their values are combined with ``merge(a, b)``
        (default: ``+`` for numbers, an error for anything else).
        """
        window = SessionWindow(
            to_ms(gap, "gap"),
            to_ms(grace, "grace"),
            None if expires is None else to_ms(expires, "expires"),
        )
        return self._windowed_by(window, on_window_close, on_late, idle_advance, merge)

    def _windowed_by(
        self,
        window: TumblingWindow | HoppingWindow | SlidingWindow | SessionWindow,
        on_window_close: OnWindowClose | None,
        on_late: OnLate | None,
        idle_advance: bool,
        merge: Callable[[Any, Any], Any] | None = None,
    ) -> WindowedView:
        return self.app.window_table(
            self,
            window,
            merge=merge,
            on_window_close=on_window_close or self.on_window_close,
            on_late=on_late,
            idle_advance=idle_advance,
        )


def _faust_serializer(tp: Any, given: Any, *, key: bool) -> str | Codec:
    """Faust's ``Collection._serializer_from_type``: ``raw`` for ``bytes``, a Record's own
    ``serializer=``, else JSON (for keys, Faust's exact JSON bytes: ``FaustJsonCodec``)."""
    if given is not None:
        chosen: str | Codec = given
        return chosen
    if tp is bytes:
        return "raw"
    own: str | Codec | None = getattr(tp, "__record_serializer__", None)
    if own is not None:
        return own
    return FaustJsonCodec() if key else "json"
