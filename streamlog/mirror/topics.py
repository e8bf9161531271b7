"""Which source topics a mirror copies, and their twins on the target.

A target topic gets the source's partition count and the configs set on the source topic
itself (compaction, retention...), not the source broker's defaults: those belong to each
cluster (MirrorMaker 2 does the same since Kafka 3.x). When the source cannot tell its
overrides apart from its defaults (an old broker), the configs that shape what a topic
keeps are copied (``KEPT_CONFIGS``).

Some overrides are never copied (``NOT_COPIED_CONFIGS``, MirrorMaker 2's default
``config.properties.exclude`` and the timestamp bounds added since): the timestamp type and
bounds, because copied records keep the source's timestamps (a LogAppendTime twin would
stamp its own over them, a twin with ``message.timestamp.before.max.ms`` would refuse the
older ones), and the replication settings, which belong to the target cluster's shape.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from streamlog.mirror.errors import NoTopicsError, TargetTopicError
from streamlog.mirror.state import is_mirror_state_topic
from streamlog.transport.base import Admin
from streamlog.transport.errors import TopicExistsError, TransportError
from streamlog.transport.types import TopicInfo

__all__ = [
    "TopicSelector",
    "MirroredTopic",
    "KEPT_CONFIGS",
    "NOT_COPIED_CONFIGS",
    "copied_configs",
    "prepare_target_topic",
]

log = logging.getLogger(__name__)

KEPT_CONFIGS = (
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "delete.retention.ms",
    "min.cleanable.dirty.ratio",
    "max.message.bytes",
)
NOT_COPIED_CONFIGS = frozenset(
    {
        "message.timestamp.type",
        "message.timestamp.difference.max.ms",
        "message.timestamp.before.max.ms",
        "message.timestamp.after.max.ms",
        "min.insync.replicas",
        "unclean.leader.election.enable",
        "leader.replication.throttled.replicas",
        "follower.replication.throttled.replicas",
    }
)


class TopicSelector:
    """The topics to mirror: a regular expression matched against whole names, or a list
    of exact names (every one of which must exist). Internal topics (``__consumer_offsets``,
    ``__transaction_state``, any ``*.internal`` mirror state) are never selected."""

    def __init__(self, topics: str | Sequence[str]) -> None:
        if isinstance(topics, str):
            self.pattern: re.Pattern[str] | None = re.compile(topics)
            self.names: tuple[str, ...] = ()
        else:
            self.pattern = None
            self.names = tuple(topics)

    def describe(self) -> str:
        return self.pattern.pattern if self.pattern is not None else ", ".join(self.names)

    def select(self, existing: Sequence[str]) -> list[str]:
        """The selected names among the source's ``existing`` topics.

        :raises NoTopicsError: an exact name is missing.
        """
        if self.pattern is None:
            missing = sorted(set(self.names) - set(existing))
            if missing:
                raise NoTopicsError(f"not on the source: topic(s) {', '.join(missing)}")
            return sorted(set(self.names))
        return sorted(
            name
            for name in existing
            if self.pattern.fullmatch(name)
            and not name.startswith("__")
            and not is_mirror_state_topic(name)
        )


@dataclass(frozen=True, slots=True)
class MirroredTopic:
    name: str
    partitions: int
    configs: dict[str, str]
    created: bool  # the mirror created it on the target


def copied_configs(info: TopicInfo) -> dict[str, str]:
    """The configs a target copy of ``info`` is created with (module docstring)."""
    if info.topic_overrides is not None:
        wanted = {k: v for k, v in info.configs.items() if k in info.topic_overrides}
    else:
        wanted = {k: info.configs[k] for k in KEPT_CONFIGS if k in info.configs}
    left_out = sorted(NOT_COPIED_CONFIGS.intersection(wanted))
    if left_out:
        log.info(
            "topic %s: not copied to the target: %s (the copies keep the source's "
            "timestamps; replication belongs to the target cluster)",
            info.name,
            ", ".join(f"{k}={wanted[k]}" for k in left_out),
        )
    return {k: v for k, v in wanted.items() if k not in NOT_COPIED_CONFIGS}


async def prepare_target_topic(source: Admin, target: Admin, name: str) -> MirroredTopic:
    """Make sure ``name`` exists on the target with at least the source's partitions.

    :raises TargetTopicError: the target has fewer partitions and cannot add any.
    """
    info = await source.describe_topic(name)
    count = len(info.partitions)
    configs = copied_configs(info)
    try:
        await target.create_topic(name, count, configs)
        log.info("created %s on the target: %d partitions, configs %s", name, count, configs)
        return MirroredTopic(name, count, configs, created=True)
    except TopicExistsError:
        pass
    there = await target.describe_topic(name)
    differ = {k: v for k, v in configs.items() if there.configs.get(k) != v}
    if differ:
        log.warning(
            "topic %s exists on the target with other configs than the source's: %s "
            "(the mirror does not alter an existing topic)",
            name,
            ", ".join(f"{k}={there.configs.get(k)} there, {v} here" for k, v in differ.items()),
        )
    have = len(there.partitions)
    if have < count:
        try:
            await target.add_partitions(name, count)
        except TransportError as exc:
            raise TargetTopicError(
                f"topic {name}: the source has {count} partitions, the target {have}, and "
                f"adding partitions there failed ({exc})"
            ) from exc
        log.info("added partitions to %s on the target: %d -> %d", name, have, count)
    elif have > count:
        log.warning(
            "topic %s has %d partitions on the target, %d on the source: partitions %d.. of "
            "the target get nothing from the mirror",
            name,
            have,
            count,
            count,
        )
    return MirroredTopic(name, count, configs, created=False)
