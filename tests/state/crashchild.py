"""The child process of ``test_crash.py``: commits table changes until it is killed.

Run as ``python -m tests.state.crashchild BROKER_DIR STATE_DIR``. Commit number k
applies ``changes(k)`` to one RocksDB table partition through a ``Checkpoint`` over a
``file://`` transport and commits source offset k + 1; it then prints k. It never stops
by itself: the test SIGKILLs it.
"""

from __future__ import annotations

import asyncio
import os
import sys

from streamlog.state.changelog import ensure_changelog_topic
from streamlog.state.checkpoint import Checkpoint
from streamlog.state.rocksdb_store import RocksDBStorePartition
from streamlog.transport import TopicPartition, open_transport

SOURCE = TopicPartition("orders", 0)
CHANGELOG = TopicPartition("crash-table-changelog", 0)
GROUP = "crash"


def changes(k: int) -> dict[bytes, bytes | None]:
    """What commit number ``k`` does: a counter, a rotating key, a bulk of overwrites and,
    every fifth commit, a delete."""
    out: dict[bytes, bytes | None] = {b"counter": b"%d" % k, b"key-%03d" % (k % 97): b"v%d" % k}
    for j in range(20):
        out[b"bulk-%02d" % j] = b"%d-%d" % (k, j)
    if k % 5 == 4:
        out[b"key-%03d" % ((k * 7) % 97)] = None
    return out


def model(last: int) -> list[tuple[bytes, bytes]]:
    """The table after commits 0..last."""
    state: dict[bytes, bytes] = {}
    for k in range(last + 1):
        for key, value in changes(k).items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
    return sorted(state.items())


def records_through(last: int) -> int:
    """Changelog records produced by commits 0..last."""
    return sum(len(changes(k)) for k in range(last + 1))


async def main(broker_dir: str, state_dir: str) -> None:
    transport = open_transport(f"file://{broker_dir}")
    await transport.start()
    admin = transport.admin()
    await admin.create_topic(SOURCE.topic, 1)
    await ensure_changelog_topic(admin, CHANGELOG.topic, 1)
    producer = transport.producer(linger_ms=1)
    consumer = transport.consumer(group_id=GROUP)
    store = RocksDBStorePartition(os.path.join(state_dir, "0"))
    checkpoint = Checkpoint(producer, consumer.commit)
    k = 0
    while True:
        tx = checkpoint.transaction(store, CHANGELOG)
        for key, value in changes(k).items():
            if value is None:
                tx.delete(key)
            else:
                tx.set(key, value)
        await checkpoint.commit({SOURCE: k + 1})
        sys.stdout.write(f"{k}\n")
        sys.stdout.flush()
        k += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
