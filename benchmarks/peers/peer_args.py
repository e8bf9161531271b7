"""The command line every peer pipeline program takes from ``bench_streams.py``.

The harness starts each program with the broker, the topics, the consumer group and a
state directory of its own, so one run never sees another's offsets or state. The same
values are in the environment (``BENCH_*``) for programs that cannot take options.
"""

from __future__ import annotations

import argparse

__all__ = ["GUARANTEES", "QUIX_GUARANTEES", "WINDOW_MS", "parse_args"]

WINDOW_MS = 10_000  # the windowed pipeline's tumbling window
GUARANTEES = ("at_least_once", "exactly_once")  # the harness's names (--guarantee)
# Quix Streams' spelling of the same (``Application(processing_guarantee=...)``).
QUIX_GUARANTEES = {"at_least_once": "at-least-once", "exactly_once": "exactly-once"}


def parse_args(description: str) -> argparse.Namespace:
    """Options shared by every peer program (all required but the commit interval and the
    guarantee, whose defaults are the harness's)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True, help="HOST:PORT of the broker")
    parser.add_argument("--input", required=True, help="input topic (JSON values)")
    parser.add_argument("--output", required=True, help="output topic (JSON values)")
    parser.add_argument("--group", required=True, help="consumer group / application id")
    parser.add_argument("--partitions", type=int, required=True, help="input partitions")
    parser.add_argument("--state-dir", required=True, help="directory for local state")
    parser.add_argument(
        "--commit-interval", type=float, default=1.0, help="seconds between offset commits"
    )
    parser.add_argument(
        "--guarantee",
        choices=GUARANTEES,
        default="at_least_once",
        help="processing guarantee, in the harness's spelling (each program maps it to its"
        " framework's own)",
    )
    return parser.parse_args()
