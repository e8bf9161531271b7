"""The spam app under failure, on a real ``streamlog broker`` with 4 partitions, fed the
generator's data while workers crash, join and leave:

* one worker is killed with SIGKILL while input is arriving, and restarted;
* a second worker joins while input is arriving, then the first leaves (SIGTERM).

Every input record is committed by the group at the end; precision >= 0.95 and recall
>= 0.9 against the generator's ground truth still hold; and every spammer flagged before
the failure is still on the page afterwards (the flagged table was recovered, and the
windows and episodes of the signals with it: no episode flagged twice after the clean
hand-over).
"""

from __future__ import annotations

from collections import Counter

import pytest

from apps.spam_detection.scenario import Scenario, build
from tests.broker.brokerproc import NO_REBALANCE_DELAY, BrokerProcess
from tests.worker.workerproc import WorkerProcess, wait_until

from .harness import (
    ChunkedSender,
    committed_pins,
    flags,
    page_flagged,
    send,
    start_worker,
    wait_processed,
)
from .test_app import T0, precision_recall

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


def scenario_in_parts(seed: int) -> tuple[Scenario, list[dict], list[dict]]:
    """A generated scenario, its pins split in event-time order: the first third (sent
    before any failure) and the rest (sent while workers fail)."""
    scenario = build(seed, 50, 240, T0, spammers_per_kind=4)
    third = len(scenario.pins) // 3
    return scenario, scenario.pins[:third], scenario.pins[third:]


def flagged_spammers(url: str, scenario: Scenario) -> set[str]:
    """The true spammers among the users flagged so far (``spam_flags``)."""
    return {f["user_id"] for f in flags(url)} & set(scenario.spammers)


def check_outcome(url: str, scenario: Scenario, before: set[str], worker: WorkerProcess) -> list:
    """Every input committed; precision and recall; the spammers flagged before the
    failure still on the page. Returns the flags."""
    wait_processed(url, len(scenario.users), len(scenario.pins), timeout=90)
    values = flags(url)
    flagged = {f["user_id"] for f in values}
    precision, recall = precision_recall(flagged, set(scenario.spammers))
    assert precision >= 0.95 and recall >= 0.9, (precision, recall, flagged)
    for f in values:  # each spammer is flagged for its own kind
        assert scenario.spammers.get(f["user_id"]) in (*f["reasons"], None), f
    wait_until(lambda: page_flagged(worker) == flagged, 30, "every flag on the page")
    assert before <= page_flagged(worker)
    return values


def test_a_worker_killed_mid_stream_and_restarted(tmp_path):
    scenario, first, rest = scenario_in_parts(31)
    broker = BrokerProcess(str(tmp_path / "broker"), NO_REBALANCE_DELAY).start()
    worker = None
    try:
        url = f"kafka://{broker.bootstrap}"
        worker = start_worker(url, str(tmp_path / "w"))
        send(url, scenario.users, first)
        wait_processed(url, len(scenario.users), len(first))
        before = flagged_spammers(url, scenario)
        assert before, "no spammer flagged in the first third"
        with ChunkedSender(url, rest, chunk=300, pause=0.1) as sender:
            wait_until(
                lambda: committed_pins(url) >= len(first) + 600, 60, "input past the first third"
            )
            worker.kill()  # SIGKILL: no final commit
            assert worker.returncode == -9
            at_kill = committed_pins(url)
            assert at_kill < len(scenario.pins)  # input was left unprocessed: mid-stream
            before |= flagged_spammers(url, scenario)
            worker.start(timeout=60)  # the same directory: its stores, then the changelogs
            sender.wait()
        assert "partitions assigned" in worker.logs()
        check_outcome(url, scenario, before, worker)
        assert worker.stop() == 0, worker.logs()
    finally:
        if worker is not None:
            worker.kill()
        broker.stop()


def test_a_worker_joins_and_one_leaves_mid_stream(tmp_path):
    scenario, first, rest = scenario_in_parts(37)
    broker = BrokerProcess(str(tmp_path / "broker"), NO_REBALANCE_DELAY).start()
    workers: list[WorkerProcess] = []
    try:
        url = f"kafka://{broker.bootstrap}"
        first_worker = start_worker(url, str(tmp_path / "a"))
        workers.append(first_worker)
        send(url, scenario.users, first)
        wait_processed(url, len(scenario.users), len(first))
        before = flagged_spammers(url, scenario)
        assert before, "no spammer flagged in the first third"
        with ChunkedSender(url, rest, chunk=200, pause=0.25) as sender:
            second = start_worker(url, str(tmp_path / "b"))  # joins while input arrives
            workers.append(second)
            second.wait_for_log(r"partitions assigned: .*pin_events \[\d", timeout=60)
            assert not sender.done.is_set(), "the input ended before the second worker joined"
            before |= flagged_spammers(url, scenario)
            assert first_worker.stop() == 0, first_worker.logs()  # leaves: SIGTERM
            assert committed_pins(url) < len(scenario.pins)  # it left mid-stream
            sender.wait()
        second.wait_for_log(r"holding partitions: .*pin_events \[0, 1, 2, 3\]", timeout=60)
        values = check_outcome(url, scenario, before, second)
        # clean hand-overs commit what was processed: no episode flagged twice
        per_reason = Counter((f["user_id"], r) for f in values for r in f["reasons"])
        assert max(per_reason.values()) == 1, per_reason.most_common(3)
        assert second.stop() == 0, second.logs()
    finally:
        for w in workers:
            w.kill()
        broker.stop()
