"""Typos create nothing: ``produce``, ``consume`` and ``send`` use only topics that exist
(``--create`` creates one), ``groups describe`` only groups that exist, and no tool makes
a ``file://`` directory it was not told to create. Unknown names are errors listing the
near matches. Real processes against a real broker and ``file://``."""

from __future__ import annotations

import os

from tests.cli import test_tools_harness as harness
from tests.cli.test_tools_harness import ok, streamlog
from tests.worker.workerproc import APPS

# The harness's fixtures: one broker per module, each test over kafka:// and file://.
kafka_broker = harness.kafka_broker
broker_url = harness.broker_url
topic = harness.topic

WORDCOUNT = os.path.join(APPS, "wordcount.py")


def test_produce_to_an_unknown_topic_is_an_error_naming_near_matches(
    broker_url: str, topic: str
) -> None:
    ok("topics", "create", topic, broker=broker_url)
    typo = topic[:-1]  # one letter short
    out = streamlog("produce", typo, broker=broker_url, input="lost\n")
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == (
        f"Error: topic '{typo}' does not exist (did you mean: {topic}?); "
        "pass --create to create it\n"
    )
    assert typo not in ok("topics", "list", broker=broker_url)

    # --create: the topic is made (one partition) and holds the records.
    assert ok("produce", typo, "--create", broker=broker_url, input="kept\n") == []
    assert ok("topics", "describe", typo, broker=broker_url)[0] == (
        f"Topic: {typo}  Partitions: 1  Replication factor: 1"
    )
    assert ok("consume", typo, "--from-beginning", "--max", "1", broker=broker_url) == ["kept"]
    # --create on a topic that exists changes nothing.
    assert ok("produce", topic, "--create", broker=broker_url, input="x\n") == []
    assert ok("consume", topic, "--from-beginning", "--max", "1", broker=broker_url) == ["x"]


def test_no_near_match_no_suggestion(broker_url: str, topic: str) -> None:
    ok("topics", "create", topic, broker=broker_url)
    out = streamlog("produce", "zzzz", broker=broker_url, input="x\n")
    assert (out.returncode, out.stderr) == (
        1,
        "Error: topic 'zzzz' does not exist; pass --create to create it\n",
    )


def test_consume_of_an_unknown_topic_creates_nothing(broker_url: str, topic: str) -> None:
    ok("topics", "create", topic, broker=broker_url)
    typo = topic + "s"
    for extra in ((), ("--group", topic + "-g")):
        out = streamlog("consume", typo, "--timeout-ms", "500", *extra, broker=broker_url)
        assert (out.returncode, out.stdout) == (1, ""), extra
        assert out.stderr == f"Error: topic '{typo}' does not exist (did you mean: {topic}?)\n"
    assert typo not in ok("topics", "list", broker=broker_url)


def test_groups_describe_names_near_matches(broker_url: str, topic: str) -> None:
    group = "billing-" + topic
    ok("produce", topic, "--create", broker=broker_url, input="a\n")
    ok("consume", topic, "-g", group, "--from-beginning", "--max", "1", broker=broker_url)
    typo = group.replace("billing", "biling")
    out = streamlog("groups", "describe", typo, broker=broker_url)
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == (
        f"Error: consumer group '{typo}' does not exist (did you mean: {group}?)\n"
    )


def test_a_missing_directory_is_an_error_not_a_new_log(tmp_path) -> None:
    missing = tmp_path / "other-data"
    url = f"file://{missing}"
    for args in (
        ("topics", "list"),
        ("topics", "describe", "t"),
        ("groups", "list"),
        ("groups", "describe", "g"),
        ("consume", "t"),
        ("produce", "t"),
    ):
        out = streamlog(*args, broker=url, input="x\n")
        assert (out.returncode, out.stdout) == (1, ""), args
        assert out.stderr == (
            f"Error: {url}: directory {missing} does not exist (tools create a data "
            "directory only when told to create something: topics create, --create)\n"
        ), args
        assert not missing.exists(), args
    # Told to create: the directory comes with the topic.
    assert ok("produce", "t", "--create", broker=url, input="x\n") == []
    assert ok("topics", "list", broker=url) == ["t"]


def test_send_to_an_undeclared_unknown_topic_needs_create(tmp_path) -> None:
    url = f"file://{tmp_path / 'log'}"
    # A topic the app declares is created as its worker would (4 partitions here).
    assert ok("send", WORDCOUNT, "words", "hello", "--key", "k", "--broker", url)[0].startswith(
        "words["
    )
    assert ok("topics", "describe", "words", broker=url)[0] == (
        "Topic: words  Partitions: 4  Replication factor: 1"
    )
    out = streamlog("send", WORDCOUNT, "wrds", "hello", "--broker", url)
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == (
        "Error: topic 'wrds' does not exist (did you mean: words?); pass --create to create it\n"
    )
    assert "wrds" not in ok("topics", "list", broker=url)
    # --create: made as the app makes its topics (its topic_partitions, 4).
    [landed] = ok("send", WORDCOUNT, "wrds", "hello", "--create", "--broker", url)
    assert landed in {f"wrds[{p}]@0" for p in range(4)}
    assert ok("topics", "describe", "wrds", broker=url)[0] == (
        "Topic: wrds  Partitions: 4  Replication factor: 1"
    )
    assert ok("consume", "wrds", "--from-beginning", "--max", "1", broker=url) == ['"hello"']


def test_topic_commands_name_near_matches(broker_url: str, topic: str) -> None:
    ok("topics", "create", topic, broker=broker_url)
    typo = topic[:-1]
    for args in (
        ("topics", "describe", typo),
        ("topics", "delete", typo),
        ("topics", "add-partitions", typo, "--partitions", "3"),
    ):
        out = streamlog(*args, broker=broker_url)
        assert (out.returncode, out.stdout) == (1, ""), args
        assert out.stderr == f"Error: topic '{typo}' does not exist (did you mean: {topic}?)\n"
    assert ok("topics", "describe", topic, broker=broker_url)[0].startswith(
        f"Topic: {topic}  Partitions: 1 "
    )


def test_a_name_sharing_only_a_prefix_is_not_suggested() -> None:
    """The pair a CI run met on a shared broker: difflib's default cutoff (0.6) suggested
    one random topic name for a typo of another."""
    from streamlog.cli.common import unknown_name

    assert unknown_name("topic", "t-5231ad7be", ["t-3ad77a5ef9", "t-5231ad7bec"]) == (
        "topic 't-5231ad7be' does not exist (did you mean: t-5231ad7bec?)"
    )
    assert unknown_name("topic", "t-5231ad7be", ["t-3ad77a5ef9"]) == (
        "topic 't-5231ad7be' does not exist"
    )
