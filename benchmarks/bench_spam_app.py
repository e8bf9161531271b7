"""Spam app benchmark: pin events a second one ``streamlog worker`` of
``apps/spam_detection`` works through on ``file://`` and on ``kafka://`` (a
``streamlog broker`` process on loopback), and its precision and recall on the same data.

Run: ``.venv/bin/python benchmarks/bench_spam_app.py [--logs file,kafka] [--rate 100]
[--duration 300] [--seed 3] [--spammers 5]``

Each log gets the same generated data (seeded), all of it written before the worker
starts: a fresh ``file://`` directory, or a fresh ``streamlog broker`` (stopped with
SIGTERM at the end, even on errors). The time runs from the worker's "worker ready" to
the group having committed every input record and everything the app wrote to its own
topics (polled every 0.3 s, so short runs read high by up to that much). On ``file://``
the worker owns the directory, so that polling and the read-back of ``spam_flags`` go
through the worker's Kafka listener. MB/s counts the pin events' keys and JSON values as
the generator writes them (10^6 bytes).

The spam app has no request/answer pair to time, so there is no latency figure here; see
``bench_eta.py`` for the ETA app's matching latency.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from machine import machine  # benchmarks/ is on sys.path when a script runs

from apps.spam_detection.generate import _record  # noqa: E402
from apps.spam_detection.scenario import Scenario, build  # noqa: E402
from tests.apps.spam_detection.harness import flags, send, start_worker, wait_processed  # noqa: E402
from tests.broker.brokerproc import BrokerProcess  # noqa: E402


def run(kind: str, scenario: Scenario) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = None
        worker = None
        try:
            if kind == "kafka":
                broker = BrokerProcess(os.path.join(tmp, "broker")).start()
                url = f"kafka://{broker.bootstrap}"
            else:
                url = f"file://{tmp}/log"
            send(url, scenario.users, scenario.pins)
            worker = start_worker(url, os.path.join(tmp, "worker"))
            began = time.monotonic()
            client = worker.kafka_url if kind == "file" else url
            wait_processed(client, len(scenario.users), len(scenario.pins), timeout=600)
            elapsed = time.monotonic() - began
            flagged = {f["user_id"] for f in flags(client)}
            worker.stop()
        finally:
            if worker is not None:
                worker.kill()
            if broker is not None:
                broker.stop()
    truth = set(scenario.spammers)
    hits = len(flagged & truth)
    size = sum(len(p["user_id"]) + len(_record(p)) for p in scenario.pins)
    print(
        f"| {kind}:// | {len(scenario.pins):,} | {len(scenario.users):,} | {elapsed:.2f} | "
        f"{len(scenario.pins) / elapsed:,.0f} | {size / elapsed / 1e6:.2f} | {len(flagged)} | "
        f"{len(truth)} | {hits / max(len(flagged), 1):.3f} | {hits / len(truth):.3f} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logs", default="file,kafka", help="file, kafka or both")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--spammers", type=int, default=5)
    args = parser.parse_args()
    logs = [kind.strip() for kind in args.logs.split(",") if kind.strip()]
    if not logs or set(logs) - {"file", "kafka"}:
        raise SystemExit(f"--logs {args.logs!r}: file, kafka or both")
    print(machine())
    scenario = build(args.seed, args.rate, args.duration, 1_800_000_000.0, args.spammers)
    print(
        "| log | pin events | accounts | s | events/s | MB/s | flagged | spammers "
        "| precision | recall |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind in logs:
        run(kind, scenario)


if __name__ == "__main__":
    main()
