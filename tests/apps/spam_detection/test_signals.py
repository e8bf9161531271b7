"""Each signal on hand-built events: flagged at its threshold, not one event under it,
and flagged once per episode however long the behaviour goes on."""

from __future__ import annotations

from typing import Any

from apps.spam_detection.settings import Thresholds
from apps.spam_detection.signals import burst, domain_ring, duplicate, reports
from apps.spam_detection.signals.window import new_episode, prune

T0 = 1_700_000_000.0
LIMITS = Thresholds()


def run_burst(times: list[float]) -> list[float | None]:
    state: dict[str, Any] = {}
    return [burst.observe(state, t, LIMITS.burst_count, LIMITS.burst_window_s) for t in times]


def test_burst_fires_at_thirty_creates_in_a_minute():
    results = run_burst([T0 + i * 2 for i in range(30)])  # 30 in 58 s
    assert results[:29] == [None] * 29
    assert results[29] == 0.5


def test_burst_just_under_is_not_flagged():
    assert run_burst([T0 + i * 2 for i in range(29)]) == [None] * 29
    # 30 creates, but the first is a full minute before the last: only 29 in the window
    spread = [T0] + [T0 + 60 - 28 + i for i in range(29)]
    assert max(spread) - min(spread) == 60
    assert run_burst(spread) == [None] * 30


def test_burst_flags_once_per_episode_and_again_after_a_pause():
    times = [T0 + i for i in range(120)]  # two minutes of one create a second
    later = [T0 + 300 + i for i in range(30)]  # a second burst after a quiet spell
    results = run_burst(times + later)
    fired = [(i, r) for i, r in enumerate(results) if r is not None]
    assert [i for i, _ in fired] == [29, 149]
    assert [r for _, r in fired] == [0.5, 0.5]


def test_burst_score_grows_with_the_count_up_to_one():
    state: dict[str, Any] = {}
    assert burst.observe(state, T0, 2, 60) is None
    assert burst.observe(state, T0 + 1, 2, 60) == 0.5
    state = {"times": [T0 + i * 0.1 for i in range(100)]}
    assert burst.observe(state, T0 + 10, 30, 60) == 1.0


def run_duplicate(items: list[tuple[str, float]]) -> list[float | None]:
    state: dict[str, Any] = {}
    c, w = LIMITS.duplicate_count, LIMITS.duplicate_window_s
    return [duplicate.observe(state, text, t, c, w) for text, t in items]


def test_normalise_folds_case_punctuation_and_spaces():
    assert duplicate.normalise("  Buy CHEAP lamps!!  now ") == "buy cheap lamps now"
    assert duplicate.normalise("buy-cheap, lamps now") == "buy cheap lamps now"
    assert duplicate.normalise("?!") == ""


def test_duplicate_text_fires_at_ten_in_ten_minutes():
    variants = ["Buy cheap lamps", "BUY CHEAP LAMPS!", "buy  cheap lamps..."]
    items = [(variants[i % 3], T0 + i * 60) for i in range(10)]  # 10 within 9 minutes
    results = run_duplicate(items)
    assert results == [None] * 9 + [0.5]


def test_duplicate_text_just_under_is_not_flagged():
    assert run_duplicate([("same text", T0 + i * 60) for i in range(9)]) == [None] * 9
    # 10 pins but 600 s from first to last: the first has left the window
    spread = [("same text", T0 + i * 600 / 9) for i in range(10)]
    assert run_duplicate(spread) == [None] * 10
    # ten pins, two texts: five each
    mixed = [("text a" if i % 2 else "text b", T0 + i) for i in range(10)]
    assert run_duplicate(mixed) == [None] * 10


def test_duplicate_text_flags_once_per_episode_per_text():
    items = [("spam one", T0 + i * 10) for i in range(40)]
    items += [("spam two", T0 + 400 + i) for i in range(10)]
    results = run_duplicate(sorted(items, key=lambda x: x[1]))
    assert sum(r is not None for r in results) == 2


def test_duplicate_text_state_forgets_texts_out_of_the_window():
    state: dict[str, Any] = {}
    for i in range(50):
        duplicate.observe(state, f"text {i}", T0 + i * 100, 10, 600)
    assert len(state["texts"]) <= 7


def run_reports(items: list[tuple[str, float]]) -> list[float | None]:
    state: dict[str, Any] = {}
    c, w = LIMITS.report_count, LIMITS.report_window_s
    return [reports.observe(state, who, t, c, w) for who, t in items]


def test_reports_fire_at_three_distinct_reporters_in_an_hour():
    assert run_reports([("a", T0), ("b", T0 + 1000), ("c", T0 + 3000)]) == [None, None, 0.5]


def test_reports_just_under_are_not_flagged():
    # one reporter many times counts once
    assert run_reports([("a", T0), ("a", T0 + 10), ("b", T0 + 20), ("b", T0 + 30)]) == [None] * 4
    # the first reporter is an hour old when the third reports
    assert run_reports([("a", T0), ("b", T0 + 100), ("c", T0 + 3600)]) == [None] * 3


def test_reports_flag_once_per_episode():
    items = [(f"r{i}", T0 + i * 60) for i in range(20)]
    results = run_reports(items)
    assert [i for i, r in enumerate(results) if r is not None] == [2]
    assert results[2] == 0.5


def run_ring(items: list[tuple[str, float]]) -> list[list[tuple[str, float]]]:
    state: dict[str, Any] = {}
    c, w = LIMITS.ring_accounts, LIMITS.ring_window_s
    return [domain_ring.observe(state, who, t, c, w) for who, t in items]


def test_young_accounts_are_under_a_day_old():
    assert domain_ring.is_young(T0 - 86399, T0, LIMITS.ring_account_age_s)
    assert not domain_ring.is_young(T0 - 86400, T0, LIMITS.ring_account_age_s)
    assert not domain_ring.is_young(None, T0, LIMITS.ring_account_age_s)
    assert not domain_ring.is_young(T0 + 10, T0, LIMITS.ring_account_age_s)


def test_domain_ring_flags_every_member_at_five_accounts():
    items = [(f"acct{i}", T0 + i * 600) for i in range(5)]
    results = run_ring(items)
    assert results[:4] == [[]] * 4
    assert results[4] == [(f"acct{i}", 0.5) for i in range(5)]


def test_domain_ring_just_under_is_not_flagged():
    # four accounts, each linking many times
    items = [(f"acct{i % 4}", T0 + i * 60) for i in range(20)]
    assert all(r == [] for r in run_ring(items))
    # five accounts but the first linked a full hour before the fifth
    spread = [(f"acct{i}", T0 + i * 900) for i in range(5)]
    assert all(r == [] for r in run_ring(spread))


def test_domain_ring_flags_each_member_once_and_a_late_joiner_once():
    items = [(f"acct{i}", T0 + i * 60) for i in range(5)]
    items += [(f"acct{i}", T0 + 400 + i * 60) for i in range(5)]  # they keep linking
    items += [("acct5", T0 + 1000)]  # a sixth joins the running ring
    flags = [f for r in run_ring(items) for f in r]
    assert sorted(u for u, _ in flags) == [f"acct{i}" for i in range(6)]
    assert dict(flags)["acct5"] == 0.6


def test_window_helpers():
    assert prune([T0 - 60, T0 - 59.9, T0, T0 + 1], T0, 60) == [T0 - 59.9, T0]
    assert new_episode(None, T0, 60)
    assert not new_episode(T0 - 59, T0, 60)
    assert new_episode(T0 - 60, T0, 60)


def test_thresholds_from_the_environment(monkeypatch):
    monkeypatch.setenv("SPAM_BURST_COUNT", "7")
    monkeypatch.setenv("SPAM_RING_WINDOW_S", "120")
    limits = Thresholds.from_environ()
    assert limits.burst_count == 7 and isinstance(limits.burst_count, int)
    assert limits.ring_window_s == 120.0
    assert limits.duplicate_count == 10


def test_ring_and_reports_count_links_that_arrive_out_of_event_time_order():
    # the last member's link is read first (it came through another partition)
    items = [("acct4", T0 + 240)] + [(f"acct{i}", T0 + i * 60) for i in range(4)]
    results = run_ring(items)
    assert [len(r) for r in results] == [0, 0, 0, 0, 5]
    assert run_reports([("c", T0 + 2000), ("a", T0), ("b", T0 + 10)]) == [None, None, 0.5]
    # a link older than the window's end minus its size does not count
    assert run_ring([(f"acct{i}", T0 + 4000) for i in range(4)] + [("late", T0)]) == [[]] * 5
