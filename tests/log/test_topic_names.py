"""Topic name rules against Kafka's Topic.validate, collisions and internal topics."""

from __future__ import annotations

import re
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamlog.log.errors import InternalTopicError, InvalidTopicNameError
from streamlog.log.topic_names import (
    INTERNAL_TOPICS,
    MAX_TOPIC_NAME_LENGTH,
    check_collisions,
    check_not_internal,
    collides,
    has_collision_chars,
    is_internal,
    validate_topic_name,
)


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "orders",
        "Orders-v2.eu_west",
        "...",
        ".hidden",
        "_x",
        "-",
        "__consumer_offsets",
        "x" * 249,
    ],
)
def test_valid_names_pass(name: str) -> None:
    validate_topic_name(name)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "can't be empty"),
        (".", '"." or ".."'),
        ("..", '"." or ".."'),
        ("x" * 250, "longer than 249 characters (250 given)"),
        ("a b", "' ' at index 1"),
        ("a/b", "'/' at index 1"),
        ("café", "'é' at index 3"),
        ("٣", "'٣' at index 0"),
        ("tab\t", "'\\t' at index 3"),
        ("a:b", "ASCII alphanumerics, '.', '_' and '-'"),
    ],
)
def test_invalid_names_are_refused_with_the_reason(name: str, fragment: str) -> None:
    with pytest.raises(InvalidTopicNameError) as info:
        validate_topic_name(name)
    assert fragment in str(info.value)


def test_a_non_string_name_is_refused() -> None:
    with pytest.raises(InvalidTopicNameError, match="must be a string"):
        validate_topic_name(cast(str, None))


_KAFKA_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")


def _kafka_accepts(name: str) -> bool:
    """Kafka's rule written independently: legal pattern, length cap, not '.' or '..'."""
    return (
        _KAFKA_LEGAL.fullmatch(name) is not None
        and len(name) <= MAX_TOPIC_NAME_LENGTH
        and name not in (".", "..")
    )


@given(
    st.one_of(
        st.text(max_size=260),
        st.text(alphabet="ab._-Z9", max_size=260),
        st.sampled_from([".", "..", "...", ""]),
    )
)
def test_validate_agrees_with_kafkas_rule(name: str) -> None:
    try:
        validate_topic_name(name)
    except InvalidTopicNameError:
        accepted = False
    else:
        accepted = True
    assert accepted == _kafka_accepts(name)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("a.b", "a_b", True),
        ("a.b_c", "a_b.c", True),
        ("a.b", "a.b", True),  # as Kafka's Topic.hasCollision
        ("a.b", "a-b", False),
        ("a.b", "ab", False),
        ("a.b", "A.b", False),
    ],
)
def test_collides(a: str, b: str, expected: bool) -> None:
    assert collides(a, b) is expected
    assert collides(b, a) is expected


def test_has_collision_chars() -> None:
    assert has_collision_chars("a.b")
    assert has_collision_chars("a_b")
    assert not has_collision_chars("a-b")


def test_check_collisions_names_the_clashing_topics() -> None:
    existing = ["metrics_eu", "metrics.eu.x", "metrics.eu", "other"]
    with pytest.raises(InvalidTopicNameError) as info:
        check_collisions("metrics_eu", existing + ["metrics-eu"])
    assert str(info.value) == "Topic 'metrics_eu' collides with existing topics: metrics.eu"


def test_check_collisions_leaves_same_name_and_plain_names_alone() -> None:
    check_collisions("a.b", ["a.b", "a-b"])
    check_collisions("plain", ["plain", "plain2"])


def test_internal_topics() -> None:
    assert INTERNAL_TOPICS == {
        "__consumer_offsets",
        "__transaction_state",
        "__share_group_state",
        "__cluster_metadata",
    }
    assert is_internal("__consumer_offsets")
    assert is_internal("__transaction_state")
    assert not is_internal("_consumer_offsets")
    assert not is_internal("__my_own_topic")  # a user may still name a topic "__..."
    assert not is_internal("orders")


def test_check_not_internal_names_the_action_and_topic() -> None:
    check_not_internal("orders", "append to")
    with pytest.raises(InternalTopicError) as info:
        check_not_internal("__consumer_offsets", "append to")
    assert str(info.value) == "Cannot append to internal topic __consumer_offsets"
    assert isinstance(info.value, InvalidTopicNameError)  # INVALID_TOPIC_EXCEPTION
