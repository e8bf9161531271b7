"""Run the spam app for tests: a real ``streamlog broker``, real workers, the generator's
records, and the app's output read back. No tests here."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.request
from typing import Any

from apps.spam_detection import generate
from streamlog.transport import open_transport
from tests.worker.workerproc import WorkerProcess, read_topic, start_together, wait_until

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
APP = os.path.join(REPO, "apps", "spam_detection", "app.py")
GROUP = "spam-detection"
TOPICS = ("users", "pin_events", "spam-domain-links", "spam-reports", "spam_flags")


def start_worker(url: str | None, workdir: str, env: dict[str, str] | None = None) -> WorkerProcess:
    os.makedirs(workdir, exist_ok=True)
    return WorkerProcess(APP, url, workdir, extra_args=("--web-port", "0"), env=env or {}).start()


def start_workers(url: str, *workdirs: str) -> list[WorkerProcess]:
    """One worker per directory, started side by side (``start_together``)."""
    workers = []
    for workdir in workdirs:
        os.makedirs(workdir, exist_ok=True)
        workers.append(WorkerProcess(APP, url, workdir, extra_args=("--web-port", "0")))
    start_together(workers)
    return workers


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
        assert record.timestamp == round(value["ts"] * 1000), (record.timestamp, value)
        out.append(value)
    return out


def committed_pins(url: str) -> int:
    """Records of ``pin_events`` the group has committed past."""
    return asyncio.run(asyncio.wait_for(_lags(url), 30)).get("pin_events", (0, 0))[1]


class ChunkedSender:
    """Sends pins in chunks from a thread, so a test can crash, add or stop workers while
    input is still arriving (``done`` once every chunk is acknowledged; ``error`` if one
    failed). The pause between chunks only spreads the input over a few seconds, as a
    live producer would; nothing waits on it."""

    def __init__(self, url: str, pins: list[dict[str, Any]], chunk: int, pause: float) -> None:
        self.url, self.pins, self.chunk, self.pause = url, pins, chunk, pause
        self.sent = 0
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spam-sender", daemon=True)

    def __enter__(self) -> ChunkedSender:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(90)

    def _run(self) -> None:
        try:
            for at in range(0, len(self.pins), self.chunk):
                if self._stop.is_set():
                    return
                batch = self.pins[at : at + self.chunk]
                send(self.url, [], batch)
                self.sent += len(batch)
                self._stop.wait(self.pause)
        except BaseException as error:  # reported by wait()
            self.error = error
        finally:
            self.done.set()

    def wait(self, timeout: float = 90.0) -> None:
        """Until every chunk is acknowledged (re-raises a send's failure)."""
        assert self.done.wait(timeout), f"the sender sent {self.sent} of {len(self.pins)}"
        if self.error is not None:
            raise self.error
        assert self.sent == len(self.pins)


def page_flagged(worker: WorkerProcess) -> set[str]:
    """The user ids the worker's page ``/spam/flagged.json`` lists now."""
    web = worker.wait_for_log(r"web endpoint on (http://127\.0\.0\.1:\d+)").split(" on ")[1]
    with urllib.request.urlopen(web + "/spam/flagged.json", timeout=10) as answer:
        rows = json.load(answer)["flagged"]
    assert len(rows) == len({r["user_id"] for r in rows}), rows  # one row per user
    return {r["user_id"] for r in rows}
