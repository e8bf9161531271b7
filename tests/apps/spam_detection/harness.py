"""Run the spam app for tests: a real ``streamlog broker``, real workers, the generator's
records, and the app's output read back. No tests here."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from apps.spam_detection import generate
from streamlog.transport import open_transport
from tests.worker.workerproc import WorkerProcess, read_topic, wait_until

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
APP = os.path.join(REPO, "apps", "spam_detection", "app.py")
GROUP = "spam-detection"
TOPICS = ("users", "pin_events", "spam-domain-links", "spam-reports", "spam_flags")


def start_worker(url: str | None, workdir: str, env: dict[str, str] | None = None) -> WorkerProcess:
    os.makedirs(workdir, exist_ok=True)
    return WorkerProcess(APP, url, workdir, extra_args=("--web-port", "0"), env=env or {}).start()


def send(url: str, users: list[dict[str, Any]], pins: list[dict[str, Any]]) -> None:
    asyncio.run(asyncio.wait_for(generate.send(url, users, pins, partitions=4), 60))


async def _lags(url: str) -> dict[str, tuple[int, int]]:
    """Per topic: (records in it, records the group has committed past)."""
    transport = open_transport(url)
    await transport.start()
    try:
        admin = transport.admin()
        try:
            info = await admin.describe_group(GROUP)
        finally:
            await admin.close()
    finally:
        await transport.close()
    totals: dict[str, tuple[int, int]] = {}
    for p in info.partitions:
        end, done = totals.get(p.topic, (0, 0))
        totals[p.topic] = (end + p.log_end_offset, done + max(p.committed_offset, 0))
    return totals


def wait_processed(url: str, users: int, pins: int, timeout: float = 90.0) -> None:
    """Until the group has committed every input record and everything the app wrote to
    its own topics (so every flag is out)."""

    def done() -> bool:
        totals = asyncio.run(asyncio.wait_for(_lags(url), 30))
        if totals.get("users", (0, 0))[1] < users or totals.get("pin_events", (0, 0))[1] < pins:
            return False
        return all(end == committed for end, committed in totals.values())

    wait_until(done, timeout, "the spam app to process every record", interval=0.3)


def flags(url: str) -> list[dict[str, Any]]:
    """Every ``spam_flags`` value (checked for the issue's shape), with its record timestamp."""
    out = []
    for record in read_topic(url, "spam_flags"):
        value = json.loads(record.value or b"")
        assert set(value) == {"user_id", "score", "reasons", "ts"}, value
        assert record.key == value["user_id"].encode()
        assert 0.5 <= value["score"] <= 1.0 and value["reasons"], value
        assert record.timestamp == int(value["ts"] * 1000), (record.timestamp, value)
        out.append(value)
    return out
