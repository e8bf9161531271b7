"""Fault injection: the worker's guarantees the way they fail in production. A steady load
(``loadgen.py``, confluent-kafka) flows into the ledger app (``apps/ledger.py``) on a real
``streamlog broker`` while workers join, leave, are killed or paused past their session,
and the broker restarts. Afterwards every input is counted (``chaos.Ledger``):

- no input is missing from the table or the output (nothing lost);
- no bucket of the re-keyed (``group_by``) table counts fewer inputs than it holds (no
  table write lost, e.g. to a dropped worker overwriting its successor's changelog);
- records processed twice are at most those after the committed offsets at each kill,
  pause or broker restart (measured from outside) plus those the workers processed past
  their last commit of partitions they gave up (they log how many): at-least-once, only
  what the last commit allows is done again.

Scenarios are paced by the load's progress, not by the clock. ``-s`` prints the counts.
"""

from __future__ import annotations

import pytest

from .chaos import LedgerRun
from .workerproc import wait_until

RATE = 200.0  # inputs/s


def _at(run: LedgerRun, acked: int) -> None:
    """Until the load generator has had ``acked`` inputs acknowledged."""
    wait_until(lambda: run.acked() >= acked, 120, f"{acked} inputs acknowledged", interval=0.1)


def _check(run: LedgerRun, what: str) -> None:
    assert run.load is not None
    run.load.wait(180)
    run.wait_drained(180)
    codes = run.stop_all()
    assert all(code == 0 for code in codes.values()), (codes, run.logs())
    ledger = run.ledger()
    handed_over = run.logged_redo()
    print(
        f"\n{what}: {run.inputs} inputs, {len(ledger.missing)} missing, "
        f"{ledger.duplicates} processed twice, {ledger.bucket_duplicates} counted twice "
        f"through group_by; allowed: {run.redo_allowance} and {run.bucket_allowance} after "
        f"failures, plus {handed_over} handed over uncommitted"
    )
    assert ledger.missing == [], run.logs()
    assert ledger.unknown == []
    assert ledger.short_buckets == {}, run.logs()
    assert ledger.duplicates <= run.redo_allowance + handed_over
    assert 0 <= ledger.bucket_duplicates <= run.bucket_allowance + handed_over


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_workers_joining_leaving_and_killed_lose_nothing(tmp_path):
    """Three workers come and go (SIGTERM and kill -9); tables in memory, so every new
    assignment recovers its partitions from the changelogs (the slow path)."""
    run = LedgerRun(str(tmp_path), inputs=5000, rate=RATE, store="memory://", pause=0.03)
    try:
        run.start_broker()
        run.worker("w1").start()
        run.start_load()
        _at(run, 500)
        run.worker("w2").start()
        _at(run, 1000)
        run.worker("w3").start()
        _at(run, 1600)
        run.kill("w2")
        _at(run, 2200)
        assert run.workers["w3"].stop() == 0
        _at(run, 2800)
        run.worker("w2").start()
        _at(run, 3400)
        run.kill("w1")
        _at(run, 4000)
        run.worker("w1").start()
        _check(run, "joins, leaves and kills")
    finally:
        run.close()


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_broker_restarts_under_two_workers_lose_nothing(tmp_path):
    """The broker is stopped (SIGTERM) and killed (SIGKILL) under load; it forgets the
    group, so both workers find their membership gone and rejoin; neither exits."""
    run = LedgerRun(str(tmp_path), inputs=4000, rate=RATE, pause=0.03)
    try:
        run.start_broker()
        run.start_workers("w1", "w2")
        run.start_load()
        _at(run, 800)
        run.bounce_broker(down=3.0, kill=False)
        _at(run, 2000)
        run.bounce_broker(down=3.0, kill=True)
        _at(run, 3200)
        assert all(w.process is not None and w.process.poll() is None for w in run.workers.values())
        _check(run, "broker restarts")
    finally:
        run.close()


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_worker_paused_past_its_session_drops_its_work_and_rejoins(tmp_path):
    """SIGSTOP past the session timeout: the group gives the partitions to the other
    worker. On SIGCONT the paused worker learns it lost them, commits nothing of them
    (its changelog writes would overwrite its successor's), rejoins, and goes on."""
    run = LedgerRun(str(tmp_path), inputs=3000, rate=RATE, pause=0.03)
    try:
        run.start_broker()
        run.start_workers("w1", "w2")
        run.start_load()
        _at(run, 800)
        run.suspend("w2", 9.0)  # the app's session timeout is 6 s
        run.workers["w2"].wait_for_log("partitions lost", 60)
        _check(run, "a paused worker")
        assert "partitions lost" in run.workers["w2"].logs()
    finally:
        run.close()
