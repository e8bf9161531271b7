"""Each signal on hand-built events, through its real windowed tables: flagged at its
threshold, not one event under it, once per episode however long the behaviour goes on,
and out-of-order and late events as the windows' rules say.

Each run is a small in-process app (``memory://`` log and stores): the events are
produced with their event time as record timestamp, and one agent hands them to the
signal as the spam app's agents do.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import streamlog
from apps.spam_detection.settings import Thresholds
from apps.spam_detection.signals import domain_ring, duplicate
from apps.spam_detection.signals.burst import Burst
from apps.spam_detection.signals.domain_ring import DomainRing
from apps.spam_detection.signals.duplicate import Duplicate
from apps.spam_detection.signals.reports import Reports
from apps.spam_detection.signals.window import within
from tests.dsl.helpers import run, wait_for

T0 = 1_800_000_000.0
LIMITS = Thresholds()
_ids = itertools.count()

Event = tuple[str, Any, float]  # key, value, event time (s)


def run_signal(
    declare: Callable[[Any, Thresholds], Any],
    call: Callable[[Any, str, Any], Any],
    events: list[Event],
    limits: Thresholds = LIMITS,
    inspect: Callable[[Any], Any] | None = None,
) -> tuple[list[Any], Any]:
    """``call(signal, key, value)`` for each event in order; its results, and what
    ``inspect(signal)`` found once they were all processed (the app still running)."""
    app = streamlog.App(
        f"spam-signal-{next(_ids)}", broker="memory://", store="memory://", topic_partitions=1
    )
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_serializer="json")
    signal = declare(app, limits)
    results: list[Any] = []

    @app.agent(source)
    async def observe(stream: Any) -> None:
        async for key, value in stream.items():
            results.append(call(signal, key, value))

    async def main() -> Any:
        async with app:
            for key, value, ts in events:
                await source.send(key=key, value=value, timestamp=ts)
            await wait_for(lambda: len(results) == len(events))
            return None if inspect is None else inspect(signal)

    found = run(main())
    return results, found


def run_burst(times: list[float], limits: Thresholds = LIMITS) -> list[float | None]:
    results, _ = run_signal(
        Burst.declare, lambda s, k, v: s.observe(k), [("u", 0, t) for t in times], limits
    )
    return results


def test_within_w_is_a_sliding_window_one_millisecond_shorter():
    assert within(60.0) == 59.999
    assert round(within(3600.0) * 1000) == 3_599_999


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
    assert fired == [(29, 0.5), (149, 0.5)]


def test_burst_score_grows_with_the_count_up_to_one():
    assert run_burst([T0, T0 + 1], replace(LIMITS, burst_count=2)) == [None, 0.5]
    results = run_burst([T0 + i * 0.1 for i in range(100)], replace(LIMITS, burst_count=40))
    assert results[39] == 0.5 and [r for r in results if r is not None] == [0.5]
    # sixty at the same millisecond: one flag, at the thirtieth
    at_once = run_burst([T0 + 1] * 60 + [T0 + 2], replace(LIMITS, burst_count=30))
    assert at_once[29] == 0.5 and at_once[30:] == [None] * 31


def test_burst_counts_an_out_of_order_create_in_the_later_window_it_completes():
    # 29 creates at T0+30..T0+58, then one at T0 read last: the window ending at T0+58
    # is then 30 strong, though the window ending at T0 holds one
    times = [T0 + 30 + i for i in range(29)] + [T0 + 1]
    assert run_burst(times) == [None] * 29 + [0.5]


def test_a_create_later_than_the_grace_does_not_count():
    # the late one is 61 s behind stream time (grace 60 s): dropped, no flag
    times = [T0 + 100 + i for i in range(29)] + [T0 + 128 - 61]
    results, late = run_signal(
        Burst.declare, lambda s, k, v: s.observe(k), [("u", 0, t) for t in times],
        inspect=lambda signal: signal.creates.late_events,
    )  # fmt: skip
    assert results == [None] * 30
    assert late == 1


def run_duplicate(items: list[tuple[str, float]]) -> list[float | None]:
    events = [("u", text, t) for text, t in items]
    results, _ = run_signal(Duplicate.declare, lambda s, k, v: s.observe(k, v), events)
    return results


def test_normalise_folds_case_punctuation_and_spaces():
    assert duplicate.normalise("  Buy CHEAP lamps!!  now ") == "buy cheap lamps now"
    assert duplicate.normalise("buy-cheap, lamps now") == "buy cheap lamps now"
    assert duplicate.normalise("?!") == ""


def test_duplicate_text_fires_at_ten_in_ten_minutes():
    variants = ["Buy cheap lamps", "BUY CHEAP LAMPS!", "buy  cheap lamps..."]
    items = [(variants[i % 3], T0 + i * 60) for i in range(10)]  # 10 within 9 minutes
    assert run_duplicate(items) == [None] * 9 + [0.5]


def test_duplicate_text_just_under_is_not_flagged():
    assert run_duplicate([("same text", T0 + i * 60) for i in range(9)]) == [None] * 9
    # 10 pins but 600 s from first to last: the first has left the window
    spread = [("same text", T0 + i * 600 / 9) for i in range(10)]
    assert run_duplicate(spread) == [None] * 10
    # ten pins, two texts: five each
    mixed = [("text a" if i % 2 else "text b", T0 + i) for i in range(10)]
    assert run_duplicate(mixed) == [None] * 10
    assert run_duplicate([("?!", T0 + i) for i in range(12)]) == [None] * 12  # no text


def test_duplicate_text_flags_once_per_episode_per_text():
    items = [("spam one", T0 + i * 10) for i in range(40)]
    items += [("spam two", T0 + 400 + i) for i in range(10)]
    results = run_duplicate(sorted(items, key=lambda x: x[1]))
    assert sum(r is not None for r in results) == 2


def test_duplicate_text_windows_expire_with_stream_time():
    # fifty texts 100 s apart: a sliding window lives grace + 2 x size after its end
    # (600 + 1200 s), so about 25 are live at the end, not 50
    events = [("u", f"text {i}", T0 + i * 100) for i in range(50)]
    _, keys = run_signal(
        Duplicate.declare, lambda s, k, v: s.observe(k, v), events,
        inspect=lambda signal: {tuple(k) for k, _ in signal.texts.keys()},
    )  # fmt: skip
    assert ("u", "text 49") in keys and ("u", "text 0") not in keys
    assert len(keys) <= 26


def run_reports(items: list[tuple[str, float]]) -> list[float | None]:
    events = [("target", who, t) for who, t in items]
    results, _ = run_signal(Reports.declare, lambda s, k, v: s.observe(k, v), events)
    return results


def test_reports_fire_at_three_distinct_reporters_in_an_hour():
    assert run_reports([("a", T0), ("b", T0 + 1000), ("c", T0 + 3000)]) == [None, None, 0.5]


def test_reports_just_under_are_not_flagged():
    # one reporter many times counts once
    assert run_reports([("a", T0), ("a", T0 + 10), ("b", T0 + 20), ("b", T0 + 30)]) == [None] * 4
    # the first reporter is an hour old when the third reports
    assert run_reports([("a", T0), ("b", T0 + 100), ("c", T0 + 3600)]) == [None] * 3


def test_reports_flag_once_per_episode():
    results = run_reports([(f"r{i}", T0 + i * 60) for i in range(20)])
    assert [(i, r) for i, r in enumerate(results) if r is not None] == [(2, 0.5)]


def run_ring(items: list[tuple[str, float]]) -> list[list[tuple[str, float]]]:
    events = [("ring.example", who, t) for who, t in items]
    results, _ = run_signal(DomainRing.declare, lambda s, k, v: s.observe(k, v), events)
    return results


def test_young_accounts_are_under_a_day_old():
    assert domain_ring.is_young(T0 - 86399, T0, LIMITS.ring_account_age_s)
    assert not domain_ring.is_young(T0 - 86400, T0, LIMITS.ring_account_age_s)
    assert not domain_ring.is_young(None, T0, LIMITS.ring_account_age_s)
    assert not domain_ring.is_young(T0 + 10, T0, LIMITS.ring_account_age_s)


def test_domain_ring_flags_every_member_at_five_accounts():
    results = run_ring([(f"acct{i}", T0 + i * 600) for i in range(5)])
    assert results[:4] == [[]] * 4
    assert results[4] == [(f"acct{i}", 0.5) for i in range(5)]


def test_domain_ring_just_under_is_not_flagged():
    # four accounts, each linking many times
    assert all(r == [] for r in run_ring([(f"acct{i % 4}", T0 + i * 60) for i in range(20)]))
    # five accounts but the first linked a full hour before the fifth
    assert all(r == [] for r in run_ring([(f"acct{i}", T0 + i * 900) for i in range(5)]))


def test_domain_ring_flags_each_member_once_and_a_late_joiner_once():
    items = [(f"acct{i}", T0 + i * 60) for i in range(5)]
    items += [(f"acct{i}", T0 + 400 + i * 60) for i in range(5)]  # they keep linking
    items += [("acct5", T0 + 1000)]  # a sixth joins the running ring
    flags = [f for r in run_ring(items) for f in r]
    assert sorted(u for u, _ in flags) == [f"acct{i}" for i in range(6)]
    assert dict(flags)["acct5"] == 0.6


def test_ring_and_reports_count_links_that_arrive_out_of_event_time_order():
    # the last member's link is read first (it came through another partition)
    items = [("acct4", T0 + 240)] + [(f"acct{i}", T0 + i * 60) for i in range(4)]
    assert [len(r) for r in run_ring(items)] == [0, 0, 0, 0, 5]
    assert run_reports([("c", T0 + 2000), ("a", T0), ("b", T0 + 10)]) == [None, None, 0.5]
    # a link an hour older than the others is in no window with them
    assert run_ring([(f"acct{i}", T0 + 4000) for i in range(4)] + [("late", T0)]) == [[]] * 5


def test_windows_are_in_the_table_changelogs():
    """The state is the framework's: each signal's windows and episodes are tables with
    changelogs (what a restarted worker recovers)."""

    def tables(signal: Any) -> tuple[dict, str, str]:
        windows = {tuple(w): members for (_, w), members in signal.reporters.items()}
        names = (
            signal.reporters.table.changelog_topic.name,
            signal.episodes.table.changelog_topic.name,
        )
        return windows, *names

    results, (windows, reporters, episodes) = run_signal(
        Reports.declare, lambda s, k, v: s.observe(k, v),
        [("t", f"r{i}", T0 + i) for i in range(3)], inspect=tables,
    )  # fmt: skip
    assert results == [None, None, 0.5]
    assert windows[(round(T0 * 1000) + 2000 - 3_599_999, round(T0 * 1000) + 2000)] == [
        "r0", "r1", "r2",
    ]  # fmt: skip
    assert reporters.endswith("report-reporters-changelog")
    assert episodes.endswith("report-episodes-changelog")


def test_thresholds_from_the_environment(monkeypatch):
    monkeypatch.setenv("SPAM_BURST_COUNT", "7")
    monkeypatch.setenv("SPAM_RING_WINDOW_S", "120")
    monkeypatch.setenv("SPAM_RING_GRACE_S", "30")
    limits = Thresholds.from_environ()
    assert limits.burst_count == 7 and isinstance(limits.burst_count, int)
    assert limits.ring_window_s == 120.0 and limits.ring_grace_s == 30.0
    assert limits.duplicate_count == 10
