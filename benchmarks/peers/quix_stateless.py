"""Quix Streams, stateless pipeline: JSON decode -> filter amount >= 50 -> map -> JSON out.

Run by ``benchmarks/bench_streams.py`` with ``.venv-peers/bin/python``.
"""

from __future__ import annotations

from peer_args import QUIX_GUARANTEES, parse_args
from quixstreams import Application


def main() -> None:
    args = parse_args(__doc__ or "")
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        processing_guarantee=QUIX_GUARANTEES[args.guarantee],
        state_dir=args.state_dir,
        loglevel="WARNING",
        # librdkafka pauses 1 s whenever its local queue fills unless this is lowered.
        consumer_extra_config={"fetch.queue.backoff.ms": 10},
    )
    source = app.topic(args.input, value_deserializer="json")
    sink = app.topic(args.output, value_serializer="json")
    sdf = app.dataframe(source)
    sdf = sdf.filter(lambda v: v["amount"] >= 50)
    sdf = sdf.apply(lambda v: {"id": v["id"], "user": v["user"], "amount_cents": v["amount"] * 100})
    sdf.to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
