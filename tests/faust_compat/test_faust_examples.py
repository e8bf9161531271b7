"""Programs written the way Faust's tutorial and examples write them (``programs/``), run
by ``streamlog worker`` with ``import faust`` left in, each checked for what its logic
computes: page views counted through group_by and read over HTTP (``page_views.py``), and
windowed withdrawals where an out-of-order event still updates its window, as on Faust,
because the table is declared without grace (``withdrawals.py``)."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from tests.worker.workerproc import WorkerProcess, produce, read_values, wait_until

from .helpers import copy_program

pytestmark = pytest.mark.slow


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_page_views_tutorial(tmp_path):
    copy_program("page_views.py", tmp_path)
    worker = WorkerProcess(
        app="page_views.py", broker=None, workdir=str(tmp_path), extra_args=("--web-port", "0")
    )
    worker.start()
    try:
        base = worker.wait_for_log(r"web endpoint on (http://127\.0\.0\.1:\d+)").split()[-1]
        views = [("home", "ann"), ("about", "bob"), ("home", "cy"), ("home", "ann")]
        # what a Faust producer writes: the Record as JSON (with or without Faust's tag)
        produce(
            worker.kafka_url,
            "page_views",
            [json.dumps({"id": page, "user": user}) for page, user in views[:2]]
            + [
                json.dumps({"id": p, "user": u, "__faust": {"ns": "page_views.PageView"}})
                for p, u in views[2:]
            ],
        )
        expected = {"home": 3, "about": 1, "contact": 0}

        def counted() -> bool:
            return all(
                get_json(f"{base}/count/{page}/") == {"page": page, "count": n}
                for page, n in expected.items()
            )

        wait_until(counted, 30, "the page counts")
    finally:
        code = worker.stop()
    assert code == 0, worker.logs()


def test_withdrawals_example_counts_a_late_withdrawal_in_its_window(tmp_path):
    copy_program("withdrawals.py", tmp_path)
    worker = WorkerProcess(app="withdrawals.py", broker=None, workdir=str(tmp_path))
    worker.start()
    try:
        minute = datetime.fromtimestamp(time.time() // 60 * 60 - 3600, UTC)
        sent = [
            ("ann", minute + timedelta(seconds=10), 5.0),
            ("ann", minute + timedelta(minutes=2), 1.0),
            ("bob", minute + timedelta(seconds=20), 3.5),
            ("ann", minute + timedelta(seconds=50), 2.0),  # 70 s behind: Faust still counts it
        ]
        produce(
            worker.kafka_url,
            "withdrawals",
            [
                json.dumps({"user": u, "country": "SE", "amount": a, "date": d.isoformat()})
                for u, d, a in sent
            ],
        )
        hh = f"{minute:%H:%M}"
        later = f"{minute + timedelta(minutes=2):%H:%M}"
        got = read_values(worker.kafka_url, "user-totals", at_least=len(sent))
        assert got == sorted(
            [f'"ann {hh} 5.00"', f'"ann {later} 1.00"', f'"bob {hh} 3.50"', f'"ann {hh} 7.00"']
        )
    finally:
        code = worker.stop()
    assert code == 0, worker.logs()


def test_windowed_lists_of_records_summarised_when_each_window_closes(tmp_path):
    copy_program("window_means.py", tmp_path)
    worker = WorkerProcess(app="window_means.py", broker=None, workdir=str(tmp_path))
    worker.start()
    try:
        t0 = time.time() // 10 * 10 - 600
        # window [t0, t0 + 10): 1.0 .. 4.0; window [t0 + 10, t0 + 20): 10.0, 20.0; the
        # reading at t0 + 31 moves stream time past both windows' expiry (end + 1 s)
        readings = [(1, 1.0), (3, 2.0), (5, 3.0), (9, 4.0), (12, 10.0), (18, 20.0), (31, 0.0)]
        produce(
            worker.kafka_url,
            "readings",
            [json.dumps({"date": t0 + at, "value": v}) for at, v in readings],
        )
        got = [json.loads(v) for v in read_values(worker.kafka_url, "summaries", at_least=2)]
        tag = {"ns": "window_means.Summary"}
        assert sorted(got, key=lambda s: s["start"]) == [
            {"start": t0, "count": 4, "mean": 2.5, "__faust": tag},
            {"start": t0 + 10, "count": 2, "mean": 15.0, "__faust": tag},
        ]
    finally:
        code = worker.stop()
    assert code == 0, worker.logs()
