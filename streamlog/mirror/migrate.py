"""Moving an app from one log to another (``streamlog migrate``): its topics, its group's
committed offsets and its local table stores, so that a worker started on the new log
resumes where the old one stopped, with the same tables and no event processed twice.

What moves:

* the app's topics (``app_footprint``): every topic it declares (``app.topic``), its
  tables' changelogs, the repartition topics its agents' ``group_by``/``through`` and DSL
  nodes declare, dead-letter topics and the leader topic, as the topology finds them
  without running the app. Copied by a ``Mirror`` in ``once`` mode, named
  ``migrate-<app id>``, with exactly these names (a topic the source lacks is reported,
  not created);
* the consumer group (the app id): its committed offsets, translated by the mirror into
  the target's offsets of the same records;
* the RocksDB table stores (standby copies included: they share the directory), which
  record the offset of the last changelog record they applied. That offset names a
  source record; on the target the same record may sit elsewhere (the source's
  transaction markers and compacted gaps are not copied). Each store partition is given
  the target offset of its last applied record (``store_offset_on_target``), so that
  recovery resumes at the first record it lacks; a partition whose offset cannot be
  translated is wiped and recovers from the whole changelog. Stores move to where a
  worker on the target looks for them (the app's data directory follows its broker
  unless ``datadir`` is set); they are rewritten in a staging copy that is renamed into
  place, and the source's stores are left as they were (kept aside as
  ``<tables>.before-migrate`` when both logs share the data directory).

Nothing moves while the app runs (``AppRunningError``): a worker holding the ``file://``
source directory, or members in the app's group on the source or the target. Nor into
topics that hold records this migration did not write (``check_target_fresh``): the app
would find its history twice there.

The source is left as it was: migrating copies. Afterwards the app runs on the target;
the source log and stores can be deleted once the result is checked.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from streamlog.dsl.topology.graph import TOPIC_KINDS, build_topology
from streamlog.log.dir_lock import LOCK_FILE
from streamlog.mirror.errors import AppRunningError, MigrationError, MigrationRefusedError
from streamlog.mirror.mirror import Mirror, MirrorOptions, MirrorSummary
from streamlog.mirror.state import CHECKPOINTS_TOPIC, load_state
from streamlog.state.errors import StateError
from streamlog.state.rocksdb_store import RocksDBStorePartition
from streamlog.transport import open_transport
from streamlog.transport.connect import listener_path
from streamlog.transport.errors import BrokerUnavailableError
from streamlog.transport.types import TopicPartition
from streamlog.transport.url import parse_broker_url

if TYPE_CHECKING:
    from streamlog.dsl import App
    from streamlog.transport.base import Transport
    from streamlog.transport.security import ClientSecurity

__all__ = [
    "AppFootprint",
    "AppRunningError",
    "MigrationError",
    "MigrationRefusedError",
    "MigrationResult",
    "StoreLocations",
    "StoreRewrite",
    "TableFootprint",
    "app_footprint",
    "migrate",
    "rewrite_store_offsets",
    "store_locations",
    "store_offset_on_target",
]

BEFORE_MIGRATE_SUFFIX = ".before-migrate"
STAGING_SUFFIX = ".migrating"

Translate = Callable[[TopicPartition, int], "int | None"]


# ---------------------------------------------------------------------------- the app


@dataclass(frozen=True, slots=True)
class TableFootprint:
    """A table as the migration sees it: its changelog and where it keeps its store."""

    name: str
    changelog: str
    store_kind: str  # "rocksdb" (stores on disk, moved) or "memory" (rebuilt at start)


@dataclass(frozen=True, slots=True)
class AppFootprint:
    """What an app owns on a log and on disk: its topics (sorted), its consumer group
    (its id), its tables, and the name of its table directory under its data directory."""

    app_id: str
    group_id: str
    topics: tuple[str, ...]
    tables: tuple[TableFootprint, ...]
    tabledir: str

    @property
    def mirror_name(self) -> str:
        """The mirror's name: keys its checkpoints on the target, so a second run of the
        same migration resumes the first instead of copying again."""
        return f"migrate-{self.app_id}"


def app_footprint(app: App) -> AppFootprint:
    """The topics, group and tables of ``app``, found without starting it (see the module
    docstring): the topology's topic nodes, the declared topics, and the leader topic."""
    topology = build_topology(app)
    topics = {node.name for node in topology.topics() if node.kind in TOPIC_KINDS}
    topics.update(app.topics)
    if not app.conf.topic_disable_leader:
        topics.add(app.leader_topic_name)
    tables = tuple(
        TableFootprint(table.name, table.changelog_topic.name, table.store_kind)
        for _, table in sorted(app.tables.items())
    )
    topics.update(t.changelog for t in tables)
    return AppFootprint(app.conf.id, app.conf.id, tuple(sorted(topics)), tables, app.conf.tabledir)


@dataclass(frozen=True, slots=True)
class StoreLocations:
    """Where the app's table stores are on the source (``source``) and where a worker on
    the target will look for them (``target``): ``<datadir>/<tabledir>`` for each log."""

    source: str
    target: str

    @property
    def shared(self) -> bool:
        """Both logs use one data directory (``datadir`` set in the app)."""
        return os.path.abspath(self.source) == os.path.abspath(self.target)


def store_locations(app: App, source_url: str, target_url: str) -> StoreLocations:
    """The table directories of ``app`` with its broker set to each URL in turn (a
    ``datadir`` left to its default follows the broker, as the worker's ``--broker``
    makes it). The app's settings are restored afterwards."""
    conf = app.conf
    before = conf.broker
    try:
        conf.broker = source_url
        source = os.path.join(str(conf.datadir), conf.tabledir)
        conf.broker = target_url
        target = os.path.join(str(conf.datadir), conf.tabledir)
    finally:
        conf.broker = before
    return StoreLocations(source, target)


# ---------------------------------------------------------------------------- stores


@dataclass(frozen=True, slots=True)
class StoreRewrite:
    """One store partition's changelog offset before (source) and after (target); a
    ``wiped`` partition lost its contents and recovers from its whole changelog."""

    table: str
    partition: int
    source_offset: int | None
    target_offset: int | None
    wiped: str | None = None


def store_offset_on_target(
    translate: Translate, changelog: TopicPartition, applied: int
) -> int | None:
    """The target offset to record for a store that applied source changelog records up
    to ``applied`` (a store records the offset of the last record it applied, and
    recovery resumes at that offset + 1), or None when it cannot be told.

    The resume point is what must be preserved: the first source record not applied is
    the first at or after ``applied + 1``, and ``translate`` maps a source offset to the
    target offset of the first copied record at or after it. So the answer is that offset
    minus one. Where nothing was copied after ``applied`` but the mirror's position lies
    past it (an exactly-once changelog ends with a commit marker, never copied), the
    record at ``applied`` itself was the last one copied: its target offset is exact.
    """
    following = translate(changelog, applied + 1)
    if following is not None:
        return following - 1
    return translate(changelog, applied)


def rewrite_store_offsets(
    tables_dir: str, footprint: AppFootprint, translate: Translate
) -> list[StoreRewrite]:
    """Give every RocksDB store partition of ``footprint``'s tables under ``tables_dir``
    (``<tables_dir>/<table>/<partition>``, active and standby copies alike) the target
    offset of its last applied changelog record (``store_offset_on_target``), written
    through the store's own atomic ``write``. A partition whose offset does not
    translate is wiped. Partitions with no offset are left alone (they recover from the
    whole changelog anyway)."""
    done: list[StoreRewrite] = []
    for table in footprint.tables:
        if table.store_kind != "rocksdb":
            continue
        for number in _partition_numbers(os.path.join(tables_dir, table.name)):
            path = os.path.join(tables_dir, table.name, str(number))
            done.append(_rewrite_one(path, table, number, translate))
    return done


def _rewrite_one(
    path: str, table: TableFootprint, number: int, translate: Translate
) -> StoreRewrite:
    try:
        store = RocksDBStorePartition(path)
    except StateError as exc:
        raise MigrationError(f"cannot open table store {path}: {exc}") from exc
    try:
        if store.wipe_reason is not None:  # found unusable and emptied on opening
            return StoreRewrite(table.name, number, None, None, store.wipe_reason)
        applied = store.changelog_offset()
        if applied is None:
            return StoreRewrite(table.name, number, None, None)
        target = store_offset_on_target(translate, TopicPartition(table.changelog, number), applied)
        if target is None:
            store.wipe()
            why = f"changelog offset {applied} of {table.changelog}[{number}] was not mirrored"
            return StoreRewrite(table.name, number, applied, None, why)
        store.write({}, target)
        return StoreRewrite(table.name, number, applied, target)
    except StateError as exc:
        raise MigrationError(f"cannot rewrite table store {path}: {exc}") from exc
    finally:
        store.close()


def _partition_numbers(directory: str) -> list[int]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(n) for n in names if n.isdigit())


def _stored_tables(footprint: AppFootprint, tables_dir: str) -> list[str]:
    """The app's RocksDB tables that have a store directory under ``tables_dir``."""
    return [
        t.name
        for t in footprint.tables
        if t.store_kind == "rocksdb" and os.path.isdir(os.path.join(tables_dir, t.name))
    ]


def check_stores_movable(footprint: AppFootprint, where: StoreLocations) -> None:
    """Refuse (``MigrationRefusedError``) when moving the stores would overwrite some: the
    target's table directory already holds one of the app's tables (a worker ran on the
    target before, or the migration was done already), or, on a shared data directory,
    the copy kept from an earlier migration is still there."""
    if where.shared:
        kept = where.source + BEFORE_MIGRATE_SUFFIX
        if os.path.exists(kept):
            raise MigrationRefusedError(
                f"{kept} exists: the stores were migrated once already (it holds the "
                "stores as they were before). Remove it to migrate again"
            )
        return
    found = _stored_tables(footprint, where.target)
    if found:
        raise MigrationRefusedError(
            f"table stores of {', '.join(found)} already exist in {where.target}, where a "
            "worker on the target keeps them (a worker ran there, or the migration was done "
            "already): move them away to migrate the source's stores"
        )


def move_stores(
    footprint: AppFootprint, where: StoreLocations, translate: Translate
) -> list[StoreRewrite]:
    """Copy the app's stores from ``where.source`` to a staging directory beside
    ``where.target``, rewrite their offsets there, then rename them into place (on a
    shared data directory the originals are renamed aside first). A crash before the
    renames leaves the source untouched and only the staging copy, removed by the next
    run."""
    tables = _stored_tables(footprint, where.source)
    if not tables:
        return []
    staging = where.target + STAGING_SUFFIX
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    for name in tables:
        shutil.copytree(os.path.join(where.source, name), os.path.join(staging, name))
    rewritten = rewrite_store_offsets(staging, footprint, translate)
    os.makedirs(where.target, exist_ok=True)
    if where.shared:
        kept = where.source + BEFORE_MIGRATE_SUFFIX
        os.makedirs(kept)
        for name in tables:
            os.rename(os.path.join(where.source, name), os.path.join(kept, name))
    for name in tables:
        os.rename(os.path.join(staging, name), os.path.join(where.target, name))
    os.rmdir(staging)
    return rewritten


# ---------------------------------------------------------------------------- the logs


async def open_log(url: str, security: ClientSecurity | None, *, source: bool) -> Transport:
    """The started transport of ``url``, never through a worker's listener: a ``file://``
    directory a worker holds means the app runs (``AppRunningError``). A ``file://``
    source must exist (a mistyped path is not an empty log)."""
    parsed = parse_broker_url(url)
    if parsed.scheme == "memory":
        raise MigrationRefusedError("memory:// lives only inside its process: nothing to migrate")
    if parsed.scheme == "file" and parsed.path is not None and source:
        if not os.path.isdir(parsed.path):
            raise MigrationRefusedError(f"{url}: no log there ({parsed.path} is not a directory)")
    transport = open_transport(url, security)
    try:
        await transport.start()
    except BrokerUnavailableError as exc:
        await transport.close()
        if parsed.scheme == "file" and parsed.path is not None:
            raise AppRunningError(
                f"{url} is in use by {_holder(parsed.path)}: stop the app's worker first"
            ) from exc
        raise
    return transport


def _holder(data_dir: str) -> str:
    """Who holds ``data_dir``: the pid its lock file names, and the worker's listener."""
    try:
        with open(os.path.join(data_dir, LOCK_FILE)) as f:
            pid = f.read().strip()
    except OSError:
        pid = ""
    try:
        with open(listener_path(data_dir)) as f:
            address = f.read().strip()
    except OSError:
        address = ""
    who = f"process {pid}" if pid.isdigit() else "another process"
    return who + (f" (a worker serving it on {address})" if address else "")


async def check_group_idle(transport: Transport, group_id: str, where: str) -> None:
    """``AppRunningError`` when group ``group_id`` has members on ``transport``'s log."""
    admin = transport.admin()
    try:
        info = await admin.describe_group(group_id)
    finally:
        await admin.close()
    if info.members:
        clients = sorted({m.client_id or m.member_id for m in info.members})
        raise AppRunningError(
            f"group {group_id} has {len(info.members)} active member(s) on {where} "
            f"({', '.join(clients)}): stop the app's workers first (a killed worker stays a "
            "member until its session times out)"
        )


async def committed_offsets(transport: Transport, group_id: str) -> dict[TopicPartition, int]:
    """Group ``group_id``'s committed offsets on ``transport``'s log."""
    admin = transport.admin()
    try:
        info = await admin.describe_group(group_id)
    finally:
        await admin.close()
    return {
        TopicPartition(p.topic, p.partition): p.committed_offset
        for p in info.partitions
        if p.committed_offset >= 0
    }


async def check_target_fresh(target: Transport, topics: Iterable[str], mirror_name: str) -> None:
    """``MigrationRefusedError`` when one of ``topics`` holds records on the target that
    mirror ``mirror_name`` did not write (it has no checkpoint there): copying the source
    after them would give the app a history twice or mixed with another's. Partitions
    this migration's mirror wrote before (an interrupted run) are resumed by it."""
    present = await existing_topics(target, topics)
    if not present:
        return
    admin = target.admin()
    try:
        partitions = [
            TopicPartition(name, p.partition)
            for name in present
            for p in (await admin.describe_topic(name)).partitions
        ]
        has_state = CHECKPOINTS_TOPIC in await admin.list_topics(include_internal=True)
    finally:
        await admin.close()
    consumer = target.consumer(client_id=f"streamlog-{mirror_name}")
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.close()
    held = [tp for tp in partitions if ends.get(tp, 0) > 0]
    if not held:
        return
    checkpoints = (await load_state(target, mirror_name)).checkpoints if has_state else {}
    foreign = sorted({tp.topic for tp in held if tp not in checkpoints})
    if foreign:
        raise MigrationRefusedError(
            f"topic(s) {', '.join(foreign)} already hold records on the target that no "
            "earlier run of this migration wrote: migrate copies an app into empty topics "
            "(delete them there, or migrate to another log)"
        )


async def existing_topics(transport: Transport, names: Iterable[str]) -> list[str]:
    """Those of ``names`` that exist on ``transport``'s log, in order."""
    admin = transport.admin()
    try:
        present = set(await admin.list_topics(include_internal=True))
    finally:
        await admin.close()
    return [n for n in names if n in present]


# ---------------------------------------------------------------------------- migrate


@dataclass
class MigrationResult:
    """What ``migrate`` did: the topics copied and the app's topics the source did not
    have, the mirror's summary (records, bytes), the group's committed offsets on the
    source and on the target afterwards (None: none there), and each store partition's
    changelog offset before and after."""

    footprint: AppFootprint
    source_url: str
    target_url: str
    topics: list[str]
    absent: list[str]
    mirror: MirrorSummary
    stores: StoreLocations
    group_offsets: dict[TopicPartition, tuple[int, int | None]]
    rewritten: list[StoreRewrite] = field(default_factory=list)


async def migrate(
    footprint: AppFootprint,
    source_url: str,
    target_url: str,
    where: StoreLocations,
    *,
    source_security: ClientSecurity | None = None,
    target_security: ClientSecurity | None = None,
) -> MigrationResult:
    """Move the app of ``footprint`` from ``source_url`` to ``target_url`` (module
    docstring). Refuses before changing anything while the app runs or when stores are
    in the way; raises ``MirrorError`` (the mirror's, or ``MigrationError``) or a
    ``TransportError`` when a step fails."""
    if source_url == target_url:
        raise MigrationRefusedError(f"the source and the target are both {source_url}")
    source = await open_log(source_url, source_security, source=True)
    try:
        await check_group_idle(source, footprint.group_id, source_url)
        check_stores_movable(footprint, where)
        target = await open_log(target_url, target_security, source=False)
        try:
            await check_group_idle(target, footprint.group_id, target_url)
            await check_target_fresh(target, footprint.topics, footprint.mirror_name)
            topics = await existing_topics(source, footprint.topics)
            absent = [t for t in footprint.topics if t not in topics]
            if not topics:
                raise MigrationRefusedError(
                    f"none of app {footprint.app_id}'s topics exist on {source_url}: "
                    "nothing to migrate (is --from the log the app ran on?)"
                )
            mirror = Mirror(
                source,
                target,
                MirrorOptions(
                    topics=topics,
                    groups=re.escape(footprint.group_id),
                    once=True,
                    name=footprint.mirror_name,
                ),
            )
            summary = await mirror.run()
            on_source = await committed_offsets(source, footprint.group_id)
            on_target = await committed_offsets(target, footprint.group_id)
        finally:
            await target.close()
    finally:
        await source.close()
    rewritten = move_stores(footprint, where, mirror.offset_map.translate)
    offsets = {tp: (offset, on_target.get(tp)) for tp, offset in sorted(on_source.items())}
    return MigrationResult(
        footprint, source_url, target_url, topics, absent, summary, where, offsets, rewritten
    )
