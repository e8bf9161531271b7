"""``streamlog migrate`` end to end: an app run by ``streamlog worker`` on its bundled log,
stopped part-way, migrated to a real ``streamlog broker``, resumed there, then migrated
back onto a new ``file://`` log and resumed again.

After each move the checks are those of a never-migrated run: every input's output
exactly once (no reprocessing, nothing lost), the tables equal to a count of all inputs
(in the stores and in the changelogs), and the group's committed offsets on the target
where the source had them. The app is refused while its worker runs.

The exactly-once variant has transaction markers in every source partition, which the
mirror does not copy: target offsets differ from source offsets, so the group offsets
and the table stores' changelog offsets must be translated, not copied. A store left at
its source offset looks ahead of its changelog on the target and is rebuilt from scratch
(``test_migrate_stores.py`` shows it), so the worker's log saying every store was up to
date proves the translation.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re

import pytest

from streamlog.state.rocksdb_store import RocksDBStorePartition
from streamlog.transport import open_transport
from streamlog.transport.types import TopicPartition
from tests.broker.brokerproc import NO_REBALANCE_DELAY, BrokerProcess
from tests.broker.secure_brokers import USERS, sasl_broker
from tests.broker.tansuproc import running_tansu
from tests.worker.test_exactly_once import check_exactly_once, read_output
from tests.worker.workerproc import (
    APPS,
    WorkerProcess,
    group_offsets,
    read_topic,
    run_cli,
    wait_until,
)

__all__ = ["sasl_broker"]  # the fixture, re-exported for pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TABLECOUNT = os.path.join(APPS, "tablecount.py")
SHOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps", "shop.py")
EOSCOUNT = os.path.join(APPS, "eoscount.py")
KEYS = 10
BATCH = 300  # inputs per phase


async def _produce_keyed(url: str, topic: str, first: int, count: int, eos: bool) -> None:
    """Inputs ``first..first+count-1``: input i keyed ``k<i % KEYS>``, valued ``i``; for
    ``eos``, keyed ``kNNN`` and valued with its sequence number within its key (the
    inputs ``test_exactly_once.check_exactly_once`` checks the outputs of)."""
    transport = open_transport(url)
    await transport.start()
    try:
        producer = transport.producer(linger_ms=5)
        try:
            pending = [
                await producer.send(
                    topic,
                    str(i // KEYS if eos else i).encode(),
                    key=(f"k{i % KEYS:03d}" if eos else f"k{i % KEYS}").encode(),
                )
                for i in range(first, first + count)
            ]
            await producer.flush()
            for result in pending:
                await result
        finally:
            await producer.close()
    finally:
        await transport.close()


def produce_keyed(url: str, topic: str, first: int, count: int, eos: bool = False) -> None:
    asyncio.run(asyncio.wait_for(_produce_keyed(url, topic, first, count, eos), 60))


def expected_counts(inputs: int) -> dict[str, int]:
    """The ``counts`` table of a run that counted inputs ``0..inputs-1``, never moved."""
    return dict(collections.Counter(f"k{i % KEYS}" for i in range(inputs)))


def processed_ids(url: str, at_least: int) -> list[int]:
    return sorted(int(r.value or b"") for r in read_topic(url, "processed", at_least, 60))


def changelog_counts(url: str) -> dict[str, int]:
    """The ``counts`` table as its changelog holds it: each key's last value."""
    table: dict[str, int] = {}
    for record in read_topic(url, "tablecount-counts-changelog"):
        key = json.loads(record.key or b"")
        if record.value is None:
            table.pop(key, None)
        else:
            table[key] = json.loads(record.value)
    return table


def store_counts(tables_dir: str) -> dict[str, int]:
    """The ``counts`` table as the stores under ``tables_dir`` hold it (worker stopped)."""
    table: dict[str, int] = {}
    directory = os.path.join(tables_dir, "counts")
    for name in sorted(os.listdir(directory)):
        store = RocksDBStorePartition(os.path.join(directory, name))
        try:
            for key, value in store.items():
                table[json.loads(key)] = json.loads(value)
        finally:
            store.close()
    return table


def end_offsets(url: str, topic: str, partitions: int) -> dict[TopicPartition, int]:
    async def run() -> dict[TopicPartition, int]:
        transport = open_transport(url)
        await transport.start()
        try:
            consumer = transport.consumer()
            try:
                tps = [TopicPartition(topic, p) for p in range(partitions)]
                return await consumer.end_offsets(tps)
            finally:
                await consumer.close()
        finally:
            await transport.close()

    return asyncio.run(asyncio.wait_for(run(), 60))


def migrate(app: str, cwd: str, *args: str) -> str:
    out = run_cli("migrate", app, *args, cwd=cwd, timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def until_processed(worker: WorkerProcess, url: str, count: int) -> list[int]:
    ids = processed_ids(url, count)
    assert ids == list(range(count)), f"{len(ids)} outputs for {count} inputs:\n{worker.logs()}"
    return ids


def test_an_app_moves_to_a_broker_and_back_without_reprocessing(tmp_path: str) -> None:
    workdir = str(tmp_path)
    broker = BrokerProcess(os.path.join(workdir, "broker"), NO_REBALANCE_DELAY).start()
    kafka = f"kafka://{broker.bootstrap}"
    back = f"file://{workdir}/back"
    worker = WorkerProcess(TABLECOUNT, None, workdir)
    try:
        # 1. on the bundled log (the app's default, ./.streamlog): the first batch
        worker.start()
        produce_keyed(worker.kafka_url, "events", 0, BATCH)
        until_processed(worker, worker.kafka_url, BATCH)
        refused = run_cli("migrate", TABLECOUNT, "--to", kafka, cwd=workdir)
        assert refused.returncode == 1
        assert "is in use by process" in refused.stderr
        assert "stop the app's worker first" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert worker.stop() == 0

        # 2. to the broker
        out = migrate(TABLECOUNT, workdir, "--to", kafka)
        assert f"migrated app tablecount from file://./.streamlog to {kafka}" in out
        topics = re.search(r"topics: \d+ \((.*)\)", out)
        assert topics is not None
        assert topics.group(1).split(", ") == [
            "events",
            "processed",
            "tablecount-__assignor-__leader",
            "tablecount-counts-changelog",
            "tablecount-windows-changelog",
        ]
        source_offsets = group_offsets("file://" + worker.data_dir, "tablecount")
        assert sum(o for tp, o in source_offsets.items() if tp.topic == "events") == BATCH
        # no transactions here: the same offsets on both sides
        assert group_offsets(kafka, "tablecount") == source_offsets
        stores = os.path.join(workdir, "tablecount-data", "tables")
        again = run_cli("migrate", TABLECOUNT, "--to", kafka, cwd=workdir)
        assert again.returncode == 1
        assert "table stores of counts, windows already exist in" in again.stderr
        assert store_counts(stores) == expected_counts(BATCH)
        assert f"-> {os.path.join('tablecount-data', 'tables')}" in out

        # 3. resumed on the broker: the second batch
        worker.broker = kafka
        worker.start()
        produce_keyed(kafka, "events", BATCH, BATCH)
        until_processed(worker, kafka, 2 * BATCH)
        refused = run_cli("migrate", TABLECOUNT, "--from", kafka, "--to", back, cwd=workdir)
        assert refused.returncode == 1
        assert f"group tablecount has 1 active member(s) on {kafka}" in refused.stderr
        assert not os.path.exists(os.path.join(workdir, "back"))  # nothing made there
        assert worker.stop() == 0
        assert "discarded and rebuilt" not in worker.logs()
        assert store_counts(stores) == expected_counts(2 * BATCH)
        assert changelog_counts(kafka) == expected_counts(2 * BATCH)
        committed = group_offsets(kafka, "tablecount")
        assert sum(o for tp, o in committed.items() if tp.topic == "events") == 2 * BATCH
        assert processed_ids(kafka, 2 * BATCH) == list(range(2 * BATCH))

        # 4. back onto a new bundled log: the third batch
        out = migrate(TABLECOUNT, workdir, "--from", kafka, "--to", back)
        assert f"migrated app tablecount from {kafka} to {back}" in out
        assert group_offsets(back, "tablecount") == committed
        back_stores = os.path.join(workdir, "back", "state", "tablecount", "tables")
        assert store_counts(back_stores) == expected_counts(2 * BATCH)
        worker.broker = back
        worker.start()
        produce_keyed(worker.kafka_url, "events", 2 * BATCH, BATCH)
        until_processed(worker, worker.kafka_url, 3 * BATCH)
        assert worker.stop() == 0
        assert "discarded and rebuilt" not in worker.logs()
        assert store_counts(back_stores) == expected_counts(3 * BATCH)
        assert changelog_counts(back) == expected_counts(3 * BATCH)
        assert processed_ids(back, 3 * BATCH) == list(range(3 * BATCH))
    finally:
        worker.kill()
        broker.stop()


def test_an_exactly_once_app_moves_with_its_offsets_translated(tmp_path: str) -> None:
    """Also: the worker is given ``--data-dir`` on both logs, so the stores are rewritten
    where they are, and the originals kept aside."""
    workdir = str(tmp_path)
    broker = BrokerProcess(os.path.join(workdir, "broker"), NO_REBALANCE_DELAY).start()
    kafka = f"kafka://{broker.bootstrap}"
    data_dir = os.path.join(workdir, "state")
    worker = WorkerProcess(EOSCOUNT, None, workdir, extra_args=("--data-dir", data_dir))
    per_key = 2 * BATCH // KEYS
    try:
        worker.start()
        # in three transactions at least (each waited for): markers between the records
        # of each changelog partition
        for first in range(0, BATCH, BATCH // 3):
            produce_keyed(worker.kafka_url, "eos-events", first, BATCH // 3, eos=True)
            wait_outputs(worker.kafka_url, first + BATCH // 3)
        assert worker.stop() == 0
        source = "file://" + worker.data_dir
        source_committed = group_offsets(source, "eoscount")

        out = migrate(EOSCOUNT, workdir, "--to", kafka, "--data-dir", data_dir)
        tables = os.path.join(data_dir, "tables")
        assert f"table stores: in place ({tables})" in out
        kept = os.path.join(data_dir, "tables.before-migrate")
        assert sorted(os.listdir(kept)) == sorted(os.listdir(tables)) == ["counts", "windows"]

        # the inputs came from a plain producer: the same offsets on both sides
        events = [tp for tp in source_committed if tp.topic == "eos-events"]
        assert len(events) == 4
        assert {tp: group_offsets(kafka, "eoscount")[tp] for tp in events} == {
            tp: source_committed[tp] for tp in events
        }
        assert sum(source_committed[tp] for tp in events) == BATCH
        # what the app wrote carries a commit marker per transaction on the source only
        outputs_there = end_offsets(source, "eos-counts", 4)
        outputs_here = end_offsets(kafka, "eos-counts", 4)
        assert sum(outputs_here.values()) == BATCH < sum(outputs_there.values())
        rows = re.findall(r"^\s+(counts|windows)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", out, re.M)
        assert len(rows) == 8, out  # 2 tables x 4 partitions, each with an offset
        assert all(int(target) < int(src) for _, _, src, target in rows), out

        worker.broker = kafka
        worker.start()
        produce_keyed(kafka, "eos-events", BATCH, BATCH, eos=True)
        wait_outputs(kafka, 2 * BATCH)
        assert worker.stop() == 0
        logs = worker.logs()
        assert "discarded and rebuilt" not in logs
        assert len(re.findall(r"table store for .* is up to date", logs)) >= len(rows)
        check_exactly_once(read_output(kafka, "read_committed"), per_key)
    finally:
        worker.kill()
        broker.stop()


def wait_outputs(url: str, count: int) -> None:
    """Until ``eos-counts`` holds ``count`` committed outputs."""
    wait_until(lambda: len(read_output(url, "read_committed")) >= count, 60, f"{count} outputs")


def test_an_app_moves_onto_tansu(tmp_path: str) -> None:
    """A Kafka broker written by others (tests/broker/tansuproc.py; skipped without it)."""
    workdir = str(tmp_path)
    worker = WorkerProcess(TABLECOUNT, None, workdir, env={"TABLECOUNT_SESSION_TIMEOUT": "4"})
    with running_tansu(tmp_path) as tansu:
        try:
            worker.start()
            produce_keyed(worker.kafka_url, "events", 0, BATCH)
            until_processed(worker, worker.kafka_url, BATCH)
            assert worker.stop() == 0
            source_offsets = group_offsets("file://" + worker.data_dir, "tablecount")

            migrate(TABLECOUNT, workdir, "--to", tansu.url)

            assert group_offsets(tansu.url, "tablecount") == source_offsets
            worker.broker = tansu.url
            worker.start()
            produce_keyed(tansu.url, "events", BATCH, BATCH)
            until_processed(worker, tansu.url, 2 * BATCH)
            assert worker.stop() == 0
            assert "discarded and rebuilt" not in worker.logs()
            stores = os.path.join(workdir, "tablecount-data", "tables")
            assert store_counts(stores) == expected_counts(2 * BATCH)
            assert changelog_counts(tansu.url) == expected_counts(2 * BATCH)
        finally:
            worker.kill()


def test_logins_are_the_targets_and_with_from_the_sources(
    sasl_broker: BrokerProcess, tmp_path: str
) -> None:
    """As with ``streamlog mirror``: ``--sasl-*`` logs in to the target, ``--from-sasl-*``
    to the source (tests/mirror/apps/shop.py, whose orders were never processed)."""
    local, back = f"file://{tmp_path}/local", f"file://{tmp_path}/back"
    remote = f"kafka://{sasl_broker.bootstrap}"
    created = run_cli("topics", "create", "shop-orders", "--partitions", "2", "-b", local)
    assert created.returncode == 0, created.stderr
    orders = "ann:book\nbob:pen\nann:lamp\n"
    sent = run_cli("produce", "shop-orders", "-k", ":", "-b", local, input=orders)
    assert sent.returncode == 0, sent.stderr
    login = ["--sasl-mechanism", "SCRAM-SHA-256", "--sasl-username", "alice"]
    login += ["--sasl-password", USERS["alice"]]

    out = migrate(SHOP, str(tmp_path), "--from", local, "--to", remote, *login)
    assert "topics: 1 (shop-orders); 3 records" in out
    assert "not on the source, not copied: shop-__assignor-__leader, shop-bill-dlq" in out

    refused = run_cli("migrate", SHOP, "--from", remote, "--to", back, *login, cwd=tmp_path)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("Error: ") and refused.stderr.count("\n") == 1
    source_login = ["--from-sasl-mechanism", "PLAIN", "--from-sasl-username", "bob"]
    out = run_cli(
        "migrate", SHOP, "--from", remote, "--to", back, *source_login,
        cwd=tmp_path, env={"STREAMLOG_FROM_SASL_PASSWORD": USERS["bob"]},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"migrated app shop from {remote} to {back}" in out.stdout
    copied = run_cli("consume", "shop-orders", "--from-beginning", "--timeout-ms", "500",
                     "-k", ":", "-b", back)  # fmt: skip
    assert sorted(copied.stdout.splitlines()) == ["ann:book", "ann:lamp", "bob:pen"]
