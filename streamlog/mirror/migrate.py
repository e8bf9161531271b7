"""Moving an app from one log to another (``streamlog migrate``): its topics, its group's
committed offsets and its local table stores, so that a worker started on the new log
resumes where the old one stopped, with the same tables and no event processed twice.

What moves:

* the app's topics (``footprint.app_footprint``): every topic it declares (``app.topic``), its
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
  the target offset of its last applied record (``table_stores.py``), so that
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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from streamlog.log.dir_lock import LOCK_FILE
from streamlog.mirror.errors import AppRunningError, MigrationRefusedError
from streamlog.mirror.footprint import AppFootprint
from streamlog.mirror.groups import committed_offsets_of
from streamlog.mirror.mirror import Mirror
from streamlog.mirror.results import MirrorOptions, MirrorSummary, ProgressCallback
from streamlog.mirror.state import CHECKPOINTS_TOPIC, load_state
from streamlog.mirror.table_stores import (
    StoreLocations,
    StoreRewrite,
    check_stores_movable,
    move_stores,
)
from streamlog.transport import open_transport
from streamlog.transport.connect import listener_path
from streamlog.transport.errors import BrokerUnavailableError
from streamlog.transport.types import TopicPartition
from streamlog.transport.url import parse_broker_url

if TYPE_CHECKING:
    from streamlog.transport.base import Transport
    from streamlog.transport.security import ClientSecurity

__all__ = [
    "MigrationResult",
    "check_group_idle",
    "check_target_fresh",
    "committed_offsets",
    "existing_topics",
    "migrate",
    "open_log",
]


# ---------------------------------------------------------------------------- the logs


async def open_log(url: str, security: ClientSecurity | None, *, source: bool) -> Transport:
    """The started transport of ``url``, never through a worker's listener: a ``file://``
    directory a worker holds means the app runs (``AppRunningError``). A ``file://``
    source must exist (a mistyped path is not an empty log)."""
    parsed = parse_broker_url(url)
    if parsed.scheme == "memory":
        raise MigrationRefusedError(
            "memory:// lives only inside its process: "
            + ("nothing to migrate from it" if source else "no worker could run on it after")
        )
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


def _same_log(a: str, b: str) -> bool:
    """Two URLs of one log: equal, or ``file://`` URLs of one directory."""
    first, second = parse_broker_url(a), parse_broker_url(b)
    if first.scheme == second.scheme == "file" and first.path and second.path:
        return os.path.realpath(first.path) == os.path.realpath(second.path)
    return first == second


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
        return committed_offsets_of(await admin.describe_group(group_id))
    finally:
        await admin.close()


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
    on_progress: ProgressCallback | None = None,
) -> MigrationResult:
    """Move the app of ``footprint`` from ``source_url`` to ``target_url`` (module
    docstring). Refuses before changing anything while the app runs or when stores are
    in the way; raises ``MirrorError`` (the mirror's, or ``MigrationError``) or a
    ``TransportError`` when a step fails. ``on_progress`` is the mirror's (a display).

    Cancelled during the copy, it leaves the stores as they were and the mirror's last
    checkpoint on the target: a second run resumes the copy. The stores are moved with
    no await in between, so a cancellation cannot cut that step short."""
    if _same_log(source_url, target_url):
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
                on_progress=on_progress,
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
