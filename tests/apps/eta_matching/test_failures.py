"""The ETA app under the failures of production, every request counted: a worker joining
and one leaving mid-stream (graceful rebalances: each request answered exactly once), and
kill -9 of the only worker twice mid-stream (at-least-once: an answer may be sent again,
identical). In both, no driver is ever double-booked, which needs the fleets, claims and
router state to move with their partitions and survive the crash (changelogged tables)."""

from __future__ import annotations

import os
import threading

import pytest

from tests.apps.eta_matching.checks import check_run, values
from tests.apps.eta_matching.test_app_runs import APP, ROOT, run_generator
from tests.broker.brokerproc import BrokerProcess
from tests.worker.workerproc import WorkerProcess, read_topic, wait_until

PARTITIONS = 4


def start_feed(url: str, seconds: int, seed: int) -> tuple[threading.Thread, dict]:
    """The generator in a thread (it reads matches to drive drivers and complete trips)."""
    result: dict = {}

    def run() -> None:
        result.update(run_generator(url, seconds, seed))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def worker(tmp_path, url: str, name: str, app_id: str) -> WorkerProcess:
    env = {
        "PYTHONPATH": ROOT,
        "ETA_PARTITIONS": str(PARTITIONS),
        "ETA_APP_ID": app_id,
        "ETA_REGION_RES": "5",
    }
    os.makedirs(tmp_path / name, exist_ok=True)
    return WorkerProcess(
        APP,
        url,
        str(tmp_path / name),
        env=env,
        extra_args=("--data-dir", str(tmp_path / f"{name}-data"), "--web-port", "0"),
    )


def answers_at_least(url: str, n: int) -> None:
    read_topic(url, "matches", n, timeout=60)


def all_answers(url: str, requests: list[dict]) -> list[dict]:
    """The matches topic once every request has an answer (copies included)."""
    asked = {r["request_id"] for r in requests}

    def answered() -> list[dict] | None:
        found = values(read_topic(url, "matches"))
        return found if asked <= {m["request_id"] for m in found} else None

    return wait_until(answered, 90, "an answer to every request")


@pytest.mark.timeout(240)
def test_a_worker_joining_and_one_leaving_mid_stream_answer_each_request_once(tmp_path):
    broker = BrokerProcess(
        str(tmp_path / "broker"), ["--group-initial-rebalance-delay-ms", "0"]
    ).start()
    url = f"kafka://{broker.bootstrap}"
    first, second = (worker(tmp_path, url, n, "eta-rebalance") for n in ("a", "b"))
    try:
        first.start()
        feed, summary = start_feed(url, 24, seed=11)
        answers_at_least(url, 15)
        second.start()  # joins: the region partitions are split between the two
        wait_until(
            lambda: (
                "eta-rebalance-eta-region-events ["
                in second.logs().split("holding partitions")[-1].split("\n")[0]
            ),
            60,
            "the joining worker to own region partitions",
        )
        answers_at_least(url, 45)
        assert second.stop() == 0, second.logs()  # leaves: its partitions go back
        feed.join(120)
        assert not feed.is_alive()
        sent = summary["sent"]
        requests = values(read_topic(url, "ride_requests", sent["ride_requests"]))
        assert len(requests) == sent["ride_requests"] > 45
        matches = all_answers(url, requests)
        completions = values(read_topic(url, "trips_completed", sent["trips_completed"]))
        counts = check_run(requests, matches, completions)  # exactly one answer each
        assert counts["matched"] > 0 and sent["trips_completed"] > 0
    finally:
        codes = [w.stop() for w in (first, second)]
        assert broker.stop() == 0
        assert codes == [0, 0], [w.logs() for w in (first, second)]


@pytest.mark.timeout(240)
def test_kill_9_of_the_only_worker_twice_keeps_claims_and_answers_every_request(tmp_path):
    broker = BrokerProcess(
        str(tmp_path / "broker"), ["--group-initial-rebalance-delay-ms", "0"]
    ).start()
    url = f"kafka://{broker.bootstrap}"
    only = worker(tmp_path, url, "a", "eta-crash")
    try:
        only.start()
        feed, summary = start_feed(url, 24, seed=13)
        for answered in (20, 50):
            answers_at_least(url, answered)
            only.kill()  # no final commit: state and offsets as the crash left them
            only.start()  # recovers the tables from their changelogs
        feed.join(120)
        assert not feed.is_alive()
        sent = summary["sent"]
        requests = values(read_topic(url, "ride_requests", sent["ride_requests"]))
        assert len(requests) == sent["ride_requests"] > 50
        matches = all_answers(url, requests)
        completions = values(read_topic(url, "trips_completed", sent["trips_completed"]))
        # every request answered, copies identical, no driver double-booked across crashes
        counts = check_run(requests, matches, completions, identical_copies=True)
        assert counts["matched"] > 0 and sent["trips_completed"] > 0
        # the restarted worker still knew the drivers: no request after the first crash
        # was refused for an empty region
        late = [m for m in matches if m["request_id"] in {r["request_id"] for r in requests[25:]}]
        assert all(m.get("reason") != "no_drivers_in_region" for m in late), late
    finally:
        code = only.stop()
        assert broker.stop() == 0
        assert code == 0, only.logs()
