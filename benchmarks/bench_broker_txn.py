"""Transactions through ``streamlog broker``: what a transaction per K records costs.

Run: ``.venv/bin/python benchmarks/bench_broker_txn.py [--messages 200000]
[--per-txn 1000,10000] [--repeat 3]``

A ``streamlog broker`` runs on loopback as a subprocess (fresh data directory, stopped
with SIGTERM at the end, even on errors). Every repeat, in fresh single-partition topics,
a confluent-kafka producer sends N unkeyed 100-byte values:

* ``idempotent``: ``enable.idempotence=true``, no transactions (the baseline);
* ``txn K``: ``transactional.id`` set, one transaction per K records (begin, K
  ``produce()``, ``commit_transaction()``), which adds per transaction an
  AddPartitionsToTxn, an EndTxn and the coordinator's writes: three fsynced
  ``__transaction_state`` records and a flushed commit marker.

Timed from the first ``produce()`` to the last commit (or ``flush()``). Figures are the
median over the repeats of records/s, with ``ratio`` the transactional run over the
baseline, and transactions/s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from machine import machine  # benchmarks/ is on sys.path when a script runs

__all__ = ["main"]

STREAMLOG = os.path.join(os.path.dirname(sys.executable), "streamlog")
VALUE = b"x" * 100


def start_broker(data_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    port_file = data_dir + ".port"
    proc = subprocess.Popen(
        [STREAMLOG, "broker", "--data-dir", data_dir, "--listen", "127.0.0.1:0"]
        + ["--port-file", port_file, "-l", "warning"]
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}")
        try:
            with open(port_file) as f:
                port = f.read().strip()
            if port:
                return proc, f"127.0.0.1:{port}"
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("broker did not start")


def new_topic(bootstrap: str) -> str:
    name = f"txn-bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the result
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(15)
    return name


def run(bootstrap: str, messages: int, per_txn: int | None) -> float:
    """Seconds to send ``messages`` records (``per_txn`` None: idempotent, no txn)."""
    topic = new_topic(bootstrap)
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        "enable.idempotence": True,
        "queue.buffering.max.messages": 1_000_000,
    }
    if per_txn is not None:
        config["transactional.id"] = f"bench-{uuid.uuid4().hex[:8]}"
    producer = Producer(config)
    if per_txn is not None:
        producer.init_transactions(30)
    start = time.perf_counter()
    if per_txn is None:
        for _ in range(messages):
            producer.produce(topic, VALUE, partition=0)
            producer.poll(0)
        if producer.flush(60) != 0:
            raise RuntimeError("records left unsent")
    else:
        for first in range(0, messages, per_txn):
            producer.begin_transaction()
            for _ in range(min(per_txn, messages - first)):
                producer.produce(topic, VALUE, partition=0)
                producer.poll(0)
            producer.commit_transaction(60)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--per-txn", default="1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.per_txn.split(",")]
    print(machine())
    work = tempfile.mkdtemp(prefix="bench-txn-")
    proc, bootstrap = start_broker(os.path.join(work, "data"))
    try:
        run(bootstrap, 20_000, None)  # warm-up
        rows: list[tuple[str, float, float | None]] = []
        base = statistics.median(
            args.messages / run(bootstrap, args.messages, None) for _ in range(args.repeat)
        )
        rows.append(("idempotent", base, None))
        for k in sizes:
            rate = statistics.median(
                args.messages / run(bootstrap, args.messages, k) for _ in range(args.repeat)
            )
            rows.append((f"txn {k}", rate, rate / k))
        print(f"{'run':<12} {'records/s':>12} {'ratio':>6} {'txn/s':>8}")
        for name, rate, txns in rows:
            txn_text = f"{txns:8.1f}" if txns is not None else f"{'':>8}"
            print(f"{name:<12} {rate:12,.0f} {rate / base:6.2f} {txn_text}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
