"""faust-streaming, stateless pipeline: JSON decode -> filter amount >= 50 -> map -> JSON out.

An agent over the input topic sends each kept, mapped value to the output topic. Run by
``benchmarks/bench_streams.py`` with ``.venv-peers/bin/python``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import faust
from peer_args import parse_args


def main() -> None:
    args = parse_args(__doc__ or "")
    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        datadir=args.state_dir,
        topic_partitions=args.partitions,
        topic_replication_factor=1,
        broker_commit_interval=args.commit_interval,
        processing_guarantee=args.guarantee,  # faust spells both as the harness does
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )
    source = app.topic(args.input, key_serializer="raw", value_serializer="json")
    sink = app.topic(args.output, key_serializer="raw", value_serializer="json")

    @app.agent(source)
    async def process(stream: AsyncIterator[dict[str, Any]]) -> None:
        async for v in stream:
            if v["amount"] >= 50:
                user = v["user"]
                out = {"id": v["id"], "user": user, "amount_cents": v["amount"] * 100}
                await sink.send(key=user.encode(), value=out)

    # faust takes its worker options from argv; ours are parsed already.
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


if __name__ == "__main__":
    main()
