"""HTTP connectors' throughput: the webhook source into a bundled log, the HTTP sink out to
a receiver.

Run: ``.venv/bin/python benchmarks/bench_connect_http.py [--records 100000]``

* webhook: a sender process POSTs JSON objects of about 100 bytes (``--per-request``
  records a request, ``--concurrency`` requests in flight) to a ``WebhookSource`` whose
  records a loop produces to a ``file://`` log as the connect runner does (poll, produce,
  flush, ``acknowledged``), so every 200 the sender counts is a record durable in the log.
  Reported: records/s and MB/s of JSON bodies the sender got a 200 for.
* http sink: ``HttpSink.write`` with 1,000 records a call (``batch_size`` 500 a request)
  to a receiver process that parses every body; records/s and MB/s of JSON bodies sent.

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
    args = parser.parse_args()
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
