"""Topic name rules, as Kafka's ``org.apache.kafka.common.internals.Topic``.

A topic name becomes a directory name (``<topic>-<partition>``) and part of metric names,
which is why the rules are strict: the length cap leaves room for the partition suffix
under the usual 255-byte file-name limit, and the character set is safe on every file
system. Names that differ only by '.' versus '_' map to the same metric name, so Kafka
refuses to create one while the other exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from streamlog.log.errors import InternalTopicError, InvalidTopicNameError

__all__ = [
    "MAX_TOPIC_NAME_LENGTH",
    "INTERNAL_TOPICS",
    "CONSUMER_OFFSETS_TOPIC",
    "TRANSACTION_STATE_TOPIC",
    "SHARE_GROUP_STATE_TOPIC",
    "CLUSTER_METADATA_TOPIC",
    "validate_topic_name",
    "is_internal",
    "check_not_internal",
    "has_collision_chars",
    "collides",
    "check_collisions",
]

MAX_TOPIC_NAME_LENGTH = 249
CONSUMER_OFFSETS_TOPIC = "__consumer_offsets"
TRANSACTION_STATE_TOPIC = "__transaction_state"
SHARE_GROUP_STATE_TOPIC = "__share_group_state"
CLUSTER_METADATA_TOPIC = "__cluster_metadata"
# Kafka's ``Topic.INTERNAL_TOPICS`` plus the KRaft metadata log, whose creation Kafka
# also refuses: the broker writes these (or will), clients never do.
INTERNAL_TOPICS: frozenset[str] = frozenset(
    {
        CONSUMER_OFFSETS_TOPIC,
        TRANSACTION_STATE_TOPIC,
        SHARE_GROUP_STATE_TOPIC,
        CLUSTER_METADATA_TOPIC,
    }
)

# Explicit ASCII ranges: str.isalnum() would let non-ASCII letters and digits through.
_ILLEGAL_CHAR = re.compile(r"[^a-zA-Z0-9._-]")


def validate_topic_name(name: str) -> None:
    """Raise ``InvalidTopicNameError`` unless Kafka would accept ``name`` as a topic name.

    The checks and their order follow Kafka's ``Topic.validate``, so the message a client
    sees for a bad name is the one it would get from a Kafka broker (plus the offending
    character, which Kafka leaves the user to find).
    """
    if not isinstance(name, str):
        raise InvalidTopicNameError(f"Topic name must be a string, got {type(name).__name__}")
    if not name:
        raise InvalidTopicNameError("Topic name is illegal, it can't be empty")
    if name in (".", ".."):
        raise InvalidTopicNameError('Topic name cannot be "." or ".."')
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise InvalidTopicNameError(
            f"Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LENGTH} "
            f"characters ({len(name)} given), topic name: {name}"
        )
    bad = _ILLEGAL_CHAR.search(name)
    if bad is not None:
        raise InvalidTopicNameError(
            f'Topic name "{name}" is illegal, it contains a character other than '
            f"ASCII alphanumerics, '.', '_' and '-' ({bad.group()!r} at index {bad.start()})"
        )


def is_internal(name: str) -> bool:
    """True for the topics the broker owns (group offsets, transaction state...)."""
    return name in INTERNAL_TOPICS


def check_not_internal(name: str, action: str) -> None:
    """Raise ``InternalTopicError`` if ``name`` is internal; ``action`` says what was refused.

    The one check behind every client path that could change an internal topic: Produce,
    the embedded producer, CreateTopics, DeleteTopics and CreatePartitions. The broker's
    own writers (the group coordinator) append to the partition logs directly.
    """
    if name in INTERNAL_TOPICS:
        raise InternalTopicError(f"Cannot {action} internal topic {name}")


def has_collision_chars(name: str) -> bool:
    """True if ``name`` contains '.' or '_', the characters that can collide in metrics."""
    return "." in name or "_" in name


def collides(a: str, b: str) -> bool:
    """True if ``a`` and ``b`` are equal once every '.' is read as '_'.

    As Kafka's ``Topic.hasCollision``, identical names also collide; callers that create
    topics check for an existing topic of the same name first (``TopicExistsError``).
    """
    return a.replace(".", "_") == b.replace(".", "_")


def check_collisions(name: str, existing: Iterable[str]) -> None:
    """Raise ``InvalidTopicNameError`` if ``name`` collides with a different existing topic.

    This is the check Kafka runs on topic creation. An existing topic with exactly the same
    name is not reported here: that is ``TopicExistsError``, which the caller raises.
    """
    if not has_collision_chars(name):
        # Without '.' or '_' a name collides only with itself.
        return
    unified = name.replace(".", "_")
    clashing = sorted(t for t in existing if t != name and t.replace(".", "_") == unified)
    if clashing:
        raise InvalidTopicNameError(
            f"Topic '{name}' collides with existing topics: {', '.join(clashing)}"
        )
