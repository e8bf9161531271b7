"""Consumer-group offsets carried across a mirror (MirrorMaker 2's checkpoints, applied).

A group's committed offset on the source names the next record it would read; the offset
map (``offset_map.py``) gives that record's offset on the target, exactly. The translated
offset is committed on the target under the same group id, so the group's consumers can
move to the target and resume at the same records. Two rules keep that from hurting a
group already at work there (MirrorMaker 2's ``sync.group.offsets`` has the same ones):
nothing is written while the group has members on the target, and a target offset is
never moved backwards. An offset beyond what the mirror has copied is left for a later
sync (committing the target's end instead would skip records on the target).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from streamlog.mirror.offset_map import OffsetMap
from streamlog.transport.base import Admin, Transport
from streamlog.transport.errors import TransportError
from streamlog.transport.types import GroupInfo, TopicPartition

__all__ = ["GroupSelector", "committed_offsets_of", "read_group_offsets", "sync_groups"]

log = logging.getLogger(__name__)

GroupOffsets = dict[str, dict[TopicPartition, int]]


class GroupSelector:
    """Groups to translate: a regular expression matched against whole group ids, or a list
    of exact ids."""

    def __init__(self, groups: str | Sequence[str]) -> None:
        if isinstance(groups, str):
            self.pattern: re.Pattern[str] | None = re.compile(groups)
            self.names: frozenset[str] = frozenset()
        else:
            self.pattern = None
            self.names = frozenset(groups)

    def matches(self, group: str) -> bool:
        if self.pattern is not None:
            return self.pattern.fullmatch(group) is not None
        return group in self.names

    async def select(self, admin: Admin) -> list[str]:
        if self.pattern is None:
            return sorted(self.names)  # exact ids: asked for even when not listed
        return sorted(g for g in await admin.list_groups() if self.matches(g))


def committed_offsets_of(info: GroupInfo) -> dict[TopicPartition, int]:
    """A described group's committed offsets (partitions with no commit left out)."""
    return {
        TopicPartition(p.topic, p.partition): p.committed_offset
        for p in info.partitions
        if p.committed_offset >= 0
    }


async def read_group_offsets(source: Admin, groups: GroupSelector) -> GroupOffsets:
    """Each selected group's committed offsets on the source."""
    found: GroupOffsets = {}
    for group in await groups.select(source):
        offsets = committed_offsets_of(await source.describe_group(group))
        if offsets:
            found[group] = offsets
    return found


async def sync_groups(
    source: Admin,
    target_admin: Admin,
    target: Transport,
    groups: GroupSelector,
    offset_map: OffsetMap,
    snapshot: GroupOffsets | None = None,
) -> dict[str, dict[TopicPartition, tuple[int, int]]]:
    """Translate the selected groups' offsets (``snapshot``, else read now) onto ``target``
    (``target_admin`` is its admin client, reused from one sync to the next).

    Returns, per group, the ``(source offset, target offset)`` pairs committed this time.
    """
    offsets = snapshot if snapshot is not None else await read_group_offsets(source, groups)
    admin = target_admin
    done: dict[str, dict[TopicPartition, tuple[int, int]]] = {}
    for group, committed in sorted(offsets.items()):
        mirrored = {tp: c for tp, c in committed.items() if tp in offset_map}
        if not mirrored:
            continue
        try:
            there = await admin.describe_group(group)
        except TransportError as exc:
            log.warning("group %s: cannot describe it on the target (%s); not synced", group, exc)
            continue
        if there.members:
            log.info(
                "group %s has %d member(s) on the target: its offsets there are its own",
                group,
                len(there.members),
            )
            continue
        current = {
            TopicPartition(p.topic, p.partition): p.committed_offset for p in there.partitions
        }
        wanted: dict[TopicPartition, tuple[int, int]] = {}
        for tp, offset in sorted(mirrored.items()):
            translated = offset_map.translate(tp, offset)
            if translated is None:
                log.debug("group %s %s: offset %d not copied yet", group, tp, offset)
                continue
            if current.get(tp, -1) >= translated:
                continue  # never backwards, and nothing to do when equal
            wanted[tp] = (offset, translated)
        if not wanted:
            continue
        committer = target.consumer(group_id=group, client_id="streamlog-mirror")
        try:
            await committer.commit({tp: t for tp, (_, t) in wanted.items()})
        finally:
            await committer.close()
        done[group] = wanted
        log.info("group %s: %d offset(s) translated onto the target", group, len(wanted))
    return done
