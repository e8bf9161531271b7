"""Where sources' positions are kept: the compacted topic ``<app-id>-connect-offsets``.

One record per checkpoint, keyed by the source's name, its value JSON::

    {"position": <the source's position>, "ends": {"<partition>": <next offset>, ...}}

``position`` is where the source resumes (after the last record the log acknowledged);
``ends`` is, per partition of the source's topic, the offset after which records came
*after* that position: what a restart reads back and matches against what the source reads
again (``source_runner.py``), as Kafka Connect keeps source offsets in its
``offset.storage.topic``. The last record of a key wins (compaction keeps it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from streamlog.connect.errors import SourceError
from streamlog.transport.base import Consumer, Producer, Transport
from streamlog.transport.types import ConsumerRecord, TopicPartition

__all__ = ["SavedPosition", "OffsetStore", "OFFSETS_TOPIC_CONFIGS", "offsets_topic_name"]

# Compacted; small segments, so the cleaner keeps the topic near one record per source
# (it compacts closed segments only) and a start reads little (a checkpoint every few
# seconds is tens of thousands of records a day).
OFFSETS_TOPIC_CONFIGS = {"cleanup.policy": "compact", "segment.bytes": str(16 << 20)}


def offsets_topic_name(app_id: str) -> str:
    """``<app-id>-connect-offsets``."""
    return f"{app_id}-connect-offsets"


@dataclass(frozen=True, slots=True)
class SavedPosition:
    """A source's last checkpoint: its position and the ends of its topic's partitions."""

    position: Any
    ends: dict[int, int]


class OffsetStore:
    """Reads and writes the checkpoints of the sources of one app (one partition)."""

    def __init__(self, transport: Transport, topic: str) -> None:
        self._transport = transport
        self.topic = topic

    async def load(self, name: str) -> SavedPosition | None:
        """The last checkpoint of source ``name`` (None: never checkpointed)."""
        consumer = self._transport.consumer(client_id=f"streamlog-connect-{name}")
        try:
            records = await read_to_end(consumer, {TopicPartition(self.topic, 0): None})
        finally:
            await consumer.close()
        found: SavedPosition | None = None
        wanted = name.encode()
        for record in records.get(TopicPartition(self.topic, 0), ()):
            if record.key != wanted:
                continue
            found = None if record.value is None else _parse(self.topic, record)
        return found

    async def save(self, producer: Producer, name: str, saved: SavedPosition) -> None:
        """Write a checkpoint and wait until the log acknowledged it."""
        try:
            value = json.dumps(
                {"position": saved.position, "ends": {str(p): o for p, o in saved.ends.items()}},
                separators=(",", ":"),
            ).encode()
        except (TypeError, ValueError) as exc:
            raise SourceError(
                f"source {name!r}: its position is not a JSON value: {saved.position!r} ({exc})"
            ) from exc
        ack = await producer.send(self.topic, value, key=name.encode(), partition=0)
        await producer.flush()
        await ack


def _parse(topic: str, record: ConsumerRecord) -> SavedPosition:
    try:
        value = json.loads(record.value or b"")
        ends = {int(p): int(o) for p, o in dict(value.get("ends") or {}).items()}
        return SavedPosition(value.get("position"), ends)
    except (ValueError, TypeError, AttributeError) as exc:
        raise SourceError(
            f"{topic} offset {record.offset}: not a connector checkpoint ({exc})"
        ) from None


async def read_to_end(
    consumer: Consumer, starts: dict[TopicPartition, int | None]
) -> dict[TopicPartition, list[ConsumerRecord]]:
    """Every record of each partition from its start offset (None: the beginning) to the
    end it has now."""
    tps = list(starts)
    consumer.assign(tps)
    ends = await consumer.end_offsets(tps)
    out: dict[TopicPartition, list[ConsumerRecord]] = {tp: [] for tp in tps}
    for tp, start in starts.items():
        if start is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, start)
    waiting = {tp for tp in tps if ends.get(tp, 0) > (starts[tp] or 0)}
    while waiting:
        for tp, records in (await consumer.getmany(timeout_ms=500)).items():
            end = ends[tp]
            out[tp].extend(r for r in records if r.offset < end)
        for tp in list(waiting):
            if await consumer.position(tp) >= ends[tp]:
                waiting.discard(tp)
    return out
