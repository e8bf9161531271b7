"""The generator's scenario: reproducible from the seed, every kind of spammer present, and
the records in the shape the issue gives."""

from __future__ import annotations

from collections import Counter

from apps.spam_detection.scenario import KINDS, build

T0 = 1_800_000_000.0


def test_same_seed_same_records_other_seed_other_records():
    first, again, other = build(4, 30, 60, T0), build(4, 30, 60, T0), build(5, 30, 60, T0)
    assert first.users == again.users and first.pins == again.pins
    assert first.spammers == again.spammers
    assert first.pins != other.pins


def test_every_kind_of_spammer_and_the_shapes():
    scenario = build(4, 30, 60, T0, spammers_per_kind=2)
    kinds = Counter(scenario.spammers.values())
    assert kinds == {"burst": 2, "duplicate_text": 2, "reports": 2, "domain_ring": 12}
    assert set(kinds) == set(KINDS)
    users = {u["user_id"] for u in scenario.users}
    assert len(users) == len(scenario.users)
    assert set(scenario.spammers) <= users
    for u in scenario.users:
        assert set(u) == {"user_id", "created_ts", "verified"}
    times = [p["ts"] for p in scenario.pins]
    assert times == sorted(times)
    for p in scenario.pins:
        extra = {"target_user_id"} if p["action"] == "report" else set()
        assert set(p) == {"user_id", "pin_id", "action", "domain", "text", "ts"} | extra
        assert p["action"] in ("create", "save", "click", "report")
        assert p["user_id"] in users
    assert len({p["pin_id"] for p in scenario.pins}) == len(scenario.pins)
    assert scenario.truth()["spammers"] == dict(sorted(scenario.spammers.items()))


def test_every_event_falls_within_the_duration():
    # so that a paced run of --duration S takes about S seconds
    for duration in (4, 60, 3600):
        scenario = build(6, 20, duration, T0)
        assert T0 <= min(p["ts"] for p in scenario.pins)
        assert max(p["ts"] for p in scenario.pins) <= T0 + duration + 1
