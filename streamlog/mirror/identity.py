"""Whether a mirror's source and target are one log reached twice.

The same broker under two addresses (``127.0.0.1`` and ``localhost``, a DNS alias, a
worker's ``file://`` directory and its Kafka listener) looks like two logs by URL, and a
mirror between them appends every record to its own topic again (a continuous one then
copies its copies, for ever). Neither transport names the cluster it reaches, so the
mirror asks the data: it writes a probe record with a key of its own making to its
offset-syncs topic on the target, and reads the source's offset-syncs topic at the offset
the probe got. Only the same log holds the same probe there.

The probe is a tombstone whose key is a two-element list, which every mirror's state
reader passes over (``state.py`` keeps keys of three elements or more) and compaction
removes.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from streamlog.mirror.ends import log_ends
from streamlog.mirror.state import OFFSET_SYNCS_TOPIC
from streamlog.transport.base import Admin, Producer, Transport
from streamlog.transport.types import TopicPartition

__all__ = ["PROBE_READ_TIMEOUT_S", "reads_its_own_target"]

PROBE_READ_TIMEOUT_S = 5.0  # to read one record the source holds (it answers at once)


async def reads_its_own_target(
    source: Transport, source_admin: Admin, producer: Producer, client_id: str
) -> bool:
    """True when the source is the target: ``producer`` writes to the target, whose state
    topics exist (``ensure_state_topics``)."""
    key = json.dumps(["streamlog-mirror-probe", uuid.uuid4().hex]).encode()
    sent = await producer.send(OFFSET_SYNCS_TOPIC, None, key=key, partition=0)
    await producer.flush()
    offset = (await sent).offset
    if OFFSET_SYNCS_TOPIC not in await source_admin.list_topics(include_internal=True):
        return False
    tp = TopicPartition(OFFSET_SYNCS_TOPIC, 0)
    if (await log_ends(source, [tp], client_id))[tp] <= offset:
        return False  # (most often: the source's state topic is another mirror's, shorter)
    consumer = source.consumer(client_id=client_id, isolation_level="read_uncommitted")
    try:
        consumer.assign([tp])
        consumer.seek(tp, offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PROBE_READ_TIMEOUT_S
        while (left := deadline - loop.time()) > 0:
            batch = await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            for record in batch.get(tp, ()):
                if record.offset == offset:
                    return record.key == key
                if record.offset > offset:
                    return False
            if await consumer.position(tp) > offset:
                return False
        return False
    finally:
        await consumer.close()
