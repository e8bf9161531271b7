"""What Tansu lacks ends in a clear error naming the missing broker feature, in bounded
time, from the CLI tools that need it (real ``streamlog`` commands against the real
Tansu binary). That the checks do not refuse a broker with the feature is shown by the
same commands on ``streamlog broker`` in tests/cli (test_tools_console's ``--timestamp``,
test_tools_topics' ``add-partitions``).

What a worker meets on Tansu (its end offsets) is in tests/worker/test_on_tansu.py; the
list of gaps and their effects is in docs/deploy.md ("Tansu").
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from streamlog.transport import open_transport
from tests.broker.tansuproc import TansuProcess
from tests.worker.workerproc import run_cli

pytestmark = pytest.mark.timeout(120)

GAP_TIMEOUT = 30.0  # seconds: a refusal comes at once; a hang would overrun this


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def _topic_with(url: str, topic: str, partitions: int, values: list[bytes]) -> int:
    """Create ``topic`` (unless ``partitions`` is 0) with ``values`` in it; returns its
    partition count, as described."""
    transport = open_transport(url)
    await transport.start()
    try:
        admin = transport.admin()
        try:
            if partitions:
                await admin.create_topic(topic, partitions)
            if values:
                producer = transport.producer()
                try:
                    for value in values:
                        await producer.send_and_wait(topic, value, partition=0)
                finally:
                    await producer.close()
            return len((await admin.describe_topic(topic)).partitions)
        finally:
            await admin.close()
    finally:
        await transport.close()


def topic_with(url: str, topic: str, partitions: int = 1, values: list[bytes] | None = None) -> int:
    return asyncio.run(asyncio.wait_for(_topic_with(url, topic, partitions, values or []), 30))


def test_add_partitions_on_tansu_names_create_partitions(tansu_broker: TansuProcess) -> None:
    url = f"kafka://{tansu_broker.bootstrap}"
    topic = _topic("grow")
    assert topic_with(url, topic, 2) == 2
    grow = ("topics", "add-partitions", topic, "-p", "4", "--broker", url)
    out = run_cli(*grow, timeout=GAP_TIMEOUT)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "the broker does not support CreatePartitions" in out.stderr
    assert "Traceback" not in out.stderr
    assert topic_with(url, topic, partitions=0) == 2  # unchanged


def test_consume_from_a_time_on_tansu_names_time_lookups(tansu_broker: TansuProcess) -> None:
    """Tansu answers offset 0 to every time lookup, even for a time after every record:
    without the check, ``--timestamp`` with such a time printed the whole topic."""
    url = f"kafka://{tansu_broker.bootstrap}"
    topic = _topic("times")
    topic_with(url, topic, 1, [b"a", b"b"])
    out = run_cli(
        "consume", topic, "--timestamp", "1000", "--timeout-ms", "1000", "--broker", url,
        timeout=GAP_TIMEOUT,
    )  # fmt: skip
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert out.stdout == ""
    assert "the broker does not look offsets up by time (ListOffsets with a timestamp)" in (
        out.stderr
    )
    assert f"{topic}[0]" in out.stderr and "answered offset 0" in out.stderr
