"""The spam app as deployed: real ``streamlog worker`` processes on a real ``streamlog
broker`` (4 partitions), fed by the generator; its flags checked against the generator's
ground truth, and a hand-built scenario per signal end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections import Counter

import pytest

from apps.spam_detection.scenario import build
from tests.broker.brokerproc import NO_REBALANCE_DELAY, BrokerProcess
from tests.worker.workerproc import produce, wait_until

from .harness import REPO, flags, send, start_worker, start_workers, wait_processed

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

T0 = 1_800_000_000.0


def user(uid: str, age_s: float) -> dict:
    return {"user_id": uid, "created_ts": T0 - age_s, "verified": False}


def pin(uid: str, n: int, ts: float, text: str = "", domain: str = "", **extra) -> dict:
    action = extra.pop("action", "create")
    return {
        "user_id": uid, "pin_id": f"{uid}-{n}", "action": action, "domain": domain,
        "text": text or f"pin {n} of {uid}", "ts": ts, **extra,
    }  # fmt: skip


def hand_built() -> tuple[list[dict], list[dict]]:
    """One user per signal over its threshold and one just under, pins sent before the
    accounts of the ring (a pin may be read before its account)."""
    users = [user(u, 30 * 86400) for u in ("burster", "nearburst", "copier", "nearcopier")]
    users += [user(u, 30 * 86400) for u in ("disliked", "neardisliked")]
    users += [user(f"r{i}", 30 * 86400) for i in range(5)]
    users += [user(f"ring{i}", 3600) for i in range(6)]
    users += [user(f"small{i}", 3600) for i in range(4)] + [user("oldhand", 10 * 86400)]
    pins = [pin("burster", i, T0 + i, domain="b.example") for i in range(45)]
    pins += [pin("nearburst", i, T0 + i * 2, domain="b.example") for i in range(29)]
    pins += [
        pin("copier", i, T0 + i * 30, text="Buy NOW!" if i % 2 else "buy now") for i in range(12)
    ]
    pins += [pin("nearcopier", i, T0 + i * 30, text="buy now") for i in range(9)]
    pins += [
        pin(f"ring{i}", k, T0 + 60 * i + k, domain="ring.example")
        for i in range(6)
        for k in range(3)
    ]
    pins += [pin(f"small{i}", 0, T0 + 60 * i, domain="small.example") for i in range(4)]
    pins += [pin("oldhand", 0, T0 + 30, domain="small.example")]  # old account: not counted
    for i in range(4):
        pins.append(pin(f"r{i}", 100 + i, T0 + 100 * i, action="report", target_user_id="disliked"))
    for i in range(2):
        pins.append(
            pin(f"r{i}", 200 + i, T0 + 100 * i, action="report", target_user_id="neardisliked")
        )
    pins.append(pin("r4", 300, T0 + 3700, action="report", target_user_id="neardisliked"))
    pins.append(pin("r0", 301, T0 + 600, action="report", target_user_id="neardisliked"))
    pins.sort(key=lambda p: p["ts"])
    return users, pins


def test_hand_built_scenarios_end_to_end(tmp_path):
    broker = BrokerProcess(str(tmp_path / "broker"), NO_REBALANCE_DELAY).start()
    worker = None
    try:
        url = f"kafka://{broker.bootstrap}"
        worker = start_worker(url, str(tmp_path / "w"))
        # malformed records first: skipped with a warning, the agents keep going
        bad_pins = ['{"user_id": "x"}', '{"user_id": 5, "action": "create", "ts": 1}', "[1]"]
        bad_users = ['{"user_id": "y", "created_ts": "yesterday"}']
        produce(url, "pin_events", bad_pins)
        produce(url, "users", bad_users)
        users, pins = hand_built()
        ring_users = [u for u in users if u["user_id"].startswith("ring")]
        others = [u for u in users if u not in ring_users]
        send(url, others, pins)
        send(url, ring_users, [])  # the ring's accounts arrive after their pins
        wait_processed(url, len(users) + len(bad_users), len(pins) + len(bad_pins))
        assert worker.logs().count("skipped a malformed pin_events record") == 3
        assert worker.logs().count("skipped a malformed users record") == 1
        got = Counter((f["user_id"], r) for f in flags(url) for r in f["reasons"])
        expected = {("burster", "burst"), ("copier", "duplicate_text"), ("disliked", "reports")}
        expected |= {(f"ring{i}", "domain_ring") for i in range(6)}
        assert set(got) == expected
        assert all(n == 1 for n in got.values()), got  # once per episode
        assert worker.stop() == 0, worker.logs()
    finally:
        if worker is not None:
            worker.kill()
        broker.stop()


def precision_recall(flagged: set[str], truth: set[str]) -> tuple[float, float]:
    true_positives = len(flagged & truth)
    return true_positives / max(len(flagged), 1), true_positives / max(len(truth), 1)


def test_generated_data_precision_and_recall(tmp_path):
    """The generator's CLI, one worker: precision >= 0.95 and recall >= 0.9."""
    broker = BrokerProcess(str(tmp_path / "broker"), NO_REBALANCE_DELAY).start()
    worker = None
    try:
        url = f"kafka://{broker.bootstrap}"
        worker = start_worker(url, str(tmp_path / "w"))
        truth_path = tmp_path / "truth.json"
        args = ["--rate", "40", "--duration", "90", "--seed", "7", "--start", str(T0)]
        out = subprocess.run(
            [sys.executable, "-m", "apps.spam_detection.generate", *args,
             "--broker", url, "--truth", str(truth_path), "--no-pace"],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        truth = json.loads(truth_path.read_text())
        scenario = build(7, 40, 90, T0)
        assert truth["spammers"] == dict(sorted(scenario.spammers.items()))  # from the seed
        assert sorted(set(truth["spammers"].values())) == [
            "burst", "domain_ring", "duplicate_text", "reports",
        ]  # fmt: skip
        wait_processed(url, truth["users"], truth["pin_events"])
        values = flags(url)
        flagged = {f["user_id"] for f in values}
        precision, recall = precision_recall(flagged, set(truth["spammers"]))
        assert precision >= 0.95 and recall >= 0.9, (precision, recall, flagged)
        for f in values:  # each spammer is flagged for its own kind
            assert truth["spammers"].get(f["user_id"]) in (*f["reasons"], None)
        per_reason = Counter((f["user_id"], r) for f in values for r in f["reasons"])
        assert max(per_reason.values()) == 1  # no repeats
        assert worker.stop() == 0, worker.logs()
    finally:
        if worker is not None:
            worker.kill()
        broker.stop()


def test_two_workers_four_partitions(tmp_path):
    broker = BrokerProcess(str(tmp_path / "broker"), NO_REBALANCE_DELAY).start()
    workers = []
    try:
        url = f"kafka://{broker.bootstrap}"
        workers += start_workers(url, str(tmp_path / "a"), str(tmp_path / "b"))
        for w in workers:
            w.wait_for_log(r"holding partitions: .*pin_events \[\d(, \d)?\]", timeout=60)
        scenario = build(11, 40, 90, T0)
        send(url, scenario.users, scenario.pins)
        wait_processed(url, len(scenario.users), len(scenario.pins), timeout=150)
        values = flags(url)
        flagged = {f["user_id"] for f in values}
        precision, recall = precision_recall(flagged, set(scenario.spammers))
        assert precision >= 0.95 and recall >= 0.9, (precision, recall, flagged)
        per_reason = Counter((f["user_id"], r) for f in values for r in f["reasons"])
        assert max(per_reason.values()) == 1
        # the flagged table is global: each worker's page lists every flagged user
        for w in workers:
            web = w.wait_for_log(r"web endpoint on (http://127\.0\.0\.1:\d+)").split(" on ")[1]

            def page_users(web: str = web) -> list[str]:
                with urllib.request.urlopen(web + "/spam/flagged.json", timeout=10) as answer:
                    return sorted(row["user_id"] for row in json.load(answer)["flagged"])

            wait_until(lambda: page_users() == sorted(flagged), 30, "every flag on the page")
        for w in workers:
            assert w.stop() == 0, w.logs()
    finally:
        for w in workers:
            w.kill()
        broker.stop()


def test_on_the_bundled_log_fed_through_the_workers_listener(tmp_path):
    """``file://``, as the docs run it: the generator finds the worker's listener."""
    worker = start_worker(None, str(tmp_path))
    try:
        truth_path = tmp_path / "truth.json"
        args = ["--rate", "20", "--duration", "60", "--seed", "5", "--start", str(T0)]
        out = subprocess.run(
            [sys.executable, "-m", "apps.spam_detection.generate", *args,
             "--broker", f"file://{tmp_path / '.streamlog'}", "--truth", str(truth_path),
             "--no-pace"],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        truth = json.loads(truth_path.read_text())
        # the worker holds the directory, so the generator got through only by its
        # listener (streamlog.connect); its one line on stderr is its summary
        sent = f"sent {truth['users']} users and {truth['pin_events']} pin events;"
        assert out.stderr.startswith(sent), out.stderr
        url = worker.kafka_url
        wait_processed(url, truth["users"], truth["pin_events"])
        flagged = {f["user_id"] for f in flags(url)}
        precision, recall = precision_recall(flagged, set(truth["spammers"]))
        assert precision >= 0.95 and recall >= 0.9, (precision, recall, flagged)
        assert worker.stop() == 0, worker.logs()
    finally:
        worker.kill()
