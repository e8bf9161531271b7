"""HTTP connectors' throughput: the webhook source into a bundled log, the HTTP sink out to
a receiver.

Run: ``.venv/bin/python benchmarks/bench_connect_http.py [--records 100000] [--worker]``

* webhook: a sender process POSTs JSON objects of about 100 bytes (``--per-request``
  records a request, ``--concurrency`` requests in flight) to a ``WebhookSource`` whose
  records a loop produces to a ``file://`` log as the connect runner does (poll, produce,
  flush, ``acknowledged``), so every 200 the sender counts is a record durable in the log.
  Reported: records/s and MB/s of JSON bodies the sender got a 200 for.
* http sink: ``HttpSink.write`` with 1,000 records a call (``batch_size`` 500 a request)
  to a receiver process that parses every body; records/s and MB/s of JSON bodies sent.

``--worker`` measures the same through a ``streamlog worker`` process running an app with
``app.source(WebhookSource(...))`` / ``app.sink(topic, HttpSink(...))`` (the connect
runner: checkpoints, the commit's flush), the sender and the receiver in this process:
records/s from the first record to the last.

Each line also gives the CPU time the connector's own process spent per record: with one
record a request the Python sender (aiohttp's client, in the other process) is the limit,
and the CPU figure says what the webhook itself costs.

Both sides run on the same 2-core machine, so a sender or receiver process takes a core
the connector could otherwise use: the figures are the connector's rate under that load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from machine import machine  # benchmarks/ is on sys.path when a script runs

from streamlog.connect.base import SinkRecord
from streamlog.connect.http import HttpSink, WebhookSource
from streamlog.transport import open_transport

__all__ = ["main"]

TOPIC = "hooks"


def value(i: int) -> dict[str, object]:
    return {"id": i, "sku": f"sku-{i % 977:05d}", "qty": i % 7 + 1, "note": "x" * 40}


# ---------------------------------------------------------------- helper processes


async def send(url: str, records: int, per_request: int, concurrency: int) -> None:
    """The sender: POST ``records`` in requests of ``per_request``; prints bytes sent."""
    import aiohttp

    bodies = [
        json.dumps([value(i) for i in range(start, min(start + per_request, records))]).encode()
        for start in range(0, records, per_request)
    ]
    sent = 0
    queue = list(reversed(bodies))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def worker() -> None:
            nonlocal sent
            while queue:
                body = queue.pop()
                while True:
                    async with http.post(
                        url, data=body, headers={"Content-Type": "application/json"}
                    ) as response:
                        await response.read()
                        if response.status == 200:
                            sent += len(body)
                            break
                        if response.status != 503:
                            raise SystemExit(f"sender: answered {response.status}")
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    print(sent, flush=True)


async def receive() -> None:
    """The receiver: parse every body, answer 200; prints its port, then on stdin's end
    the records it counted."""
    from aiohttp import web

    count = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal count
        count += len(json.loads(await request.read()))
        return web.Response(text="ok")

    application = web.Application(client_max_size=256 << 20)
    application.router.add_post("/in", handle)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print(count, flush=True)
    await runner.cleanup()


# ---------------------------------------------------------------- the measurements


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def bench_webhook(
    records: int, per_request: int, concurrency: int
) -> tuple[float, float, float]:
    with TemporaryDirectory() as tmp:
        transport = open_transport(f"file://{Path(tmp) / 'log'}")
        await transport.start()
        await transport.admin().create_topic(TOPIC, 1)
        producer = transport.producer()
        source = WebhookSource(0, max_pending_records=max(100_000, per_request * concurrency))
        await source.start(None)
        done = 0

        async def pump() -> None:
            nonlocal done
            while True:
                batch = await source.poll()
                if not batch:
                    continue
                await producer.send_many(TOPIC, [json.dumps(r.value).encode() for r in batch])
                await producer.flush()
                await source.acknowledged(batch[-1].position)
                done += len(batch)

        task = asyncio.create_task(pump())
        start = time.perf_counter()
        cpu = cpu_seconds()
        sender = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "_send",
            str(source.url),
            str(records),
            str(per_request),
            str(concurrency),
            stdout=subprocess.PIPE,
        )
        out, _ = await sender.communicate()
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds() - cpu
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await source.close()
        await producer.close()
        await transport.close()
    if sender.returncode != 0 or done != records:
        raise SystemExit(f"webhook: sender exited {sender.returncode}, {done}/{records} records")
    return records / elapsed, int(out) / elapsed / 1e6, cpu / records * 1e6


async def bench_sink(records: int, per_write: int, batch_size: int) -> tuple[float, float, float]:
    receiver = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "_receive", stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert receiver.stdout is not None and receiver.stdin is not None
    port = int(await receiver.stdout.readline())
    sink = HttpSink(f"http://127.0.0.1:{port}/in", batch_size=batch_size)
    await sink.start()
    batches = [
        [
            SinkRecord(TOPIC, 0, i, 1_700_000_000_000 + i, None, value(i))
            for i in range(start, min(start + per_write, records))
        ]
        for start in range(0, records, per_write)
    ]
    sent = sum(len(json.dumps(r.value)) + 1 for batch in batches for r in batch)
    start = time.perf_counter()
    cpu = cpu_seconds()
    for batch in batches:
        await sink.write(batch)
    await sink.flush()
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds() - cpu
    await sink.close()
    receiver.stdin.close()
    counted = int(await receiver.stdout.readline())
    await receiver.wait()
    if counted != records:
        raise SystemExit(f"http sink: the receiver counted {counted}/{records} records")
    return records / elapsed, sent / elapsed / 1e6, cpu / records * 1e6


WEBHOOK_APP = """
from streamlog import App
from streamlog.connect.http import WebhookSource

app = App("bench-hooks", topic_partitions=4)
app.source(WebhookSource({port}, name="in"), topic=app.topic("orders", value_serializer="json"))
"""

SINK_APP = """
from streamlog import App
from streamlog.connect.http import HttpSink

app = App("bench-ship", topic_partitions=4)
app.sink(app.topic("orders", value_serializer="json"), HttpSink("{url}", name="out"))
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_worker(workdir: Path, app: str, ready: str) -> asyncio.subprocess.Process:
    (workdir / "app.py").write_text(app)
    log = open(workdir / "worker.log", "wb")  # noqa: SIM115 - the worker's own log
    worker = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "streamlog"),
        "worker",
        "app.py",
        "--listen",
        "none",
        "--lag-interval",
        "0",
        cwd=workdir,
        stdout=log,
        stderr=log,
    )
    while ready not in (workdir / "worker.log").read_text():
        if worker.returncode is not None:
            raise SystemExit((workdir / "worker.log").read_text())
        await asyncio.sleep(0.05)
    return worker


async def stop_worker(worker: asyncio.subprocess.Process) -> None:
    worker.terminate()
    await asyncio.wait_for(worker.wait(), 60)


async def bench_webhook_worker(records: int, per_request: int, concurrency: int) -> float:
    port = free_port()
    with TemporaryDirectory() as tmp:
        worker = await start_worker(
            Path(tmp), WEBHOOK_APP.format(port=port), "webhook source 'in' listening"
        )
        try:
            sender = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "_send",
                f"http://127.0.0.1:{port}/",
                str(records),
                str(per_request),
                str(concurrency),
                stdout=subprocess.PIPE,
            )
            start = time.perf_counter()
            await sender.communicate()
            elapsed = time.perf_counter() - start
        finally:
            await stop_worker(worker)
    if sender.returncode != 0:
        raise SystemExit(f"webhook: sender exited {sender.returncode}")
    return records / elapsed


async def bench_sink_worker(records: int) -> float:
    from aiohttp import web

    count = 0
    first = last = 0.0
    done = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        nonlocal count, first, last
        count += len(json.loads(await request.read()))
        last = time.perf_counter()
        first = first or last
        if count >= records:
            done.set()
        return web.Response(text="ok")

    application = web.Application(client_max_size=256 << 20)
    application.router.add_post("/in", handle)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/in"
    with TemporaryDirectory() as tmp:
        transport = open_transport(f"file://{Path(tmp) / '.streamlog'}")
        await transport.start()
        await transport.admin().create_topic("orders", 4)
        producer = transport.producer()
        for start in range(0, records, 1000):
            batch = [
                json.dumps(value(i)).encode() for i in range(start, min(start + 1000, records))
            ]
            await producer.send_many("orders", batch)
        await producer.flush()
        await producer.close()
        await transport.close()
        worker = await start_worker(Path(tmp), SINK_APP.format(url=url), "worker ready")
        try:
            await asyncio.wait_for(done.wait(), 600)
        finally:
            await stop_worker(worker)
            await runner.cleanup()
    return (count - 1) / (last - first)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_send":
        url, n, per, conc = sys.argv[2], *map(int, sys.argv[3:6])
        asyncio.run(send(url, n, per, conc))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_receive":
        asyncio.run(receive())
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--worker", action="store_true", help="through a streamlog worker")
    args = parser.parse_args()
    if args.worker:
        print(f"machine: {machine()}")
        print(f"{args.records:,} records of ~100 bytes of JSON each, through a streamlog worker")
        for per_request in (1, 100):
            n = min(args.records, 20_000) if per_request == 1 else args.records
            rate = asyncio.run(bench_webhook_worker(n, per_request, args.concurrency))
            print(
                f"webhook source, {per_request:>3} record(s)/request, {args.concurrency} in"
                f" flight: {rate:>9,.0f} records/s ({n:,} records)"
            )
        rate = asyncio.run(bench_sink_worker(args.records))
        print(f"http sink, 500 records/request:{'':21} {rate:>9,.0f} records/s")
        return
    print(f"machine: {machine()}")
    print(f"{args.records:,} records of ~100 bytes of JSON each")
    for per_request in (1, 100):
        n = min(args.records, 20_000) if per_request == 1 else args.records
        rate, mb, us = asyncio.run(bench_webhook(n, per_request, args.concurrency))
        print(
            f"webhook source, {per_request:>3} record(s)/request, {args.concurrency} in flight:"
            f" {rate:>9,.0f} records/s {mb:6.1f} MB/s, {us:5.1f} us CPU/record in the"
            f" connector's process ({n:,} records)"
        )
    rate, mb, us = asyncio.run(bench_sink(args.records, 1_000, 500))
    print(
        f"http sink, 500 records/request:{'':21} {rate:>9,.0f} records/s {mb:6.1f} MB/s,"
        f" {us:5.1f} us CPU/record in the connector's process"
    )


if __name__ == "__main__":
    main()
