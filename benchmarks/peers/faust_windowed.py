"""faust-streaming, windowed pipeline: 10 s tumbling count per user in a RocksDB table.

Every update emits ``{"user", "start", "count"}`` (the window's count so far) to the
output topic. Windows follow the event time (``relative_to_stream``: the Kafka message
timestamp, which the harness sets to the value's ``ts``). The table uses faust's
``rocksdb://`` store, backed by rocksdict. Run by ``benchmarks/bench_streams.py`` with
``.venv-peers/bin/python``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import faust
from peer_args import WINDOW_MS, parse_args


def main() -> None:
    args = parse_args(__doc__ or "")
    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        store="rocksdb://",
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
    window = timedelta(milliseconds=WINDOW_MS)
    counts = (
        app.Table("counts", default=int, partitions=args.partitions)
        .tumbling(window, expires=window)
        .relative_to_stream()
    )

    @app.agent(source)
    async def process(stream: AsyncIterator[dict[str, Any]]) -> None:
        async for v in stream:
            user = v["user"]
            counts[user] += 1
            ts = v["ts"]
            out = {"user": user, "start": ts - ts % WINDOW_MS, "count": counts[user].current()}
            await sink.send(key=user.encode(), value=out)

    # faust takes its worker options from argv; ours are parsed already.
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


if __name__ == "__main__":
    main()
