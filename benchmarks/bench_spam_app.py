"""Spam app benchmark: pin events a second one ``streamlog worker`` of
``apps/spam_detection`` works through on a ``streamlog broker``, and its precision and
recall on the same data.

Run: ``.venv/bin/python benchmarks/bench_spam_app.py [--rate 100] [--duration 300] [--seed 3]``

The generator's records are all in the broker before the worker starts; the time runs
from the worker's "worker ready" to the group having committed every input record and
everything the app wrote to its own topics (polled every 0.3 s, so short runs read high
by up to that much).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from machine import machine  # benchmarks/ is on sys.path when a script runs

from apps.spam_detection.scenario import build  # noqa: E402
from tests.apps.spam_detection.harness import flags, send, start_worker, wait_processed  # noqa: E402
from tests.broker.brokerproc import BrokerProcess  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--spammers", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    scenario = build(args.seed, args.rate, args.duration, 1_800_000_000.0, args.spammers)
    with tempfile.TemporaryDirectory() as tmp:
        broker = BrokerProcess(os.path.join(tmp, "broker")).start()
        worker = None
        try:
            url = f"kafka://{broker.bootstrap}"
            send(url, scenario.users, scenario.pins)
            worker = start_worker(url, os.path.join(tmp, "worker"))
            began = time.monotonic()
            wait_processed(url, len(scenario.users), len(scenario.pins), timeout=600)
            elapsed = time.monotonic() - began
            flagged = {f["user_id"] for f in flags(url)}
            truth = set(scenario.spammers)
            hits = len(flagged & truth)
            print(
                f"{len(scenario.pins)} pin events, {len(scenario.users)} accounts in "
                f"{elapsed:.2f} s: {len(scenario.pins) / elapsed:,.0f} events/s; "
                f"flagged {len(flagged)}, spammers {len(truth)}, "
                f"precision {hits / max(len(flagged), 1):.3f}, recall {hits / len(truth):.3f}"
            )
            worker.stop()
        finally:
            if worker is not None:
                worker.kill()
            broker.stop()


if __name__ == "__main__":
    main()
