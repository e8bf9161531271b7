"""Per-topic settings with Kafka's names, types, defaults and validation.

Kafka clients send topic configs as a string map (CreateTopics, AlterConfigs) and expect
one back (DescribeConfigs), so ``TopicConfig`` parses from and renders to that map with
Kafka's spelling. Inside the engine it is a frozen, typed value: a log holds one and swaps
it whole when configs change, so a reader never sees half an update.

Validation follows Kafka 3.x ``LogConfig``: the same type per key, the same ranges, the
same "Invalid value V for configuration K: reason" messages, so a client sees what a
Kafka broker would tell it. Deliberate choices:

- ``segment.bytes`` accepts anything from 14 (``MIN_SEGMENT_BYTES``, Kafka 3.x's floor,
  the size of a legacy v0 record header). Kafka 4.0 raised the floor to 1 MiB; keeping
  the small one lets tests force segment rolls with tiny segments. A batch larger than a
  segment still goes into a segment of its own.
- ``min.insync.replicas`` and ``unclean.leader.election.enable`` are accepted and
  reported so that clients that set them keep working; a single-replica log has no use
  for them.
- Keys for tiered storage, replication throttling and the removed message format
  versions are unknown here and refused, rather than accepted and silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from streamlog.log.errors import InvalidConfigError

__all__ = [
    "LONG_MAX",
    "MIN_SEGMENT_BYTES",
    "CLEANUP_POLICIES",
    "COMPRESSION_TYPES",
    "TIMESTAMP_TYPES",
    "TOPIC_CONFIG_KEYS",
    "ConfigType",
    "ConfigEntryInfo",
    "TopicConfig",
    "describe_config",
]

LONG_MAX = 2**63 - 1
"""Java's ``Long.MAX_VALUE``: Kafka's spelling of "never" for times and counts."""
_LONG_MIN = -(2**63)
_INT_MAX = 2**31 - 1
_INT_MIN = -(2**31)

MIN_SEGMENT_BYTES = 14
CLEANUP_POLICIES: frozenset[str] = frozenset({"compact", "delete"})
COMPRESSION_TYPES: tuple[str, ...] = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
TIMESTAMP_TYPES: tuple[str, ...] = ("CreateTime", "LogAppendTime")

# ASCII only: Python's int() and float() also take '1_000', '٣' and 'nan', Java's do not.
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class ConfigType(IntEnum):
    """A config's type, numbered as DescribeConfigs (v3+) reports it."""

    UNKNOWN = 0
    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


@dataclass(frozen=True, slots=True)
class ConfigEntryInfo:
    """What a broker needs to describe one topic config key to a client."""

    name: str
    type: ConfigType
    default: str
    """The default rendered as Kafka renders it (``TopicConfig().to_map()[name]``)."""
    documentation: str
    valid_values: str
    """Kafka's rendering of the validator, e.g. ``[14,...]``; empty when any value goes."""


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """The typed settings of one topic; defaults are Kafka's.

    Invariant: every instance is valid. ``__post_init__`` checks each field against its
    key's type and range, however the instance was made (constructor, ``from_map``,
    ``dataclasses.replace``). Field names are the Kafka keys with '.' read as '_'.
    Times are milliseconds, sizes bytes; ``LONG_MAX`` means "never".
    """

    cleanup_policy: frozenset[str] = field(default=frozenset({"delete"}))
    compression_type: str = "producer"
    delete_retention_ms: int = 86_400_000
    file_delete_delay_ms: int = 60_000
    flush_messages: int = LONG_MAX
    flush_ms: int = LONG_MAX
    index_interval_bytes: int = 4096
    max_compaction_lag_ms: int = LONG_MAX
    max_message_bytes: int = 1_048_588
    message_timestamp_after_max_ms: int = LONG_MAX
    message_timestamp_before_max_ms: int = LONG_MAX
    message_timestamp_type: str = "CreateTime"
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    min_insync_replicas: int = 1
    preallocate: bool = False
    retention_bytes: int = -1
    retention_ms: int = 604_800_000
    segment_bytes: int = 1_073_741_824
    segment_index_bytes: int = 10_485_760
    segment_jitter_ms: int = 0
    segment_ms: int = 604_800_000
    unclean_leader_election_enable: bool = False

    def __post_init__(self) -> None:
        for key in _KEYS.values():
            value = getattr(self, key.attr)
            problem = _type_problem(key.type, value) or key.check(value)
            if problem is not None:
                raise InvalidConfigError(
                    f"Invalid value {_render(key.type, value)} for configuration "
                    f"{key.name}: {problem}"
                )
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms:
            raise InvalidConfigError(
                "conflict topic config setting "
                f"min.compaction.lag.ms ({self.min_compaction_lag_ms}) > "
                f"max.compaction.lag.ms ({self.max_compaction_lag_ms})"
            )

    @classmethod
    def from_map(
        cls, configs: Mapping[str, str | int | float | bool], base: TopicConfig | None = None
    ) -> TopicConfig:
        """Parse Kafka's config map; keys absent from it keep ``base``'s values.

        ``base`` defaults to Kafka's defaults. Values are normally strings, as Kafka's
        admin API sends them; ints (and floats for the ratio, bools for flags) are taken
        as they are. An unknown key, a null value or a bad value raises
        ``InvalidConfigError`` naming the key and the value.
        """
        changes: dict[str, Any] = {}  # checked by __post_init__
        for name, raw in configs.items():
            key = _KEYS.get(name)
            if key is None:
                raise InvalidConfigError(f"Unknown topic config name: {name}")
            changes[key.attr] = _parse(key, raw)
        return dataclasses.replace(base if base is not None else cls(), **changes)

    def to_map(self) -> dict[str, str]:
        """Every key with its value as Kafka renders it, keys sorted."""
        return {key.name: _render(key.type, getattr(self, key.attr)) for key in _KEYS.values()}

    def overrides(self, default: TopicConfig) -> dict[str, str]:
        """Only the keys whose value differs from ``default``: the topic's own settings.

        This is what DescribeConfigs reports as ``DYNAMIC_TOPIC_CONFIG`` and what a log
        persists, so that a later change of the broker default still reaches the topic.
        """
        return {
            key.name: _render(key.type, getattr(self, key.attr))
            for key in _KEYS.values()
            if getattr(self, key.attr) != getattr(default, key.attr)
        }

    def with_overrides(self, configs: Mapping[str, str | int | float | bool]) -> TopicConfig:
        """A copy with ``configs`` applied on top of this config (AlterConfigs)."""
        return TopicConfig.from_map(configs, base=self)

    @property
    def compact(self) -> bool:
        """The cleaner keeps the last record per key (``cleanup.policy`` has ``compact``)."""
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        """Retention by time and size deletes old segments (``cleanup.policy`` has ``delete``)."""
        return "delete" in self.cleanup_policy


def describe_config(key: str) -> ConfigEntryInfo:
    """Type, default, valid values and documentation of one topic config key."""
    spec = _KEYS.get(key)
    if spec is None:
        raise InvalidConfigError(f"Unknown topic config name: {key}")
    return ConfigEntryInfo(
        name=spec.name,
        type=spec.type,
        default=_render(spec.type, getattr(TopicConfig(), spec.attr)),
        documentation=spec.doc,
        valid_values=spec.valid_values,
    )


# --- validators: each returns None when the value is fine, or the reason it is not ----


def _at_least(low: int) -> tuple[Callable[[object], str | None], str]:
    def check(value: object) -> str | None:
        if isinstance(value, int | float) and value < low:
            return f"Value must be at least {low}"
        return None

    return check, f"[{low},...]"


def _between(low: int, high: int) -> tuple[Callable[[object], str | None], str]:
    def check(value: object) -> str | None:
        if isinstance(value, int | float) and value < low:
            return f"Value must be at least {low}"
        if isinstance(value, int | float) and value > high:
            return f"Value must be no more than {high}"
        return None

    return check, f"[{low},...,{high}]"


def _one_of(*allowed: str) -> tuple[Callable[[object], str | None], str]:
    def check(value: object) -> str | None:
        return None if value in allowed else f"String must be one of: {', '.join(allowed)}"

    return check, f"[{', '.join(allowed)}]"


def _subset_of(*allowed: str) -> tuple[Callable[[object], str | None], str]:
    def check(value: object) -> str | None:
        if not isinstance(value, frozenset):
            return None
        bad = sorted(repr(v) for v in value if v not in allowed)
        if bad:
            return f"{', '.join(bad)} is not one of: {', '.join(allowed)}"
        return None

    return check, f"[{', '.join(allowed)}]"


def _anything() -> tuple[Callable[[object], str | None], str]:
    return (lambda value: None), ""


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    type: ConfigType
    check: Callable[[object], str | None]
    valid_values: str
    doc: str

    @property
    def attr(self) -> str:
        return self.name.replace(".", "_")


def _key(
    name: str,
    type_: ConfigType,
    validator: tuple[Callable[[object], str | None], str],
    doc: str,
) -> _Key:
    return _Key(name, type_, validator[0], validator[1], doc)


_KEY_LIST = (
    _key(
        "cleanup.policy",
        ConfigType.LIST,
        _subset_of("compact", "delete"),
        "How old data leaves the log: 'delete' drops whole segments past retention.ms or "
        "retention.bytes; 'compact' keeps only the latest record per key (tombstones "
        "expire after delete.retention.ms); 'compact,delete' does both, for windowed "
        "changelogs whose old windows must go.",
    ),
    _key(
        "compression.type",
        ConfigType.STRING,
        _one_of(*COMPRESSION_TYPES),
        "Codec of stored batches. 'producer' keeps each batch as the producer compressed "
        "it, so the broker never recompresses; any other value recompresses on append.",
    ),
    _key(
        "delete.retention.ms",
        ConfigType.LONG,
        _at_least(0),
        "How long a tombstone stays in a compacted topic after compaction reached it, so "
        "that a consumer reading from the start sees the delete before it disappears.",
    ),
    _key(
        "file.delete.delay.ms",
        ConfigType.LONG,
        _at_least(0),
        "Delay before a segment renamed to .deleted is removed from disk, so that reads "
        "already under way on it can finish.",
    ),
    _key(
        "flush.messages",
        ConfigType.LONG,
        _at_least(1),
        "Force an fsync after this many appended records. The default leaves flushing to "
        "the operating system; 1 syncs every append (durable against power loss, slow).",
    ),
    _key(
        "flush.ms",
        ConfigType.LONG,
        _at_least(0),
        "Force an fsync when this much time has passed since the last flush. The default "
        "leaves flushing to the operating system.",
    ),
    _key(
        "index.interval.bytes",
        ConfigType.INT,
        _at_least(0),
        "Add an offset-index entry after this many bytes of batches: smaller makes reads "
        "seek closer to their offset, at the cost of a larger index.",
    ),
    _key(
        "max.compaction.lag.ms",
        ConfigType.LONG,
        _at_least(1),
        "Longest time a record may stay uncompacted; a segment older than this is rolled "
        "and cleaned even below min.cleanable.dirty.ratio.",
    ),
    _key(
        "max.message.bytes",
        ConfigType.INT,
        _at_least(0),
        "Largest record batch (after compression) the topic accepts; larger batches are "
        "refused with RecordTooLargeError.",
    ),
    _key(
        "message.timestamp.after.max.ms",
        ConfigType.LONG,
        _at_least(0),
        "How far a CreateTime timestamp may be ahead of the broker's clock before the "
        "batch is refused.",
    ),
    _key(
        "message.timestamp.before.max.ms",
        ConfigType.LONG,
        _at_least(0),
        "How far a CreateTime timestamp may be behind the broker's clock before the batch "
        "is refused.",
    ),
    _key(
        "message.timestamp.type",
        ConfigType.STRING,
        _one_of(*TIMESTAMP_TYPES),
        "Which time a record carries: 'CreateTime' keeps the producer's timestamp, "
        "'LogAppendTime' overwrites it with the broker's clock on append.",
    ),
    _key(
        "min.cleanable.dirty.ratio",
        ConfigType.DOUBLE,
        _between(0, 1),
        "Compact a log only when the uncompacted part is at least this fraction of it, "
        "which bounds the wasted space against the cost of cleaning.",
    ),
    _key(
        "min.compaction.lag.ms",
        ConfigType.LONG,
        _at_least(0),
        "Shortest time a record stays uncompacted, so consumers can see every update "
        "younger than this.",
    ),
    _key(
        "min.insync.replicas",
        ConfigType.INT,
        _at_least(1),
        "Replicas that must acknowledge an acks=all write. Accepted for compatibility; a "
        "single-replica log has one.",
    ),
    _key(
        "preallocate",
        ConfigType.BOOLEAN,
        _anything(),
        "Create segment files at their full segment.bytes size up front, which reduces "
        "fragmentation on some file systems.",
    ),
    _key(
        "retention.bytes",
        ConfigType.LONG,
        _anything(),
        "Largest size a partition may reach before its oldest segments are deleted (with "
        "the delete policy); -1 means no size limit.",
    ),
    _key(
        "retention.ms",
        ConfigType.LONG,
        _at_least(-1),
        "How long a segment is kept after its newest record before it is deleted (with "
        "the delete policy); -1 keeps data forever.",
    ),
    _key(
        "segment.bytes",
        ConfigType.INT,
        _at_least(MIN_SEGMENT_BYTES),
        "Roll to a new segment file when the active one would grow past this size. "
        "Retention and compaction work on whole segments, so this is their granularity.",
    ),
    _key(
        "segment.index.bytes",
        ConfigType.INT,
        _at_least(4),
        "Size of the offset and time index files preallocated per segment; a segment "
        "rolls when its index is full.",
    ),
    _key(
        "segment.jitter.ms",
        ConfigType.LONG,
        _at_least(0),
        "Random amount subtracted from segment.ms per segment, so that many partitions "
        "created together do not all roll at the same moment.",
    ),
    _key(
        "segment.ms",
        ConfigType.LONG,
        _at_least(1),
        "Roll to a new segment after this long even if it is not full, so that time-based "
        "retention and compaction can reach data in a quiet topic.",
    ),
    _key(
        "unclean.leader.election.enable",
        ConfigType.BOOLEAN,
        _anything(),
        "Allow an out-of-sync replica to become leader at the cost of losing data. "
        "Accepted for compatibility; a single-replica log never elects.",
    ),
)

_KEYS: dict[str, _Key] = {k.name: k for k in sorted(_KEY_LIST, key=lambda k: k.name)}
TOPIC_CONFIG_KEYS: tuple[str, ...] = tuple(_KEYS)


# --- parsing and rendering in Kafka's string form ------------------------------------


def _bad(key: _Key, raw: object, reason: str) -> InvalidConfigError:
    # Kafka's format shows the value bare; quote it only when blanks would hide it.
    shown = repr(raw) if isinstance(raw, str) and (not raw or raw != raw.strip()) else raw
    return InvalidConfigError(f"Invalid value {shown} for configuration {key.name}: {reason}")


def _parse(key: _Key, raw: object) -> object:
    """Turn one map value into the field's Python type; range checks come later."""
    if raw is None:
        raise InvalidConfigError(f"Null value not supported for topic config: {key.name}")
    kind = key.type
    if kind in (ConfigType.INT, ConfigType.LONG):
        low, high = (_INT_MIN, _INT_MAX) if kind is ConfigType.INT else (_LONG_MIN, LONG_MAX)
        if isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        elif isinstance(raw, str) and _INTEGER.fullmatch(raw.strip()):
            value = int(raw.strip())
        else:
            raise _bad(key, raw, f"Not a number of type {kind.name}")
        if not low <= value <= high:
            raise _bad(key, raw, f"Not a number of type {kind.name} (out of range)")
        return value
    if kind is ConfigType.DOUBLE:
        number: float | None = None
        if isinstance(raw, int | float) and not isinstance(raw, bool) and _is_finite(raw):
            number = float(raw)
        elif isinstance(raw, str) and _DECIMAL.fullmatch(raw.strip()):
            number = float(raw.strip())
        if number is None or not math.isfinite(number):
            raise _bad(key, raw, "Not a number of type DOUBLE")
        return number
    if kind is ConfigType.BOOLEAN:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true"
        raise _bad(key, raw, "Expected value to be either true or false")
    if not isinstance(raw, str):
        raise _bad(key, raw, f"Expected value to be a string, but it was a {type(raw).__name__}")
    if kind is ConfigType.LIST:
        text = raw.strip()
        return frozenset(p.strip() for p in text.split(",")) if text else frozenset()
    return raw.strip()


def _type_problem(kind: ConfigType, value: object) -> str | None:
    """Why ``value`` cannot be a field of this type (direct construction), or None."""
    if kind in (ConfigType.INT, ConfigType.LONG):
        low, high = (_INT_MIN, _INT_MAX) if kind is ConfigType.INT else (_LONG_MIN, LONG_MAX)
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return None if ok else f"Not a number of type {kind.name}"
    if kind is ConfigType.DOUBLE:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and _is_finite(value)
        return None if ok else "Not a number of type DOUBLE"
    if kind is ConfigType.BOOLEAN:
        return None if isinstance(value, bool) else "Expected value to be either true or false"
    if kind is ConfigType.LIST:
        ok = isinstance(value, frozenset) and all(isinstance(v, str) for v in value)
        return None if ok else "Expected a frozenset of strings"
    return None if isinstance(value, str) else "Expected value to be a string"


def _is_finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _render(kind: ConfigType, value: object) -> str:
    if kind is ConfigType.BOOLEAN and isinstance(value, bool):
        return "true" if value else "false"
    if kind is ConfigType.LIST and isinstance(value, frozenset):
        return ",".join(sorted(value))
    if kind is ConfigType.DOUBLE and isinstance(value, int | float) and _is_finite(value):
        return repr(float(value))  # Java's Double.toString spelling for ordinary values
    return str(value)
