"""The ETA app as a user runs it: ``streamlog worker apps/eta_matching/app.py`` processes,
fed by the generator, on file:// and with 4 partitions and two workers on one
``streamlog broker``; the topics' contents must keep every rule (checks.py)."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request

import pytest

from apps.eta_matching import generate
from streamlog.log.partitioner import partition_for_key
from tests.apps.eta_matching.checks import check_run, values
from tests.broker.brokerproc import BrokerProcess
from tests.worker.workerproc import WorkerProcess, read_topic, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
APP = os.path.join(ROOT, "apps", "eta_matching", "app.py")


def run_generator(url: str, seconds: int, seed: int) -> dict:
    argv = [
        "--rate",
        "4",
        "--duration",
        str(seconds),
        "--seed",
        str(seed),
        "--drivers",
        "40",
        # 10 min of event time: trips of up to 5 km to the pickup and 6 km on board end
        # within the run even when the machine is busy
        "--time-scale",
        "40",
    ]
    return asyncio.run(asyncio.wait_for(generate.main([*argv, "--broker", url]), seconds + 60))


def answered_by(worker: WorkerProcess) -> int:
    """Requests this worker's fleets answered, from its live page's data."""
    url = worker.wait_for_log(r"web endpoint on (http://127\.0\.0\.1:\d+)").split(" on ", 1)[1]
    with urllib.request.urlopen(url + "/eta/data/", timeout=10) as answer:
        data = json.load(answer)
    return sum(p["matched"] + p["unmatched"] for p in data["per_minute"])


def check_topics(url: str, sent: dict) -> dict[str, int]:
    requests = values(read_topic(url, "ride_requests", sent["ride_requests"]))
    assert len(requests) == sent["ride_requests"]
    matches = values(read_topic(url, "matches", len(requests), timeout=60))
    completions = values(read_topic(url, "trips_completed", sent["trips_completed"]))
    return check_run(requests, matches, completions)


@pytest.mark.timeout(150)
def test_one_worker_on_file_answers_every_request_once(tmp_path):
    env = {"PYTHONPATH": ROOT}
    # the app declares pages, so it serves the web: a free port each (6066 may be taken)
    worker = WorkerProcess(
        APP, f"file://{tmp_path / 'log'}", str(tmp_path), env=env, extra_args=("--web-port", "0")
    )
    worker.start()
    try:
        summary = run_generator(worker.kafka_url, 15, seed=3)
        sent = summary["sent"]
        assert sent["ride_requests"] > 20
        counts = check_topics(worker.kafka_url, sent)
        assert counts["matched"] > 0 and counts["requests"] == sent["ride_requests"]
        # drivers finished trips and were matched again: the busy/complete cycle ran
        assert sent["trips_completed"] > 0
    finally:
        assert worker.stop() == 0, worker.logs()


@pytest.mark.timeout(200)
def test_four_partitions_two_workers_on_a_streamlog_broker(tmp_path):
    broker = BrokerProcess(
        str(tmp_path / "broker"), ["--group-initial-rebalance-delay-ms", "0"]
    ).start()
    url = f"kafka://{broker.bootstrap}"
    env = {
        "PYTHONPATH": ROOT,
        "ETA_PARTITIONS": "4",
        "ETA_APP_ID": "eta-two",
        "ETA_REGION_RES": "5",
    }
    workers = [
        WorkerProcess(
            APP,
            url,
            str(tmp_path / f"w{i}"),
            env=env,
            extra_args=("--data-dir", str(tmp_path / f"d{i}"), "--web-port", "0"),
        )
        for i in range(2)
    ]
    try:
        for w in workers:
            os.makedirs(w.workdir, exist_ok=True)
            w.start()
        # both members own partitions of the region topic before any traffic
        for w in workers:
            wait_until(
                lambda w=w: (
                    "eta-two-eta-region-events ["
                    in w.logs().split("holding partitions")[-1].split("\n")[0]
                ),
                60,
                "each worker to own region partitions",
            )
        summary = run_generator(url, 15, seed=5)
        counts = check_topics(url, summary["sent"])
        assert counts["matched"] > 0
        # each worker answered the requests of the regions it owns, together all of them
        answered = [answered_by(w) for w in workers]
        assert sum(answered) == counts["requests"]
        assert all(n > 0 for n in answered), answered
        # drivers were handed between regions on different partitions (ETA_REGION_RES=5
        # splits the city in three regions), so the hand-off ran across partitions
        events = read_topic(url, "eta-two-eta-region-events")
        # region keys are stored as their text, so the partitioner places "to" the same way
        assert all(partition_for_key(r.key, 4) == r.partition for r in events)
        moves = [
            (r.partition, partition_for_key(json.loads(r.value)["to"].encode(), 4))
            for r in events
            if json.loads(r.value)["kind"] == "leave"
        ]
        assert any(src != dst for src, dst in moves), moves
        keys = {r.key for r in events}
        assert all(
            json.loads(r.value)["to"].encode() in keys for r in events if b'"leave"' in r.value
        )
    finally:
        codes = [w.stop() for w in workers]
        assert broker.stop() == 0
        assert codes == [0, 0], [w.logs() for w in workers]
