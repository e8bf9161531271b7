"""``python -m apps.spam_detection.generate --rate R --duration S --seed N --broker URL``

Sends the accounts to ``users`` and the events to ``pin_events`` (both keyed by user id,
record timestamp = event time), paced in real time unless ``--no-pace``, and writes the
ground truth (which users are spammers, of which kind) to ``--truth`` as JSON. The same
seed, rate, duration and start give the same records.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from streamlog import connect

from .scenario import build

TOPICS = ("users", "pin_events")


def _record(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def _ensure_topics(transport: Any, partitions: int) -> None:
    """Creates the input topics the worker has not created yet (with its partition count)."""
    admin = transport.admin()
    try:
        existing = set(await admin.list_topics())
        for name in TOPICS:
            if name not in existing:
                await admin.create_topic(name, partitions=partitions)
    finally:
        await admin.close()


async def send(
    url: str,
    users: Sequence[dict[str, Any]],
    pins: Sequence[dict[str, Any]],
    *,
    partitions: int = 4,
    pace: bool = False,
    wait_for_worker: float = 0.0,
) -> None:
    """Every account, then every event in event-time order (paced: as their ``ts`` falls
    due relative to the first); waits for every acknowledgement."""
    # as the streamlog tools do: a file:// log a worker owns is reached through its listener
    transport = await connect(url, wait_for_worker=wait_for_worker)
    try:
        await _ensure_topics(transport, partitions)
        producer = transport.producer(client_id="spam-generator")
        try:
            pending = []
            for user in users:
                pending.append(
                    await producer.send(
                        "users", _record(user), key=user["user_id"].encode(),
                        timestamp_ms=round(user["created_ts"] * 1000),
                    )
                )  # fmt: skip
            first = pins[0]["ts"] if pins else 0.0
            began = time.monotonic()
            for event in pins:
                if pace:
                    delay = (event["ts"] - first) - (time.monotonic() - began)
                    if delay > 0:
                        await producer.flush()
                        await asyncio.sleep(delay)
                pending.append(
                    await producer.send(
                        "pin_events", _record(event), key=event["user_id"].encode(),
                        timestamp_ms=round(event["ts"] * 1000),
                    )
                )  # fmt: skip
            await producer.flush()
            for result in pending:
                await result
        finally:
            await producer.close()
    finally:
        await transport.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.spam_detection.generate")
    parser.add_argument("--rate", type=float, default=50.0, help="normal events per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of event time")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--broker", default="file://./.streamlog", help="file://DIR or kafka://HOST:PORT"
    )
    parser.add_argument("--truth", default="spam-truth.json", help="where the ground truth goes")
    parser.add_argument(
        "--start", type=float, default=None, help="event time of the first event (default: now)"
    )
    parser.add_argument("--spammers", type=int, default=3, help="spammers of each kind")
    parser.add_argument("--partitions", type=int, default=4, help="for topics not yet created")
    parser.add_argument("--no-pace", action="store_true", help="send as fast as possible")
    parser.add_argument(
        "--wait-for-worker",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="file://: wait this long for a worker to serve the log before opening it "
        "(one started a moment before in the background); 0: do not wait",
    )
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0:
        parser.error("--rate and --duration must be positive")
    start = time.time() if args.start is None else args.start
    scenario = build(args.seed, args.rate, args.duration, start, args.spammers)
    with open(args.truth, "w", encoding="utf-8") as out:
        json.dump({**scenario.truth(), "seed": args.seed, "start": start}, out, indent=1)
    asyncio.run(
        send(
            args.broker,
            scenario.users,
            scenario.pins,
            partitions=args.partitions,
            pace=not args.no_pace,
            wait_for_worker=args.wait_for_worker,
        )
    )
    print(
        f"sent {len(scenario.users)} users and {len(scenario.pins)} pin events; "
        f"{len(scenario.spammers)} spammers in {args.truth}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
