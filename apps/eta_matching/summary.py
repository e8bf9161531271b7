"""What a run of the ETA app decided, from its topics: ``python -m apps.eta_matching.summary``.

Requests, matched, unmatched (by reason), the median pickup ETA, and the latest surge by
area (the res-6 h3 area of each request's pickup), read from ``ride_requests`` and
``matches``. Prints text, or JSON with ``--json`` (the demo's test reads that).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from typing import Any

from apps.eta_matching import geo
from apps.eta_matching.generate import open_broker
from streamlog.transport.base import Transport
from streamlog.transport.types import TopicPartition


async def read_all(transport: Transport, topic: str) -> list[dict[str, Any]]:
    """Every value of ``topic`` up to its end offsets now."""
    admin = transport.admin()
    try:
        info = await admin.describe_topic(topic)
    finally:
        await admin.close()
    tps = [TopicPartition(topic, p.partition) for p in info.partitions]
    consumer = transport.consumer(group_id=None)
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[dict[str, Any]] = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(json.loads(r.value or b"null") for r in records)
        return out
    finally:
        await consumer.close()


def summarise(requests: list[dict[str, Any]], matches: list[dict[str, Any]]) -> dict[str, Any]:
    pickup_area = {r["request_id"]: geo.area_of(r["pickup_lat"], r["pickup_lon"]) for r in requests}
    # one answer per request: after a crash an answer can be in the topic twice (identical)
    matches = list({m["request_id"]: m for m in reversed(matches)}.values())
    matched = [m for m in matches if m.get("driver_id") is not None]
    unmatched = [m for m in matches if m.get("driver_id") is None]
    etas = [m["pickup_eta_s"] for m in matched]
    surge: dict[str, float] = {}
    for m in sorted(matches, key=lambda m: m["ts"]):
        area = pickup_area.get(m["request_id"])
        if area is not None:
            surge[area] = m["surge"]
    return {
        "requests": len(requests),
        "answered": len(matches),
        "matched": len(matched),
        "unmatched": len(unmatched),
        "unmatched_reasons": dict(Counter(m.get("reason", "?") for m in unmatched)),
        "median_pickup_eta_s": round(statistics.median(etas), 1) if etas else None,
        "surge_by_area": dict(sorted(surge.items())),
    }


def as_text(s: dict[str, Any]) -> str:
    lines = [
        f"requests: {s['requests']}  answered: {s['answered']}",
        f"matched: {s['matched']}  unmatched: {s['unmatched']} {s['unmatched_reasons'] or ''}",
        f"median pickup ETA: {s['median_pickup_eta_s']} s",
        "surge by area (h3 res 6, latest):",
    ]
    lines += [f"  {area}  {value:.1f}" for area, value in s["surge_by_area"].items()]
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m apps.eta_matching.summary")
    parser.add_argument("--broker", default="file://./.streamlog")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS for every request to be answered (workers may lag)",
    )
    args = parser.parse_args(argv)
    transport = await open_broker(args.broker)
    deadline = time.monotonic() + args.wait
    try:
        while True:
            requests = await read_all(transport, "ride_requests")
            matches = await read_all(transport, "matches")
            summary = summarise(requests, matches)
            if summary["answered"] >= summary["requests"] or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.5)
    finally:
        await transport.close()
    print(json.dumps(summary) if args.json else as_text(summary))
    return summary


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
