"""Record serialisation cost: streamlog's Faust-rule and strict Records, and faust-streaming.

Run: ``.venv/bin/python benchmarks/bench_serde.py`` (faust-streaming's row needs
``.venv-faust``, which ``scripts/setup.sh`` builds; without it the row says so).

One Record of five fields (``id: str, user: str, amount: float, count: int, ok: bool``),
JSON, as a topic's value. Each case runs for about half a second, five rounds, and the best
round is reported (the least disturbed by other work on the machine) as records/s and
MB/s of JSON, and microseconds per record:

- ``encode``: ``Record.dumps()`` with Faust's ``__faust`` tag (the default), and without
  (``include_metadata=False``);
- ``decode typed``: the bytes into the declared Record, by Faust's rules (the default: no
  type enforcement) and by msgspec's validating decoder (``strict=True``);
- ``decode untyped``: the tagged bytes read without a declared type, the Record found by
  its tag (Faust's ``_maybe_reconstruct``);
- faust-streaming 0.15.3 doing the same with its own Record, in its own process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

from machine import machine  # benchmarks/ is on sys.path when a script runs

from streamlog.serde import Record, Schema

__all__ = ["main"]

ROUNDS = 5
ROUND_SECONDS = 0.5
HERE = os.path.dirname(os.path.abspath(__file__))
FAUST_PYTHON = os.path.join(HERE, "..", ".venv-faust", "bin", "python")


class Payment(Record, namespace="bench.Payment"):
    id: str
    user: str
    amount: float
    count: int
    ok: bool


class StrictPayment(Record, namespace="bench.StrictPayment", strict=True):
    id: str
    user: str
    amount: float
    count: int
    ok: bool


class BarePayment(Record, namespace="bench.BarePayment", include_metadata=False):
    id: str
    user: str
    amount: float
    count: int
    ok: bool


def best_seconds_per_call(fun: Callable[[], object]) -> float:
    """Seconds per call of ``fun``, the best of ``ROUNDS`` rounds."""
    calls = 1
    while True:  # calls per round: about ROUND_SECONDS
        start = time.perf_counter()
        for _ in range(calls):
            fun()
        elapsed = time.perf_counter() - start
        if elapsed >= ROUND_SECONDS / 10:
            calls = max(1, int(calls * ROUND_SECONDS / elapsed))
            break
        calls *= 4
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(calls):
            fun()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def report(row: str, case: str, seconds: float, size: int) -> None:
    rate = 1 / seconds
    print(
        f"  {row:<22} {case:<15} {rate:>12,.0f} rec/s {rate * size / 1e6:>8.1f} MB/s"
        f" {seconds * 1e6:>7.2f} us/rec"
    )


FAUST_SIDE = textwrap.dedent(
    """
    import sys, time
    import faust

    class Payment(faust.Record, namespace="bench.Payment"):
        id: str
        user: str
        amount: float
        count: int
        ok: bool

    ROUNDS, ROUND_SECONDS = int(sys.argv[1]), float(sys.argv[2])

    def best(fun):
        calls = 1
        while True:
            start = time.perf_counter()
            for _ in range(calls):
                fun()
            elapsed = time.perf_counter() - start
            if elapsed >= ROUND_SECONDS / 10:
                calls = max(1, int(calls * ROUND_SECONDS / elapsed))
                break
            calls *= 4
        result = float("inf")
        for _ in range(ROUNDS):
            start = time.perf_counter()
            for _ in range(calls):
                fun()
            result = min(result, (time.perf_counter() - start) / calls)
        return result

    value = Payment(id="p-000123", user="user-42", amount=12.5, count=3, ok=True)
    data = value.dumps(serializer="json")
    registry = faust.serializers.Registry()
    print("encode", best(lambda: value.dumps(serializer="json")), len(data))
    print("decode typed", best(lambda: registry.loads_value(Payment, data)), len(data))
    print("decode untyped", best(lambda: registry.loads_value(None, data)), len(data))
    """
)


def faust_rows() -> None:
    if not os.path.exists(FAUST_PYTHON):
        print("  faust-streaming        n/a (no .venv-faust: bash scripts/setup.sh builds it)")
        return
    result = subprocess.run(
        [FAUST_PYTHON, "-c", FAUST_SIDE, str(ROUNDS), str(ROUND_SECONDS)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        print(f"  faust-streaming        failed: {result.stderr.strip().splitlines()[-1:]}")
        return
    for line in result.stdout.splitlines():
        *case, seconds, size = line.split()
        report("faust-streaming 0.15.3", " ".join(case), float(seconds), int(size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    fields = {"id": "p-000123", "user": "user-42", "amount": 12.5, "count": 3, "ok": True}
    tagged, strict, bare = Payment(**fields), StrictPayment(**fields), BarePayment(**fields)
    data, strict_data = tagged.dumps(), strict.dumps()
    typed = Schema(value_type=Payment)
    strict_typed = Schema(value_type=StrictPayment)
    untyped = Schema()
    if typed.loads_value(data) != tagged or untyped.loads_value(data) != tagged:
        raise SystemExit("a Record did not read back equal: not measuring")

    print(f"machine: {machine()}")
    print(
        f"a Record of 5 fields, JSON ({len(data)} bytes with its tag); best of {ROUNDS} rounds"
        f" of {ROUND_SECONDS} s"
    )
    report("streamlog", "encode", best_seconds_per_call(tagged.dumps), len(data))
    report("streamlog untagged", "encode", best_seconds_per_call(bare.dumps), len(bare.dumps()))
    report(
        "streamlog Faust rules",
        "decode typed",
        best_seconds_per_call(lambda: typed.loads_value(data)),
        len(data),
    )
    report(
        "streamlog strict=True",
        "decode typed",
        best_seconds_per_call(lambda: strict_typed.loads_value(strict_data)),
        len(strict_data),
    )
    report(
        "streamlog",
        "decode untyped",
        best_seconds_per_call(lambda: untyped.loads_value(data)),
        len(data),
    )
    faust_rows()


if __name__ == "__main__":
    sys.exit(main())
