"""The probe's maintenance case against a real broker: a partition that cannot be
compacted must not keep another topic's records past ``retention.ms``.

The log-level tests (tests/log/test_maintenance.py) move a manual clock; this one runs
the broker's own maintenance thread on real time, so it waits (on a condition, with a
deadline) for a 2 s ``retention.ms`` to take effect.
"""

from __future__ import annotations

import os
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as CkPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .brokerproc import BrokerProcess


def produce(bootstrap: str, topic: str, count: int, keyed: bool) -> None:
    """``count`` records, one batch each (so that small segments roll)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(count):
        producer.produce(topic, b"v-%d" % i, key=b"k-%d" % (i % 3) if keyed else None)
        assert producer.flush(20) == 0


def test_a_partition_that_cannot_be_compacted_does_not_stop_retention(tmp_path) -> None:
    broker = BrokerProcess(str(tmp_path / "data")).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        compacted = {
            "cleanup.policy": "compact",
            "segment.bytes": "2000",
            "min.cleanable.dirty.ratio": "0.01",
        }
        futures = admin.create_topics(
            [
                NewTopic("a-compacted", 1, 1, config=compacted),
                NewTopic("z-retained", 1, 1, config={"retention.ms": "2000"}),
            ]
        )
        for future in futures.values():
            future.result(10)
        produce(broker.bootstrap, "a-compacted", 60, keyed=True)
        # Damage: the first segment of a-compacted removed underneath the running broker
        # (the cleaner cannot swap a cleaned copy in for it).
        directory = tmp_path / "data" / "a-compacted-0"
        first = min(p for p in os.listdir(directory) if p.endswith(".log"))
        os.unlink(directory / first)
        produce(broker.bootstrap, "z-retained", 30, keyed=False)

        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
        try:
            deadline = time.monotonic() + 30
            low = high = -1
            while time.monotonic() < deadline:
                low, high = consumer.get_watermark_offsets(CkPartition("z-retained", 0), 10)
                if low == high == 30:
                    break
                time.sleep(0.2)  # polling the broker's state: there is nothing to wait on
        finally:
            consumer.close()
        assert (low, high) == (30, 30), "retention never ran for z-retained"
        logs = broker.logs()
        # one ERROR with the traceback; retries (with backoff) only warn
        assert (
            logs.count("ERROR streamlog.log.maintenance: a-compacted-0: compaction failed (") == 1
        )
        assert "FileNotFoundError" in logs
        assert broker.process is not None and broker.process.poll() is None
        assert os.path.exists(tmp_path / "data" / "a-compacted-0")
    finally:
        assert broker.stop() == 0, broker.logs()
