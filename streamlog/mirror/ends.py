"""Where a target partition ends, even on a cluster whose ListOffsets says otherwise.

The mirror compares each target partition's end with its checkpoint (a partition that
ends before it was emptied or recreated) and reads the records after the checkpoint to
match them. Kafka and ``streamlog broker`` answer ListOffsets(latest) with the log end
offset; Tansu answers the last batch's base offset + 1, behind every record of that batch
but its first, so a mirror into Tansu took every restart for a recreated topic. A fetch's
high watermark is right everywhere, and a consumer's ``end_offsets`` never answers below
one it has seen (read_uncommitted, ``transport/kafka/consumer.py``): so each partition
that holds anything is read once from its listed end - 1 (the first offset of Tansu's
last batch; Kafka's last record), and then asked again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from streamlog.transport.base import Transport
from streamlog.transport.types import TopicPartition

__all__ = ["PROBE_TIMEOUT_S", "log_ends"]

# How long to wait for the probe's records: a partition whose last batch holds no record
# (a transaction marker written by another producer) returns none, and its fetches' high
# watermarks have come back long before this.
PROBE_TIMEOUT_S = 5.0


async def log_ends(
    transport: Transport, tps: Sequence[TopicPartition], client_id: str
) -> dict[TopicPartition, int]:
    """The log end offset of each of ``tps`` on ``transport`` (all existing partitions)."""
    consumer = transport.consumer(client_id=client_id, isolation_level="read_uncommitted")
    try:
        listed = await consumer.end_offsets(tps)
        probed = {tp for tp in tps if listed[tp] > 0}
        if not probed:
            return listed
        consumer.assign(probed)
        for tp in probed:
            consumer.seek(tp, listed[tp] - 1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PROBE_TIMEOUT_S
        waiting = set(probed)
        while waiting:
            left = deadline - loop.time()
            if left <= 0:
                break
            batch = await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000), max_records=1)
            waiting -= set(batch)
        ends = await consumer.end_offsets(probed)
        return {tp: max(listed[tp], ends.get(tp, 0)) for tp in tps}
    finally:
        await consumer.close()
