"""Changelog topics: their names, their configs, and creating them.

A table's changelog is a compacted topic with as many partitions as the table, partition
N holding the changes to table partition N: compaction keeps the last value of each key,
so replaying the topic rebuilds the table. The name is explicit and stable,
``<app-id>-<table>-changelog``, because renaming it would silently start every table
from empty.

The configs are set explicitly, retention included, although a compacted topic ignores
retention: brokers such as Tansu report only the configs a topic was created with, and
tools (and Quix-style frameworks) that check a changelog's configs need to see them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from streamlog.log.errors import InvalidTopicNameError
from streamlog.log.topic_names import validate_topic_name
from streamlog.state.errors import ChangelogError, ChangelogPartitionsError
from streamlog.transport.base import Admin
from streamlog.transport.errors import TopicExistsError, UnknownTopicError
from streamlog.transport.types import TopicInfo

__all__ = [
    "CHANGELOG_SUFFIX",
    "changelog_topic_name",
    "changelog_configs",
    "ensure_changelog_topic",
]

log = logging.getLogger(__name__)

CHANGELOG_SUFFIX = "-changelog"


def changelog_topic_name(app_id: str, table: str) -> str:
    """``<app-id>-<table>-changelog``; ``ChangelogError`` if that is no valid topic name."""
    if not app_id or not table:
        raise ChangelogError(
            f"a changelog name needs an app id and a table name (got {app_id!r}, {table!r})"
        )
    name = f"{app_id}-{table}{CHANGELOG_SUFFIX}"
    try:
        validate_topic_name(name)
    except InvalidTopicNameError as exc:
        raise ChangelogError(f"table {table!r} of app {app_id!r}: {exc}") from None
    return name


def changelog_configs(
    *, retention_ms: int | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Topic configs of a changelog.

    Compacted, kept forever (``retention.ms`` and ``retention.bytes`` -1). A windowed
    table passes ``retention_ms`` (its windows' lifetime): the topic is then also
    deleted by age (``compact,delete``), so expired windows leave the changelog even
    where their tombstones were lost. ``extra`` overrides or adds configs.
    """
    configs = {
        "cleanup.policy": "compact",
        "retention.ms": "-1",
        "retention.bytes": "-1",
    }
    if retention_ms is not None:
        if retention_ms <= 0:
            raise ValueError(f"retention_ms must be positive, not {retention_ms}")
        configs["cleanup.policy"] = "compact,delete"
        configs["retention.ms"] = str(retention_ms)
    if extra:
        configs.update(extra)
    return configs


async def ensure_changelog_topic(
    admin: Admin,
    name: str,
    partitions: int,
    configs: Mapping[str, str] | None = None,
) -> TopicInfo:
    """Create the changelog ``name`` with ``partitions`` partitions unless it exists.

    An existing topic must have exactly ``partitions`` partitions (table partition N is
    changelog partition N): ``ChangelogPartitionsError`` otherwise. An existing topic
    that reports a cleanup policy without compaction is logged: it still works, but
    its size grows with every update until retention deletes what recovery needs.
    """
    if partitions < 1:
        raise ValueError(f"a changelog needs at least one partition, not {partitions}")
    wanted = dict(changelog_configs() if configs is None else configs)
    try:
        info = await admin.describe_topic(name)
    except UnknownTopicError:
        try:
            await admin.create_topic(name, partitions, wanted)
            log.info("created changelog topic %r with %d partitions", name, partitions)
        except TopicExistsError:
            pass  # another worker created it between the two calls
        info = await admin.describe_topic(name)
    if len(info.partitions) != partitions:
        raise ChangelogPartitionsError(
            f"changelog topic {name!r} has {len(info.partitions)} partitions, the table has "
            f"{partitions}: changelog partition N must hold table partition N (delete the "
            "topic, or give the table its partition count)"
        )
    policy = info.configs.get("cleanup.policy")
    if policy is not None and "compact" not in policy:
        log.warning(
            "changelog topic %r has cleanup.policy=%s, not compaction: it keeps every update",
            name,
            policy,
        )
    return info
