"""``streamlog topics`` against a real broker and ``file://``."""

from __future__ import annotations

from tests.cli import test_tools_harness as harness
from tests.cli.test_tools_harness import ok, streamlog

# The harness's fixtures: one broker per module, each test over kafka:// and file://.
kafka_broker = harness.kafka_broker
broker_url = harness.broker_url
topic = harness.topic

TABLE_HEADER = "PARTITION  LEADER  REPLICAS  ISR  LOG-START-OFFSET  LOG-END-OFFSET"


def table(lines: list[str]) -> list[str]:
    return lines[lines.index(TABLE_HEADER) :]


def test_create_list_describe_grow_delete(broker_url: str, topic: str) -> None:
    other = topic + "-other"
    assert ok("topics", "create", topic, "--partitions", "2", broker=broker_url) == [
        f"Created topic {topic}."
    ]
    assert ok(
        "topics", "create", other, "--config", "cleanup.policy=compact", broker=broker_url
    ) == [f"Created topic {other}."]
    listed = ok("topics", "list", broker=broker_url)
    assert topic in listed and other in listed
    assert listed == sorted(listed)
    assert "__consumer_offsets" not in listed

    ok("produce", topic, "--key-separator", ":", broker=broker_url, input="k:a\nk:b\nk:c\n")
    described = ok("topics", "describe", topic, broker=broker_url)
    assert described[0] == f"Topic: {topic}  Partitions: 2  Replication factor: 1"
    rows = table(described)
    ends = []
    for partition, row in enumerate(rows[1:]):
        assert row.startswith(f"{partition}          0       [0]       [0]  0                 ")
        ends.append(int(row.split()[-1]))
    assert sorted(ends) == [0, 3]  # one key: all three records in one partition

    compacted = ok("topics", "describe", other, broker=broker_url)
    assert "  cleanup.policy=compact" in compacted
    assert table(compacted) == [
        TABLE_HEADER,
        "0          0       [0]       [0]  0                 0",
    ]

    assert ok("topics", "add-partitions", topic, "--partitions", "3", broker=broker_url) == [
        f"Topic {topic} now has 3 partitions."
    ]
    assert len(table(ok("topics", "describe", topic, broker=broker_url))) == 1 + 3

    assert ok("topics", "delete", other, broker=broker_url) == [f"Deleted topic {other}."]
    listed = ok("topics", "list", broker=broker_url)
    assert topic in listed and other not in listed


def test_describe_shows_only_overrides_on_the_embedded_log(tmp_path) -> None:
    url = f"file://{tmp_path}"
    ok("topics", "create", "plain", broker=url)
    ok(
        "topics",
        "create",
        "tuned",
        "-c",
        "retention.ms=1000",
        "-c",
        "segment.bytes=4096",
        broker=url,
    )
    assert ok("topics", "describe", "plain", broker=url) == [
        "Topic: plain  Partitions: 1  Replication factor: 1",
        "Configs: (none)",
        TABLE_HEADER,
        "0          0       [0]       [0]  0                 0",
    ]
    assert ok("topics", "describe", "tuned", broker=url)[:4] == [
        "Topic: tuned  Partitions: 1  Replication factor: 1",
        "Configs:",
        "  retention.ms=1000",
        "  segment.bytes=4096",
    ]
    internal = ok("topics", "list", "--internal", broker=url)
    assert "plain" in internal and "tuned" in internal


def test_topic_errors_are_one_line(broker_url: str, topic: str) -> None:
    ok("topics", "create", topic, broker=broker_url)
    for args in (
        ("topics", "create", topic),
        ("topics", "describe", topic + "-missing"),
        ("topics", "delete", topic + "-missing"),
        ("topics", "add-partitions", topic, "--partitions", "1"),
    ):
        out = streamlog(*args, broker=broker_url)
        assert out.returncode == 1, (args, out)
        assert out.stdout == ""
        lines = out.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (args, out.stderr)
        assert "Traceback" not in out.stderr


def test_bad_config_is_a_usage_error(tmp_path) -> None:
    out = streamlog("topics", "create", "x", "--config", "nonsense", broker=f"file://{tmp_path}")
    assert out.returncode == 2
    assert "expected KEY=VALUE, got 'nonsense'" in out.stderr
