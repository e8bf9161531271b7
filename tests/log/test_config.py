"""TopicConfig: Kafka's defaults, string-map round trips, overrides, and refusals that
name the key and the value."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamlog.log.config import (
    LONG_MAX,
    TOPIC_CONFIG_KEYS,
    ConfigType,
    TopicConfig,
    describe_config,
)
from streamlog.log.errors import InvalidConfigError

# Kafka's documented topic config defaults (kafka.apache.org/documentation/#topicconfigs,
# 3.x), as DescribeConfigs renders them.
KAFKA_DEFAULTS = {
    "cleanup.policy": "delete",
    "compression.type": "producer",
    "delete.retention.ms": "86400000",
    "file.delete.delay.ms": "60000",
    "flush.messages": "9223372036854775807",
    "flush.ms": "9223372036854775807",
    "index.interval.bytes": "4096",
    "max.compaction.lag.ms": "9223372036854775807",
    "max.message.bytes": "1048588",
    "message.timestamp.after.max.ms": "9223372036854775807",
    "message.timestamp.before.max.ms": "9223372036854775807",
    "message.timestamp.type": "CreateTime",
    "min.cleanable.dirty.ratio": "0.5",
    "min.compaction.lag.ms": "0",
    "min.insync.replicas": "1",
    "preallocate": "false",
    "retention.bytes": "-1",
    "retention.ms": "604800000",
    "segment.bytes": "1073741824",
    "segment.index.bytes": "10485760",
    "segment.jitter.ms": "0",
    "segment.ms": "604800000",
    "unclean.leader.election.enable": "false",
}


def test_defaults_are_kafkas() -> None:
    assert TopicConfig().to_map() == KAFKA_DEFAULTS


def test_default_typed_values() -> None:
    config = TopicConfig()
    assert config.cleanup_policy == frozenset({"delete"})
    assert config.retention_ms == 604_800_000
    assert config.flush_messages == LONG_MAX == 2**63 - 1
    assert config.min_cleanable_dirty_ratio == 0.5
    assert config.preallocate is False
    assert config.delete and not config.compact


def test_every_key_maps_to_a_field() -> None:
    fields = {f.name for f in dataclasses.fields(TopicConfig)}
    assert {k.replace(".", "_") for k in TOPIC_CONFIG_KEYS} == fields
    assert list(TOPIC_CONFIG_KEYS) == sorted(TOPIC_CONFIG_KEYS)


def test_from_map_reads_strings_as_kafka_sends_them() -> None:
    config = TopicConfig.from_map(
        {
            "cleanup.policy": "compact",
            "retention.ms": "-1",
            "segment.bytes": "100",
            "min.cleanable.dirty.ratio": "0.01",
            "preallocate": "true",
            "message.timestamp.type": "LogAppendTime",
            "compression.type": "zstd",
        }
    )
    assert config.cleanup_policy == frozenset({"compact"})
    assert config.retention_ms == -1
    assert config.segment_bytes == 100
    assert config.min_cleanable_dirty_ratio == 0.01
    assert config.preallocate is True
    assert config.message_timestamp_type == "LogAppendTime"
    assert config.compression_type == "zstd"
    assert config.flush_ms == LONG_MAX  # untouched keys keep the default


def test_from_map_takes_ints_and_native_values_too() -> None:
    from_strings = TopicConfig.from_map(
        {"segment.bytes": "4096", "flush.messages": "1", "min.cleanable.dirty.ratio": "1"}
    )
    from_natives = TopicConfig.from_map(
        {"segment.bytes": 4096, "flush.messages": 1, "min.cleanable.dirty.ratio": 1}
    )
    assert from_strings == from_natives
    assert TopicConfig.from_map({"preallocate": True}).preallocate is True


def test_from_map_trims_and_reads_booleans_case_insensitively() -> None:
    config = TopicConfig.from_map(
        {"retention.ms": " 1000 ", "preallocate": " TRUE", "message.timestamp.type": "CreateTime "}
    )
    assert (config.retention_ms, config.preallocate) == (1000, True)
    assert config.message_timestamp_type == "CreateTime"


@pytest.mark.parametrize("spelling", ["compact,delete", "delete,compact", " compact , delete "])
def test_compact_and_delete_in_either_order(spelling: str) -> None:
    config = TopicConfig.from_map({"cleanup.policy": spelling})
    assert config.compact and config.delete
    assert config.to_map()["cleanup.policy"] == "compact,delete"


def test_empty_cleanup_policy_means_neither() -> None:
    # Kafka 3.x accepts an empty list: nothing is ever deleted or compacted.
    config = TopicConfig.from_map({"cleanup.policy": ""})
    assert not config.compact and not config.delete
    assert TopicConfig.from_map(config.to_map()) == config


def test_base_supplies_the_keys_the_map_leaves_out() -> None:
    base = TopicConfig.from_map({"segment.bytes": "1000", "retention.ms": "5000"})
    config = TopicConfig.from_map({"retention.ms": "6000"}, base=base)
    assert (config.segment_bytes, config.retention_ms) == (1000, 6000)


def test_overrides_lists_only_differing_keys() -> None:
    default = TopicConfig()
    assert default.overrides(default) == {}
    config = TopicConfig.from_map(
        {"cleanup.policy": "delete,compact", "segment.bytes": "1000", "retention.ms": "604800000"}
    )
    assert config.overrides(default) == {
        "cleanup.policy": "compact,delete",
        "segment.bytes": "1000",
    }


def test_overrides_against_a_broker_default_other_than_kafkas() -> None:
    broker_default = TopicConfig.from_map({"retention.ms": "3600000"})
    config = TopicConfig.from_map({"retention.ms": "604800000"})
    assert config.overrides(broker_default) == {"retention.ms": "604800000"}


def test_with_overrides_applies_on_top() -> None:
    config = TopicConfig.from_map({"cleanup.policy": "compact"})
    altered = config.with_overrides({"min.compaction.lag.ms": "10"})
    assert altered.compact and altered.min_compaction_lag_ms == 10
    assert config.min_compaction_lag_ms == 0  # the original is unchanged
    assert altered == TopicConfig.from_map({"min.compaction.lag.ms": 10}, base=config)


_valid_configs = st.builds(
    TopicConfig,
    cleanup_policy=st.frozensets(st.sampled_from(["compact", "delete"])),
    compression_type=st.sampled_from(["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
    delete_retention_ms=st.integers(0, LONG_MAX),
    flush_messages=st.integers(1, LONG_MAX),
    index_interval_bytes=st.integers(0, 2**31 - 1),
    message_timestamp_type=st.sampled_from(["CreateTime", "LogAppendTime"]),
    min_cleanable_dirty_ratio=st.floats(0, 1),
    preallocate=st.booleans(),
    retention_bytes=st.integers(-(2**63), LONG_MAX),
    retention_ms=st.integers(-1, LONG_MAX),
    segment_bytes=st.integers(14, 2**31 - 1),
    segment_ms=st.integers(1, LONG_MAX),
)


@given(_valid_configs)
def test_string_map_round_trip(config: TopicConfig) -> None:
    rendered = config.to_map()
    assert set(rendered) == set(KAFKA_DEFAULTS)
    assert all(isinstance(v, str) for v in rendered.values())
    assert TopicConfig.from_map(rendered) == config


@given(_valid_configs, _valid_configs)
def test_overrides_rebuild_the_config_from_its_default(
    config: TopicConfig, default: TopicConfig
) -> None:
    assert default.with_overrides(config.overrides(default)) == config


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("segment.bytes", "13", "Value must be at least 14"),
        ("segment.bytes", "abc", "Not a number of type INT"),
        ("segment.bytes", "3000000000", "Not a number of type INT"),
        ("segment.bytes", "1_000", "Not a number of type INT"),
        ("segment.bytes", "1.5", "Not a number of type INT"),
        ("retention.ms", "-2", "Value must be at least -1"),
        ("retention.ms", "9223372036854775808", "Not a number of type LONG"),
        ("segment.ms", "0", "Value must be at least 1"),
        ("flush.messages", "0", "Value must be at least 1"),
        ("max.compaction.lag.ms", "0", "Value must be at least 1"),
        ("min.cleanable.dirty.ratio", "1.5", "Value must be no more than 1"),
        ("min.cleanable.dirty.ratio", "-0.1", "Value must be at least 0"),
        ("min.cleanable.dirty.ratio", "NaN", "Not a number of type DOUBLE"),
        ("min.cleanable.dirty.ratio", "1e400", "Not a number of type DOUBLE"),
        ("cleanup.policy", "compact,deleted", "'deleted' is not one of: compact, delete"),
        ("cleanup.policy", "compact,", "'' is not one of: compact, delete"),
        ("message.timestamp.type", "createtime", "String must be one of"),
        ("compression.type", "brotli", "String must be one of"),
        ("preallocate", "yes", "Expected value to be either true or false"),
        ("preallocate", 1, "Expected value to be either true or false"),
        ("compression.type", 5, "Expected value to be a string"),
        ("segment.index.bytes", "3", "Value must be at least 4"),
        ("min.insync.replicas", "0", "Value must be at least 1"),
    ],
)
def test_bad_values_are_refused_naming_key_and_value(
    key: str, value: str | int, reason: str
) -> None:
    with pytest.raises(InvalidConfigError) as info:
        TopicConfig.from_map({key: value})
    message = str(info.value)
    assert message.startswith("Invalid value ")
    assert f"for configuration {key}: " in message
    assert str(value).strip() in message
    assert reason in message


def test_a_blank_value_is_shown_quoted() -> None:
    with pytest.raises(InvalidConfigError, match=r"Invalid value '' for configuration segment.ms"):
        TopicConfig.from_map({"segment.ms": ""})


def test_unknown_keys_are_refused_by_name() -> None:
    for key in ("segment.size", "remote.storage.enable", "message.format.version"):
        with pytest.raises(InvalidConfigError, match=f"^Unknown topic config name: {key}$"):
            TopicConfig.from_map({"retention.ms": "1", key: "1"})


def test_null_values_are_refused() -> None:
    with pytest.raises(InvalidConfigError, match="Null value .* retention.ms"):
        TopicConfig.from_map(cast(dict[str, str], {"retention.ms": None}))


def test_min_compaction_lag_above_max_is_a_conflict() -> None:
    with pytest.raises(InvalidConfigError) as info:
        TopicConfig.from_map({"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"})
    assert "min.compaction.lag.ms (10) > max.compaction.lag.ms (5)" in str(info.value)


@pytest.mark.parametrize(
    "changes",
    [
        {"segment_bytes": 13},
        {"segment_bytes": True},
        {"retention_ms": 2**63},
        {"preallocate": 1},
        {"cleanup_policy": {"delete"}},
        {"cleanup_policy": frozenset({"trim"})},
        {"min_cleanable_dirty_ratio": float("nan")},
        {"min_cleanable_dirty_ratio": 10**400},
        {"message_timestamp_type": "NoTime"},
    ],
)
def test_direct_construction_is_validated_too(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidConfigError, match="for configuration"):
        TopicConfig(**changes)


def test_configs_are_frozen_and_hashable() -> None:
    config = TopicConfig()
    field_name = "retention_ms"
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, field_name, 1)
    assert hash(config) == hash(TopicConfig.from_map(KAFKA_DEFAULTS))


@pytest.mark.parametrize("key", TOPIC_CONFIG_KEYS)
def test_describe_config_for_every_key(key: str) -> None:
    info = describe_config(key)
    assert info.name == key
    assert info.default == KAFKA_DEFAULTS[key]
    assert len(info.documentation) > 40
    # The default parses back to itself under the declared type.
    assert TopicConfig.from_map({key: info.default}) == TopicConfig()


def test_describe_config_types_and_valid_values() -> None:
    assert describe_config("segment.bytes").type is ConfigType.INT
    assert describe_config("segment.bytes").valid_values == "[14,...]"
    assert describe_config("retention.ms").type is ConfigType.LONG
    assert describe_config("retention.bytes").valid_values == ""
    assert describe_config("min.cleanable.dirty.ratio").type is ConfigType.DOUBLE
    assert describe_config("min.cleanable.dirty.ratio").valid_values == "[0,...,1]"
    assert describe_config("preallocate").type is ConfigType.BOOLEAN
    assert describe_config("cleanup.policy").type is ConfigType.LIST
    assert describe_config("cleanup.policy").valid_values == "[compact, delete]"
    assert describe_config("message.timestamp.type").type is ConfigType.STRING


def test_config_type_codes_are_describe_configs_codes() -> None:
    assert [(t.name, t.value) for t in ConfigType] == [
        ("UNKNOWN", 0),
        ("BOOLEAN", 1),
        ("STRING", 2),
        ("INT", 3),
        ("SHORT", 4),
        ("LONG", 5),
        ("DOUBLE", 6),
        ("LIST", 7),
        ("CLASS", 8),
        ("PASSWORD", 9),
    ]


def test_describe_config_refuses_unknown_keys() -> None:
    with pytest.raises(InvalidConfigError, match="Unknown topic config name: nope"):
        describe_config("nope")
