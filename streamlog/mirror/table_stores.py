"""An app's table stores moved from one log's data directory to another's, each store
partition's changelog offset rewritten for the target log (``streamlog migrate``).

A store partition records the offset of the last changelog record it applied, and
recovery resumes at that offset + 1. On the target the same record may have another
offset (the source's transaction markers and compacted gaps are not copied), so each
offset becomes that record's target offset (``store_offset_on_target``); one that does
not translate is wiped, and the partition recovers from its whole changelog. The offset
is written through the store's own atomic ``write``.

The stores are rewritten in a staging copy beside their target place, then renamed into
it: a crash leaves the source as it was and a staging copy, which the next run replaces.
On a data directory shared by both logs the originals are renamed aside first
(``<tables>.before-migrate``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streamlog.mirror.errors import MigrationError, MigrationRefusedError
from streamlog.mirror.footprint import AppFootprint, TableFootprint
from streamlog.state.errors import StateError
from streamlog.state.rocksdb_store import RocksDBStorePartition
from streamlog.transport.types import TopicPartition

if TYPE_CHECKING:
    from streamlog.dsl import App

__all__ = [
    "BEFORE_MIGRATE_SUFFIX",
    "STAGING_SUFFIX",
    "StoreLocations",
    "StoreRewrite",
    "Translate",
    "check_stores_movable",
    "move_stores",
    "rewrite_store_offsets",
    "store_locations",
    "store_offset_on_target",
]

BEFORE_MIGRATE_SUFFIX = ".before-migrate"
STAGING_SUFFIX = ".migrating"

Translate = Callable[[TopicPartition, int], "int | None"]


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
