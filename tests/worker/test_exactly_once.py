"""Exactly-once through crashes and rebalances, counted per key.

The app is ``apps/eoscount.py``: each input adds one to its key's count in a table and
sends the running count on (``{"key", "count", "id"}``). Under exactly-once a
``read_committed`` reader of the output sees, for every key, the counts 1, 2, ..., n
each exactly once (n: the key's inputs), in order, whatever happened to the workers: no
gap (a lost input), no repeat (an input counted twice, or an aborted attempt's output).
A ``read_uncommitted`` reader sees the aborted attempts too: that they are there shows
the kills really hit open transactions, so the check above was tested.

The same check under at-least-once finds repeats after the same kills (the
``at_least_once`` case): the check can fail.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
from typing import Any

import pytest

from streamlog.transport import open_transport
from streamlog.transport.types import TopicPartition
from tests.broker.brokerproc import BrokerProcess

from .chaos import Load, create_topic
from .workerproc import APPS, WorkerProcess, start_together, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

EOSCOUNT = os.path.join(APPS, "eoscount.py")
INPUT = "eos-events"
OUTPUT = "eos-counts"
PARTITIONS = 4
KEYS = 10


async def _produce_keyed(url: str, count: int) -> None:
    """Inputs ``0..count-1``, input i keyed ``kNNN`` (i % KEYS) with its sequence number
    within the key as its value (loadgen.py's keyed form)."""
    transport = open_transport(url)
    await transport.start()
    try:
        admin = transport.admin()
        try:
            await admin.create_topic(INPUT, PARTITIONS)
        finally:
            await admin.close()
        producer = transport.producer(linger_ms=20)
        try:
            for i in range(count):
                await producer.send(INPUT, str(i // KEYS).encode(), key=f"k{i % KEYS:03d}".encode())
            await producer.flush()
        finally:
            await producer.close()
    finally:
        await transport.close()


async def _read_output(url: str, isolation: str) -> list[dict[str, Any]]:
    """Every output record a reader with ``isolation`` sees, up to the end it sees."""
    transport = open_transport(url)
    await transport.start()
    try:
        consumer = transport.consumer(isolation_level=isolation)
        partitions = [TopicPartition(OUTPUT, p) for p in range(PARTITIONS)]
        try:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            found: list[dict[str, Any]] = []
            while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
                fetched = await consumer.getmany(timeout_ms=200)
                for records in fetched.values():
                    found.extend(json.loads(r.value or b"null") for r in records)
            return found
        finally:
            await consumer.close()
    finally:
        await transport.close()


def read_output(url: str, isolation: str) -> list[dict[str, Any]]:
    return asyncio.run(asyncio.wait_for(_read_output(url, isolation), 60))


def counts_by_key(outputs: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Each key's counts in the order a reader saw them."""
    by_key: dict[str, list[int]] = collections.defaultdict(list)
    for output in outputs:
        by_key[output["key"]].append(output["count"])
    return dict(by_key)


def check_exactly_once(outputs: list[dict[str, Any]], per_key: int) -> None:
    """Every key's counts are 1..per_key once each, in order, and each count came from
    the input with that sequence number (the input's value is its sequence in the key)."""
    by_key = counts_by_key(outputs)
    assert sorted(by_key) == [f"k{k:03d}" for k in range(KEYS)]
    for key, counts in sorted(by_key.items()):
        repeats = sum(n - 1 for n in collections.Counter(counts).values() if n > 1)
        assert counts == list(range(1, per_key + 1)), (
            f"{key}: {len(counts)} outputs for {per_key} inputs, {repeats} repeated"
        )
    for output in outputs:
        assert int(output["id"]) == output["count"] - 1, output
    # the windowed table: each (key, window)'s counts are 1, 2, ... too
    windows: dict[tuple[str, int], list[int]] = collections.defaultdict(list)
    for output in outputs:
        windows[output["key"], output["window"]].append(output["window_count"])
    for (key, window), window_counts in windows.items():
        assert window_counts == list(range(1, len(window_counts) + 1)), (key, window)
    assert sum(len(c) for c in windows.values()) == len(outputs)


def counted(worker: WorkerProcess, url: str, target: int) -> int | None:
    """The committed outputs once they reach ``target`` (None before); a worker that
    exited meanwhile fails the test with its log."""
    process = worker.process
    if process is not None and process.poll() is not None:
        raise AssertionError(f"worker exited ({process.returncode}):\n{worker.logs()}")
    found = committed_outputs(url)
    return found if found >= target else None


def committed_outputs(url: str) -> int:
    try:
        return len(read_output(url, "read_committed"))
    except (OSError, TimeoutError, AssertionError):
        return 0
    except Exception:  # noqa: BLE001 - the worker's listener may be going away under us
        return 0


def _kill_repeatedly(worker: WorkerProcess, url_of: Any, kills: int, step: int) -> int:
    """Start the worker, wait for ``step`` more committed outputs, kill -9; ``kills``
    times. Returns the committed outputs at the last kill."""
    seen = 0
    for _ in range(kills):
        worker.start()
        url = url_of(worker)
        target = seen + step
        seen = wait_until(
            lambda url=url, target=target: counted(worker, url, target),
            60,
            f"{target} committed outputs",
        )
        worker.kill()
        assert worker.returncode == -9
    return seen


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_kill_9_repeatedly_on_the_bundled_log_counts_every_input_once(tmp_path, guarantee):
    inputs = 6_000
    per_key = inputs // KEYS
    url = f"file://{tmp_path / 'log'}"
    asyncio.run(asyncio.wait_for(_produce_keyed(url, inputs), 60))
    worker = WorkerProcess(
        EOSCOUNT,
        url,
        str(tmp_path),
        env={"EOSCOUNT_PAUSE": "0.05", "EOSCOUNT_GUARANTEE": guarantee},
    )
    try:
        at_last_kill = _kill_repeatedly(worker, lambda w: w.kafka_url, kills=3, step=600)
        assert at_last_kill < inputs, "the kills came too late to test anything"
        worker.env["EOSCOUNT_PAUSE"] = "0"
        worker.start()
        listener = worker.kafka_url
        wait_until(lambda: counted(worker, listener, inputs), 60, "every input counted")
        assert worker.stop() == 0
    finally:
        worker.kill()
    committed = read_output(url, "read_committed")
    if guarantee == "at_least_once":  # the same kills: the check finds repeats
        with pytest.raises(AssertionError, match="repeated"):
            check_exactly_once(committed, per_key)
        return
    check_exactly_once(committed, per_key)
    everything = read_output(url, "read_uncommitted")
    # the aborted attempts of the killed workers, visible to read_uncommitted only
    assert len(everything) > len(committed) == inputs
    assert {json.dumps(o, sort_keys=True) for o in committed} <= {
        json.dumps(o, sort_keys=True) for o in everything
    }


def test_two_workers_a_kill_a_join_and_a_leave_on_a_broker_count_every_input_once(tmp_path):
    """Input flows from a load generator into a ``streamlog broker`` throughout; two
    workers split it; one is killed with SIGKILL and restarted (its transaction aborted by
    its successor's ``init_transactions``), a third joins, the second leaves: three
    rebalances and a crash, and still every count once."""
    inputs, rate = 6_000, 300.0
    per_key = inputs // KEYS
    broker = BrokerProcess(str(tmp_path / "broker"))
    workers: dict[str, WorkerProcess] = {}
    load: Load | None = None

    def worker(name: str) -> WorkerProcess:
        if name not in workers:
            home = tmp_path / name
            home.mkdir()
            workers[name] = WorkerProcess(
                EOSCOUNT,
                url,
                str(home),
                ("--data-dir", str(home / "data")),
                env={"EOSCOUNT_SESSION_TIMEOUT": "6"},
            )
        return workers[name]

    def progress(more: int) -> None:
        target = min(committed_outputs(url) + more, inputs)
        wait_until(lambda: committed_outputs(url) >= target, 60, f"{target} committed outputs")

    try:
        broker.start()
        url = f"kafka://{broker.bootstrap}"
        create_topic(url, INPUT, PARTITIONS)
        load = Load(
            broker.bootstrap, inputs, rate, str(tmp_path / "load.log"), topic=INPUT, keys=KEYS
        ).start()
        start_together([worker("a"), worker("b")])
        progress(500)
        worker("a").kill()
        assert worker("a").returncode == -9
        worker("a").start()
        progress(500)
        worker("c").start()
        progress(500)
        assert worker("b").stop() == 0
        load.wait(60)
        wait_until(lambda: committed_outputs(url) >= inputs, 90, "every input counted")
        for name in ("a", "c"):
            assert worker(name).stop() == 0
        committed = read_output(url, "read_committed")
        check_exactly_once(committed, per_key)
        # what read_uncommitted readers see holds every committed output (and, when the kill
        # caught worker a's transaction holding records, their aborted first attempt: the
        # bundled-log test above checks that the kills do)
        everything = read_output(url, "read_uncommitted")
        assert len(everything) >= len(committed) == inputs
        assert {json.dumps(o, sort_keys=True) for o in committed} <= {
            json.dumps(o, sort_keys=True) for o in everything
        }
    finally:
        if load is not None:
            load.kill()
        for each in workers.values():
            each.kill()
        broker.stop()


async def _list_transactions(bootstrap: str) -> dict[str, str]:
    """ListTransactions through a listener: transactional id -> state."""
    from streamlog.protocol import ApiKey
    from streamlog.transport.kafka.connection import Connection

    host, port = bootstrap.rsplit(":", 1)
    conn = await Connection(host, int(port), client_id="eos-test").open()
    try:
        answer: Any = await conn.request(
            conn.build(ApiKey.LIST_TRANSACTIONS, state_filters=[], producer_id_filters=[])
        )
        assert int(answer.error_code) == 0
        return {
            str(t.transactional_id): str(t.transaction_state) for t in answer.transaction_states
        }
    finally:
        conn.close()


def test_the_workers_kafka_listener_shares_its_transaction_coordinator(tmp_path):
    """On file:// the worker's log is also served over the Kafka protocol; its transaction
    coordinator is the app's own (one per data directory): the listener lists the
    worker's transactional id, which a second coordinator, loaded when the listener
    started, would not know."""
    url = f"file://{tmp_path / 'log'}"
    asyncio.run(asyncio.wait_for(_produce_keyed(url, 500), 60))
    worker = WorkerProcess(EOSCOUNT, url, str(tmp_path))
    try:
        worker.start()
        transactional_id = worker.wait_for_log(r"transactional id (\S+)").split()[-1]
        listener = worker.listener()
        wait_until(lambda: committed_outputs(worker.kafka_url) >= 500, 60, "every input counted")
        states = asyncio.run(asyncio.wait_for(_list_transactions(listener), 20))
        assert transactional_id in states, states
        assert states[transactional_id] in {"Ongoing", "CompleteCommit", "Empty"}
        assert worker.stop() == 0
    finally:
        worker.kill()
