"""Quix Streams, windowed pipeline: 10 s tumbling count per key (RocksDB state).

Every update emits ``{"user", "start", "count"}`` (the window's count so far) to the
output topic. Event time is the Kafka message timestamp, which the harness sets to the
value's ``ts``; the window key is the message key (the user). Run by
``benchmarks/bench_streams.py`` with ``.venv-peers/bin/python``.
"""

from __future__ import annotations

from typing import Any

from peer_args import QUIX_GUARANTEES, WINDOW_MS, parse_args
from quixstreams import Application


def to_output(result: dict[str, Any], key: bytes, timestamp: int, headers: Any) -> dict[str, Any]:
    return {"user": key.decode(), "start": result["start"], "count": result["value"]}


def main() -> None:
    args = parse_args(__doc__ or "")
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        processing_guarantee=QUIX_GUARANTEES[args.guarantee],
        state_dir=args.state_dir,  # RocksDB, Quix's default store
        loglevel="WARNING",
        consumer_extra_config={"fetch.queue.backoff.ms": 10},
    )
    source = app.topic(args.input, value_deserializer="json")
    sink = app.topic(args.output, value_serializer="json")
    sdf = app.dataframe(source)
    sdf = sdf.tumbling_window(duration_ms=WINDOW_MS).count().current()
    sdf = sdf.apply(to_output, metadata=True)
    sdf.to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
