"""``WindowSet.current_windows()``: every live window of a key containing the current
event's time, checked after each event against the brute-force references of
``test_windowed`` (sliding, hopping, sessions), with events out of order and late.

Why it exists: "N events within W" is a sliding-window count reaching N, and an event
that arrives out of order can complete a window that ends after it; ``current()`` reads
only the window ``[t - size, t]`` and misses it (the spam app's rules need the others).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.dsl.helpers import run, wait_for
from tests.dsl.windows.test_windowed import (
    BASE,
    HYPOTHESIS,
    Event,
    aligned_reference,
    event_lists,
    new_app,
    send_at,
    session_reference,
    sliding_reference,
)

Seen = list[tuple[bool, list[tuple[tuple[int, int], Any]]]]


def drive_current(declare: Any, events: list[Event]) -> Seen:
    """Each event through ``table.apply(key, +, value)``; then, in the same step, whether
    it was taken and what ``table[key].current_windows()`` shows."""
    app = new_app("current")
    source = app.topic(f"{app.conf.id}-in", key_type=str, value_type=int)
    table = declare(app.Table("c", default=int, key_type=str, value_type=int))
    seen: Seen = []

    @app.agent(source)
    async def aggregate(stream):
        async for key, value in stream.items():
            taken = table.apply(key, lambda a, b: a + b, value)
            seen.append((taken, [(tuple(w), v) for w, v in table[key].current_windows()]))

    async def main() -> None:
        async with app:
            for key, ts, value in events:
                await send_at(source, key, value, ts)
            await wait_for(lambda: len(seen) == len(events))

    run(main())
    return seen


def containing(live: dict, key: str, ts: int, inclusive: bool) -> list[tuple[tuple[int, int], Any]]:
    """The reference's live windows of ``key`` containing ``ts``, oldest first."""
    return sorted(
        (w, v)
        for (k, w), v in live.items()
        if k == key and w[0] <= ts and (ts <= w[1] if inclusive else ts < w[1])
    )


def check_each_step(seen: Seen, events: list[Event], reference: Any, inclusive: bool) -> None:
    for i, (key, ts, _) in enumerate(events):
        _, live, _, late = reference(events[: i + 1])
        taken, windows = seen[i]
        was_late = len(late) > len(reference(events[:i])[3])
        assert taken is not was_late, (i, events[i])
        if taken:
            assert windows == containing(live, key, ts, inclusive), (i, events[: i + 1])


@HYPOTHESIS
@given(
    events=event_lists(st.integers(1, 9)),
    size=st.sampled_from([1000, 5000]),
    grace=st.sampled_from([0, 2000]),
)
def test_sliding_current_windows_are_every_window_holding_the_event(events, size, grace):
    seen = drive_current(lambda t: t.sliding(size / 1000, grace=grace / 1000), events)
    check_each_step(seen, events, lambda evs: sliding_reference(evs, size, grace), True)


@HYPOTHESIS
@given(events=event_lists(st.integers(1, 9)), grace=st.sampled_from([0, 2000]))
def test_hopping_current_windows_are_the_windows_of_the_event(events, grace):
    size, step = 6000, 2000
    expires = size + grace
    seen = drive_current(
        lambda t: t.hopping(size / 1000, step / 1000, expires / 1000, grace=grace / 1000), events
    )

    def reference(evs: list[Event]) -> Any:
        every, live, closed, late = aligned_reference(evs, size, step, grace, expires)
        return every, live, closed, late

    check_each_step(seen, events, reference, False)


@HYPOTHESIS
@given(events=event_lists(st.integers(1, 9)), gap=st.sampled_from([1000, 3000]))
def test_session_current_windows_are_the_session_of_the_event(events, gap):
    seen = drive_current(lambda t: t.session(gap / 1000, grace=1), events)
    check_each_step(seen, events, lambda evs: session_reference(evs, gap, 1000), True)


def test_an_out_of_order_event_shows_the_later_window_it_completes():
    # size 10 s: records at 0 s and 9 s, then one at 5 s read last; the window that the
    # 9 s record closes, [-1 s, 9 s], now holds all three, and current() ([-5 s, 5 s])
    # holds only two
    events = [("a", BASE, 1), ("a", BASE + 9000, 1), ("a", BASE + 5000, 1)]
    seen = drive_current(lambda t: t.sliding(10, grace=10), events)
    taken, windows = seen[-1]
    assert taken
    assert max(v for _, v in windows) == 3
    assert ((BASE - 1000, BASE + 9000), 3) in windows
    assert ((BASE - 5000, BASE + 5000), 2) in windows
