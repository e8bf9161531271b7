"""``streamlog groups``: the offset checker, after consuming in a group."""

from __future__ import annotations

from tests.cli import test_tools_harness as harness
from tests.cli.test_tools_harness import ok, streamlog

# The harness's fixtures: one broker per module, each test over kafka:// and file://.
kafka_broker = harness.kafka_broker
broker_url = harness.broker_url
topic = harness.topic

HEADER = "TOPIC{pad}  PARTITION  COMMITTED-OFFSET  LOG-END-OFFSET  LAG  MEMBER-ID  HOST  CLIENT-ID"


def test_describe_shows_committed_offsets_and_lag(broker_url: str, topic: str) -> None:
    group = topic + "-group"
    pad = " " * (len(topic) - len("TOPIC"))
    ok("topics", "create", topic, broker=broker_url)
    ok("produce", topic, broker=broker_url, input="".join(f"v{i}\n" for i in range(5)))

    assert ok(
        "consume", topic, "--group", group, "--from-beginning", "--max", "3", broker=broker_url
    ) == ["v0", "v1", "v2"]
    assert group in ok("groups", "list", broker=broker_url)
    assert ok("groups", "describe", group, broker=broker_url) == [
        f"Group: {group}  State: Empty  Members: 0",
        "",
        HEADER.format(pad=pad),
        f"{topic}  0          3                 5               2    -          -     -",
    ]

    # The group resumes at its commit (no --from-beginning needed) and commits again.
    assert ok("consume", topic, "--group", group, "--timeout-ms", "1500", broker=broker_url) == [
        "v3",
        "v4",
    ]
    assert ok("groups", "describe", group, broker=broker_url)[-1] == (
        f"{topic}  0          5                 5               0    -          -     -"
    )

    # New records: the lag grows, the commit stays.
    ok("produce", topic, broker=broker_url, input="v5\nv6\nv7\n")
    assert ok("groups", "describe", group, broker=broker_url)[-1] == (
        f"{topic}  0          5                 8               3    -          -     -"
    )


def test_a_new_group_without_from_beginning_starts_at_the_end(broker_url: str, topic: str) -> None:
    group = topic + "-late"
    ok("produce", topic, "--create", broker=broker_url, input="old\n")
    assert ok("consume", topic, "--group", group, "--timeout-ms", "1000", broker=broker_url) == []
    # It committed the end it started at: the old record is not lag.
    assert ok("groups", "describe", group, broker=broker_url)[-1].split()[:5] == [
        topic,
        "0",
        "1",
        "1",
        "0",
    ]


def test_every_partition_of_the_group_is_described(broker_url: str, topic: str) -> None:
    group = topic + "-multi"
    ok("topics", "create", topic, "--partitions", "3", broker=broker_url)
    lines = [f"key{i}:value{i}" for i in range(30)]
    ok("produce", topic, "-k", ":", broker=broker_url, input="\n".join(lines) + "\n")
    consumed = ok(
        "consume", topic, "-g", group, "--from-beginning", "--timeout-ms", "1500", "-k", ":",
        broker=broker_url,
    )  # fmt: skip
    assert sorted(consumed) == sorted(lines)
    rows = ok("groups", "describe", group, broker=broker_url)[3:]
    assert [row.split()[:2] for row in rows] == [[topic, "0"], [topic, "1"], [topic, "2"]]
    for row in rows:
        _, _, committed, end, lag, *_ = row.split()
        assert committed == end and lag == "0"
    assert sum(int(row.split()[3]) for row in rows) == 30


def test_unknown_group_is_an_error(broker_url: str, topic: str) -> None:
    ok("topics", "create", topic, broker=broker_url)  # the log exists, the group does not
    out = streamlog("groups", "describe", "no-such-group", broker=broker_url)
    assert out.returncode == 1
    assert out.stderr == "Error: consumer group 'no-such-group' does not exist\n"
