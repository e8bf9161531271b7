"""The windowed tables' schedule (``DueQueue``) against a heap of (due, key), and the
choice of window kind."""

from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st

from streamlog.dsl.windows.due import NEVER, DueQueue
from streamlog.dsl.windows.kinds import Aligned, Tumbling, kind_for
from streamlog.state.windows import HoppingWindow, TumblingWindow

# a push (due, key) or a pop of one entry ("pop") or of the earliest bucket ("bucket")
steps = st.lists(
    st.one_of(
        st.tuples(st.integers(0, 6), st.binary(max_size=2)),
        st.sampled_from(["pop", "bucket"]),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_due_queue_matches_a_heap_of_due_and_key(script) -> None:
    queue = DueQueue()
    model: list[tuple[int, bytes]] = []
    for step in script:
        if isinstance(step, tuple):
            queue.push(*step)
            heapq.heappush(model, step)
        elif not model:
            assert queue.head == NEVER
        elif step == "pop":
            assert queue.pop() == heapq.heappop(model)[1]
        else:
            due = model[0][0]
            expected = sorted(k for d, k in model if d == due)
            model = [entry for entry in model if entry[0] != due]
            heapq.heapify(model)
            assert sorted(queue.pop_bucket()) == expected
        assert queue.head == (model[0][0] if model else NEVER)
        assert len(queue) == len(model)


def test_pop_bucket_keeps_push_order() -> None:
    queue = DueQueue()
    for due, key in [(5, b"b"), (3, b"z"), (5, b"a"), (3, b"y"), (5, b"c")]:
        queue.push(due, key)
    assert queue.pop_bucket() == [b"z", b"y"]
    assert queue.head == 5
    assert queue.pop_bucket() == [b"b", b"a", b"c"]
    assert queue.head == NEVER and len(queue) == 0


def test_a_push_into_the_bucket_being_popped_is_popped_in_order() -> None:
    queue = DueQueue()
    for key in (b"c", b"a", b"d"):
        queue.push(1, key)
    assert queue.pop() == b"a"
    queue.push(1, b"b")
    assert [queue.pop() for _ in range(3)] == [b"b", b"c", b"d"]
    assert queue.head == NEVER


def test_windows_whose_step_is_their_size_take_the_one_window_path() -> None:
    assert type(kind_for(TumblingWindow(10), max)) is Tumbling
    assert type(kind_for(HoppingWindow(10, 10), max)) is Tumbling
    assert type(kind_for(HoppingWindow(10, 5), max)) is Aligned
