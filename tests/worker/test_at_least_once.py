"""At-least-once through a crash: a worker copying 20,000 inputs one-for-one
(``apps/echo.py``) is killed with SIGKILL part-way, then restarted to the end.

Every input must be in the output; an input at or after the committed offset of its
partition at the time of the kill may be there twice (processed, output written, commit
lost), one before it exactly once."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import urllib.request

import pytest

from streamlog.transport import open_transport

from .workerproc import APPS, WorkerProcess, group_offsets, read_topic, wait_until

ECHO = os.path.join(APPS, "echo.py")
INPUTS = 20_000
PARTITIONS = 4


async def _fill(url: str) -> None:
    """``ids`` with 4 partitions, ids spread round-robin over them."""
    transport = open_transport(url)
    await transport.start()
    try:
        admin = transport.admin()
        try:
            await admin.create_topic("ids", PARTITIONS)
        finally:
            await admin.close()
        producer = transport.producer(linger_ms=20)
        try:
            pending = [
                await producer.send("ids", f"{i:05d}".encode(), partition=i % PARTITIONS)
                for i in range(INPUTS)
            ]
            await producer.flush()
            for result in pending:
                await result
        finally:
            await producer.close()
    finally:
        await transport.close()


def committed(url: str) -> dict[int, int]:
    return {tp.partition: o for tp, o in group_offsets(url, "echo").items() if tp.topic == "ids"}


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigkill_part_way_then_restart_loses_nothing(tmp_path):
    url = f"file://{tmp_path / 'log'}"
    asyncio.run(asyncio.wait_for(_fill(url), 60))
    # paused 10 ms every 100 records, the first run needs 2 s or more for the whole input
    worker = WorkerProcess(
        ECHO, url, str(tmp_path), ("--lag-interval", "0.1"), env={"ECHO_PAUSE": "0.01"}
    )
    try:
        worker.start()
        listener = worker.kafka_url
        wait_until(
            lambda: sum(committed(listener).values()) >= INPUTS // 4, 60, "a quarter committed"
        )
        # the lag report counts what is not processed yet, fetched or not
        lag = worker.wait_for_log(r"lag: [1-9]\d* record\(s\) behind \(ids=\d+\)")
        worker.kill()
        assert worker.returncode == -9
        at_kill = committed(url)
        written_before = len(read_topic(url, "echoed"))
        assert sum(at_kill.values()) < INPUTS, "the kill came too late to test anything"
        # the commit sequence: an input is committed only once its output is in the log
        assert written_before >= sum(at_kill.values())

        worker.env = {}
        worker.extra_args = ()
        worker.start()
        listener = worker.kafka_url
        wait_until(lambda: sum(committed(listener).values()) == INPUTS, 60, "all committed")
        assert worker.stop() == 0, worker.logs()
    finally:
        worker.kill()

    where = {r.value: (r.partition, r.offset) for r in read_topic(url, "ids")}
    assert len(where) == INPUTS
    copies = collections.Counter(r.value for r in read_topic(url, "echoed"))
    assert set(copies) == set(where)  # nothing lost
    for value, count in copies.items():
        partition, offset = where[value]
        if offset < at_kill.get(partition, 0):
            assert count == 1, (value, partition, offset, at_kill)  # committed: not redone
        else:
            assert count in (1, 2), (value, count)
    duplicates = sum(copies.values()) - INPUTS
    after_commit = INPUTS - sum(at_kill.values())
    behind = int(lag.split()[1])
    assert 0 < behind <= INPUTS
    print(
        f"\nat-least-once: killed after {written_before} outputs with {sum(at_kill.values())} "
        f"inputs committed; {duplicates} duplicate(s) among the {after_commit} inputs after "
        "the last commit"
    )
    assert committed(url) == {p: INPUTS // PARTITIONS for p in range(PARTITIONS)}


@pytest.mark.timeout(60)
def test_a_slow_agent_holds_back_the_fetching(tmp_path):
    url = f"file://{tmp_path / 'log'}"
    asyncio.run(asyncio.wait_for(_fill(url), 60))
    # 20 ms every 100 records: 4 s or more for the input
    worker = WorkerProcess(
        ECHO, url, str(tmp_path), ("--web-port", "0"), env={"ECHO_PAUSE": "0.02"}
    )
    try:
        worker.start()
        port = int(worker.wait_for_log(r"web endpoint on http://127\.0\.0\.1:\d+").split(":")[-1])
        listener = worker.kafka_url
        done = wait_until(lambda: sum(committed(listener).values()), 30, "a first commit")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as response:
            fetched = json.load(response)["records_fetched"]
        assert worker.stop() == 0, worker.logs()
    finally:
        worker.kill()
    # Fetched but not processed: at most the agent's inbox (stream_inbox_batches = 8
    # batches of broker_max_poll_records = 500), the batch in hand and one fetch on its
    # way; plus what was processed between the two samples (generously 1,000).
    assert fetched - done <= (8 + 2) * 500 + 1_000, (fetched, done)
