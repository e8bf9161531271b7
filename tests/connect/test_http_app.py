"""The HTTP connectors in a real worker process (``streamlog worker``) killed with SIGKILL
part-way and restarted on the same ``file://`` log:

* webhook: a sender retries every request until it gets its 200 (what webhook senders
  do). Every record must be in the topic; only a request in flight at the kill (sent, not
  answered) may have its records there twice.
* HTTP sink: a real receiver (aiohttp, in a thread of this process) gets every record of
  the topic; the worker is killed while the receiver holds a request unanswered. One
  before its partition's committed offset at the kill was received before the kill (an
  offset is committed only after the receiver's 2xx); only one at or after it may come
  twice. The receiver also refuses records (they go to the dead-letter topic) and
  answers 503 for a while, before and after the kill (ridden out, nothing lost).
"""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import json
import socket
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import streamlog
from tests.broker.brokerproc import STREAMLOG
from tests.worker.workerproc import WorkerProcess, group_offsets, produce, read_topic, wait_until

pytestmark = [
    pytest.mark.skipif(
        not hasattr(streamlog.App, "source"),
        reason="needs app.source/app.sink (issue 18's connect runner, merged with it)",
    ),
    pytest.mark.slow,
    pytest.mark.timeout(120),
]

PARTITIONS = 4

WEBHOOK_APP = """
import os

from streamlog import App
from streamlog.connect.http import WebhookSource

app = App("hooked", topic_partitions={partitions}, broker_commit_interval=0.2)
orders = app.topic("orders", value_serializer="json")
app.source(
    WebhookSource(int(os.environ["HOOK_PORT"]), path="/in", key_field="id", name="hooks-in"),
    topic=orders,
)
"""

SINK_APP = """
import os

from streamlog import App
from streamlog.connect.http import HttpSink

app = App("shipper", topic_partitions={partitions}, broker_commit_interval=0.2)
orders = app.topic("orders", value_serializer="json")
app.sink(
    orders,
    HttpSink(
        os.environ["RECEIVER_URL"], body="records", batch_size=50, name="out",
        backoff=0.05, backoff_max=0.2,
    ),
)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_webhook_killed_mid_stream_loses_no_record_and_repeats_only_unanswered_ones(
    tmp_path: Path,
) -> None:
    (tmp_path / "hooked.py").write_text(WEBHOOK_APP.format(partitions=PARTITIONS))
    port = free_port()
    url = f"http://127.0.0.1:{port}/in"
    worker = WorkerProcess(
        str(tmp_path / "hooked.py"), None, str(tmp_path), env={"HOOK_PORT": str(port)}
    )
    listening = "webhook source 'hooks-in' listening"
    requests = [
        [{"id": i, "body": f"order {i}"} for i in range(n, n + 10)] for n in range(0, 3000, 10)
    ]
    answered: set[int] = set()
    in_flight: set[int] = set()
    at_kill: set[int] = set()

    async def send_all() -> None:
        queue = list(range(len(requests)))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:

            async def sender() -> None:
                while queue:
                    index = queue.pop(0)
                    in_flight.add(index)
                    while True:  # a webhook sender: again until a 200
                        try:
                            async with http.post(url, json=requests[index]) as response:
                                if response.status == 200:
                                    break
                                assert response.status == 503, await response.text()
                        except aiohttp.ClientError:
                            pass
                        await asyncio.sleep(0.05)
                    in_flight.discard(index)
                    answered.add(index)

            async def crash() -> None:
                while len(answered) < len(requests) // 3:
                    await asyncio.sleep(0.01)
                at_kill.update(in_flight)
                await asyncio.to_thread(worker.kill)
                await asyncio.to_thread(worker.start, listening)

            await asyncio.gather(crash(), *(sender() for _ in range(4)))

    try:
        worker.start(listening)
        asyncio.run(asyncio.wait_for(send_all(), 90))
        assert worker.stop() == 0, worker.logs()
    finally:
        worker.kill()
    assert worker.runs == 2 and len(answered) == len(requests)
    assert at_kill, "the kill came after the last request: nothing was in flight"

    records = read_topic(f"file://{tmp_path / '.streamlog'}", "orders")
    copies = collections.Counter(json.loads(r.value)["id"] for r in records)
    assert set(copies) == set(range(3000))  # nothing lost
    repeated = {i for i, n in copies.items() if n > 1}
    assert repeated <= {r["id"] for index in at_kill for r in requests[index]}, (repeated, at_kill)
    assert all(r.key == str(json.loads(r.value)["id"]).encode() for r in records)


class Receiver:
    """A real HTTP endpoint in a thread of its own: records ``(partition, offset)`` of
    every record it takes; refuses records whose value has ``"bad"``; answers 503 to the
    next ``unavailable`` requests. The request that brings the count to ``hold_at`` is
    held unanswered (``holding`` is set) until ``release()``: the worker can be killed
    while a request is in flight."""

    def __init__(self, unavailable: int, hold_at: int | None = None) -> None:
        self.unavailable = unavailable
        self.hold_at = hold_at
        self.received: list[tuple[int, int]] = []
        self.lock = threading.Lock()
        self.port = 0
        self.holding = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._released = asyncio.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        items: list[dict[str, Any]] = await request.json()
        if self.unavailable > 0:
            self.unavailable -= 1
            return web.Response(status=503, text="warming up")
        if any((item["value"] or {}).get("bad") for item in items):
            return web.Response(status=422, text="bad order")
        with self.lock:
            self.received.extend((item["partition"], item["offset"]) for item in items)
            hold = self.hold_at is not None and len(self.received) >= self.hold_at
            if hold:
                self.hold_at = None
        if hold:
            self.holding.set()
            await self._released.wait()
        return web.Response(text="ok")

    def release(self) -> None:
        self._loop.call_soon_threadsafe(self._released.set)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        application = web.Application()
        application.router.add_post("/orders", self._handle)
        runner = web.AppRunner(application, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = int(runner.addresses[0][1])
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    def __enter__(self) -> Receiver:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def taken(self) -> list[tuple[int, int]]:
        with self.lock:
            return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(unavailable=5, hold_at=2000) as running:
        yield running


def test_http_sink_killed_mid_stream_delivers_every_record_committed_only_after_its_2xx(
    tmp_path: Path, receiver: Receiver
) -> None:
    (tmp_path / "shipper.py").write_text(SINK_APP.format(partitions=PARTITIONS))
    worker = WorkerProcess(
        str(tmp_path / "shipper.py"),
        None,
        str(tmp_path),
        env={"RECEIVER_URL": f"http://127.0.0.1:{receiver.port}/orders"},
    )
    total = 6000
    bad = {1234, 4321}
    values = [json.dumps({"n": i, **({"bad": True} if i in bad else {})}) for i in range(total)]
    try:
        worker.start()
        listener = worker.kafka_url
        produce(listener, "orders", values)
        wait_until(receiver.holding.is_set, 60, "a request held with 2,000 records taken")
        worker.kill()  # a request in flight: its records taken, their 2xx never seen
        receiver.release()
        before_kill = set(receiver.taken())
        log_url = f"file://{tmp_path / '.streamlog'}"
        at_kill = {
            tp.partition: offset
            for tp, offset in group_offsets(log_url, "shipper").items()
            if tp.topic == "orders"
        }
        assert sum(at_kill.values()) < total, "the kill came too late to test anything"
        receiver.unavailable = 12  # and away for a while: the runner retries the write
        worker.start()
        wait_until(lambda: len(set(receiver.taken())) >= total - len(bad), 60, "all delivered")
        assert "sink out: unavailable" in worker.logs()
        assert worker.stop() == 0, worker.logs()
    finally:
        worker.kill()

    records = read_topic(log_url, "orders")
    where = {json.loads(r.value)["n"]: (r.partition, r.offset) for r in records}
    assert len(where) == total
    copies = collections.Counter(receiver.taken())
    assert set(copies) == {where[n] for n in range(total) if n not in bad}  # nothing lost
    for (partition, offset), count in copies.items():
        if offset < at_kill.get(partition, 0):  # committed before the kill...
            assert (partition, offset) in before_kill  # ...only once the receiver had it
            assert count == 1
    dead = collections.Counter(
        json.loads(r.value)["n"] for r in read_topic(log_url, "shipper-out-dlq")
    )
    assert set(dead) == bad  # refused: dead-lettered, never dropped
    for n, count in dead.items():  # twice only when the kill came before its commit
        assert count == 1 or where[n][1] >= at_kill.get(where[n][0], 0)
    headers = [dict(r.headers) for r in read_topic(log_url, "shipper-out-dlq")]
    assert all(any(b"422" in (v or b"") for v in h.values()) for h in headers), headers


CONNECT_CONFIG = """
[app]
id = "relay"
topic_partitions = 2

[[source]]
name = "hooks-in"
type = "webhook"
topic = "orders"
port = {port}
path = "/in"
key_field = "id"
token_env = "RELAY_TOKEN"

[[sink]]
name = "out"
type = "http"
topic = "orders"
url = "{url}"
body = "records"
batch_size = 7
"""


@pytest.mark.skipif(
    importlib.util.find_spec("streamlog.cli.connect") is None,
    reason="needs streamlog connect (issue 18's connect command, merged with it)",
)
def test_streamlog_connect_runs_a_webhook_into_an_http_sink_from_a_config_file(
    tmp_path: Path,
) -> None:
    port = free_port()
    with Receiver(unavailable=0) as receiver:
        config = tmp_path / "relay.toml"
        config.write_text(
            CONNECT_CONFIG.format(port=port, url=f"http://127.0.0.1:{receiver.port}/orders")
        )
        worker = WorkerProcess(
            str(config),
            None,
            str(tmp_path),
            ("--web-port", "0"),
            env={"RELAY_TOKEN": "let-me-in"},
            command=(STREAMLOG, "connect", str(config)),
        )
        url = f"http://127.0.0.1:{port}/in"
        orders = [[{"id": f"o-{n}-{i}", "n": i} for i in range(n)] for n in (1, 5, 14)]

        async def send() -> list[int]:
            async with aiohttp.ClientSession() as http:
                statuses = []
                for batch in orders:
                    async with http.post(
                        url, json=batch, headers={"Authorization": "Bearer let-me-in"}
                    ) as response:
                        statuses.append(response.status)
                async with http.post(url, json={"id": "x"}) as response:  # no token
                    statuses.append(response.status)
                return statuses

        try:
            worker.start("webhook source 'hooks-in' listening")
            assert asyncio.run(asyncio.wait_for(send(), 30)) == [200, 200, 200, 401]
            wait_until(lambda: len(receiver.taken()) >= 20, 30, "20 records delivered")
            web = worker.wait_for_log(r"web endpoint on (\S+)").split()[-1]
            with urllib.request.urlopen(f"{web}/connect/", timeout=10) as response:
                status = json.load(response)
            assert worker.stop() == 0, worker.logs()
        finally:
            worker.kill()
    assert len(set(receiver.taken())) == 20
    source, sink = status["sources"]["hooks-in"], status["sinks"]["out"]
    assert (source["type"], source["records"], source["requests"], source["rejected"]) == (
        "webhook",
        20,
        3,
        1,
    ), status
    assert (sink["type"], sink["records"], sink["errors"]) == ("http", 20, 0), status
    records = read_topic(f"file://{tmp_path / '.streamlog'}", "orders")
    assert sorted(r.key for r in records) == sorted(o["id"].encode() for b in orders for o in b)
