"""The invariants every run of the ETA app must keep, checked on the topics' contents."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from streamlog.transport.types import ConsumerRecord


def values(records: list[ConsumerRecord]) -> list[dict[str, Any]]:
    return [json.loads(r.value or b"null") for r in records]


def check_run(
    requests: list[dict[str, Any]],
    matches: list[dict[str, Any]],
    completions: list[dict[str, Any]],
    *,
    identical_copies: bool = False,
) -> dict[str, int]:
    """Fails (AssertionError naming the breach) unless the run kept every rule.

    ``identical_copies``: a run with a crash (at-least-once) may send an answer again;
    every copy must then be the same answer, and the rules are checked on one of each.
    """
    if identical_copies:
        first: dict[str, dict[str, Any]] = {}
        for m in matches:
            seen = first.setdefault(m["request_id"], m)
            assert seen == m, f"two different answers to {m['request_id']}: {seen} {m}"
        matches = list(first.values())
    asked = [r["request_id"] for r in requests]
    answered = [m["request_id"] for m in matches]
    assert len(answered) == len(set(answered)), "a request answered twice"
    assert sorted(answered) == sorted(asked), "requests and answers differ"
    done_at: dict[tuple[str, str], float] = {
        (c["driver_id"], c["request_id"]): c["ts"] for c in completions
    }
    by_driver: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in matches:
        surge = m["surge"]
        assert surge >= 1.0 and surge <= 3.0, m  # clamped
        assert round(surge, 1) == surge, m  # rounded to 0.1
        if m["driver_id"] is None:
            assert m["reason"], m
            continue
        by_driver[m["driver_id"]].append(m)
        km = m["distance_km"]
        assert 0 <= km <= 5.0, m
        # speeds are means of samples in [3, 150] km/h, or the 25 km/h default
        assert km / 150 * 3600 - 1 <= m["pickup_eta_s"] <= km / 3 * 3600 + 1, m
        assert m["trip_eta_s"] >= 0, m
    for driver_id, ms in by_driver.items():
        ms.sort(key=lambda m: m["claimed_ts"])
        for first, second in zip(ms, ms[1:], strict=False):
            freed = done_at.get((driver_id, first["request_id"]))
            assert freed is not None and freed <= second["claimed_ts"], (
                f"{driver_id} matched to {second['request_id']} while still on "
                f"{first['request_id']}"
            )
    matched = sum(1 for m in matches if m["driver_id"] is not None)
    return {"requests": len(asked), "matched": matched, "unmatched": len(asked) - matched}
