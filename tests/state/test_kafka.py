"""The commit sequence and recovery over the Kafka wire: a real ``streamlog broker``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streamlog.state.changelog import changelog_topic_name, ensure_changelog_topic
from streamlog.state.checkpoint import Checkpoint
from streamlog.state.memory_store import MemoryStorePartition
from streamlog.state.recovery import recover_partition
from streamlog.state.rocksdb_store import RocksDBStore
from streamlog.transport import TopicPartition, open_transport
from tests.broker.brokerproc import BrokerProcess

from .conftest import run

SOURCE = TopicPartition("clicks", 0)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(str(tmp_path / "broker")).start()
    try:
        yield proc
    finally:
        code = proc.stop()
        assert code == 0, f"broker exited with {code}:\n{proc.logs()}"


def test_tables_commit_and_recover_over_kafka(broker: BrokerProcess, tmp_path: Path) -> None:
    changelog = changelog_topic_name("clickapp", "per_user")
    table = RocksDBStore(str(tmp_path / "state"), "per_user")
    expected: dict[int, dict[bytes, bytes]] = {0: {}, 1: {}}

    async def body() -> tuple[int | None, int, int]:
        transport = open_transport(f"kafka://{broker.bootstrap}")
        await transport.start()
        try:
            admin = transport.admin()
            await admin.create_topic(SOURCE.topic, 1)
            info = await ensure_changelog_topic(admin, changelog, 2)
            assert len(info.partitions) == 2
            group = transport.consumer(group_id="clickapp")
            checkpoint = Checkpoint(transport.producer(), group.commit, ack_timeout_ms=30_000)
            for round_ in range(4):
                for partition in (0, 1):
                    store = table.partition(partition)
                    tx = checkpoint.transaction(store, TopicPartition(changelog, partition))
                    for user in range(50):
                        key = b"user-%d-%02d" % (partition, user)
                        if round_ == 3 and user % 10 == 0:
                            tx.delete(key)
                            expected[partition].pop(key, None)
                        else:
                            value = b"%d" % (round_ * 100 + user)
                            tx.set(key, value)
                            expected[partition][key] = value
                await checkpoint.commit({SOURCE: (round_ + 1) * 10})
            committed = await group.committed(SOURCE)
            offsets = [table.partition(p).changelog_offset() for p in (0, 1)]
            assert offsets == [199, 199]  # 4 rounds of 50 records per partition
            # lose the stores; rebuild both from the changelog over the wire
            table.partition(0).destroy()
            table.close()
            replayed = []
            for partition in (0, 1):
                fresh = MemoryStorePartition() if partition else table.partition(0)
                result = await recover_partition(
                    transport.consumer(), fresh, TopicPartition(changelog, partition)
                )
                assert dict(fresh.items()) == expected[partition]
                assert fresh.changelog_offset() == 199
                replayed.append(result.records)
            return committed, replayed[0], replayed[1]
        finally:
            await transport.close()

    assert run(body(), timeout=120) == (40, 200, 200)
    table.close()
