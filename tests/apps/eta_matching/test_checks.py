"""The run checks catch what they exist for (else a passing run would prove nothing)."""

from __future__ import annotations

import pytest

from tests.apps.eta_matching.checks import check_run


def m(rid, driver, ts, km=1.0):
    eta = None if driver is None else km / 25 * 3600
    out = {"request_id": rid, "driver_id": driver, "distance_km": km, "pickup_eta_s": eta}
    out.update(trip_eta_s=100.0, surge=1.0, ts=ts, claimed_ts=ts)
    if driver is None:
        out["reason"] = "no_driver_within_radius"
    return out


REQS = [{"request_id": r} for r in ("a", "b")]


def test_a_kept_run_passes_and_is_counted():
    done = [{"driver_id": "d", "request_id": "a", "ts": 5.0}]
    assert check_run(REQS, [m("a", "d", 1.0), m("b", "d", 6.0)], done) == {
        "requests": 2,
        "matched": 2,
        "unmatched": 0,
    }


def test_a_driver_booked_twice_before_completing_fails():
    done = [{"driver_id": "d", "request_id": "a", "ts": 7.0}]
    with pytest.raises(AssertionError, match="still on a"):
        check_run(REQS, [m("a", "d", 1.0), m("b", "d", 6.0)], done)


def test_a_request_answered_twice_or_never_fails():
    with pytest.raises(AssertionError, match="twice"):
        check_run(REQS, [m("a", None, 1.0), m("a", None, 2.0)], [])
    with pytest.raises(AssertionError, match="differ"):
        check_run(REQS, [m("a", None, 1.0)], [])


def test_an_eta_slower_than_walking_pace_fails():
    bad = m("a", "d", 1.0, km=1.0)
    bad["pickup_eta_s"] = 2000.0  # 1 km in 2000 s: 1.8 km/h
    with pytest.raises(AssertionError):
        check_run(REQS[:1], [bad], [])


def test_copies_of_an_answer_pass_only_when_identical():
    done = [{"driver_id": "d", "request_id": "a", "ts": 5.0}]
    copies = [m("a", "d", 1.0), m("a", "d", 1.0), m("b", "d", 6.0)]
    assert check_run(REQS, copies, done, identical_copies=True)["matched"] == 2
    with pytest.raises(AssertionError, match="twice"):
        check_run(REQS, copies, done)
    with pytest.raises(AssertionError, match="two different answers to a"):
        check_run(
            REQS,
            [m("a", "d", 1.0), m("a", None, 1.0), m("b", "d", 6.0)],
            done,
            identical_copies=True,
        )
