"""The mirror's own state, kept on the target so that a restart (on any machine) resumes:
two compacted topics, as MirrorMaker 2 keeps its offset syncs and checkpoints.

* ``streamlog-mirror.checkpoints.internal``: per mirrored partition, the next source
  offset and the next target offset as of the last acknowledged copy;
* ``streamlog-mirror.offset-syncs.internal``: the offset map's breakpoints, those found
  between two checkpoints in one record (at most ``POINTS_PER_RECORD``), keyed by the
  first one's source offset, so compaction keeps every record and a rewrite after a
  restart replaces itself. A compacted source has a gap, so a breakpoint, at nearly
  every record: one record per breakpoint would double what the mirror writes.

Keys and values are JSON (readable with ``streamlog consume``); every key starts with the
mirror's name, so several mirrors (one per source) can share a target.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass

from streamlog.mirror.errors import MirrorStateError
from streamlog.transport.base import Admin, Producer, Transport
from streamlog.transport.errors import TopicExistsError
from streamlog.transport.types import ConsumerRecord, RecordMetadata, TopicPartition

__all__ = [
    "CHECKPOINTS_TOPIC",
    "OFFSET_SYNCS_TOPIC",
    "STATE_TOPICS",
    "Checkpoint",
    "MirrorState",
    "is_mirror_state_topic",
]

CHECKPOINTS_TOPIC = "streamlog-mirror.checkpoints.internal"
OFFSET_SYNCS_TOPIC = "streamlog-mirror.offset-syncs.internal"
STATE_TOPICS = (CHECKPOINTS_TOPIC, OFFSET_SYNCS_TOPIC)
_STATE_CONFIGS = {"cleanup.policy": "compact"}
_FORMAT = 1
POINTS_PER_RECORD = 10_000  # about 200 KB of JSON: under every broker's default 1 MB limit


def is_mirror_state_topic(name: str) -> bool:
    """Whether ``name`` is one of the state topics (of this or any mirror: ``.internal``
    topics are MirrorMaker's and ours, never mirrored themselves)."""
    return name.endswith(".internal")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    source_next: int
    target_next: int


@dataclass(slots=True)
class MirrorState:
    """What a mirror named ``name`` left on the target: checkpoints and breakpoints."""

    checkpoints: dict[TopicPartition, Checkpoint]
    breakpoints: dict[TopicPartition, list[tuple[int, int]]]


async def ensure_state_topics(admin: Admin) -> None:
    """Create the state topics on the target when missing (compacted, one partition)."""
    existing = set(await admin.list_topics(include_internal=True))
    for name in STATE_TOPICS:
        if name in existing:
            continue
        try:
            await admin.create_topic(name, 1, _STATE_CONFIGS)
        except TopicExistsError:
            pass


async def load_state(target: Transport, name: str) -> MirrorState:
    """Read both state topics to their ends and keep mirror ``name``'s records."""
    consumer = target.consumer(client_id=f"streamlog-mirror-{name}")
    try:
        tps = [TopicPartition(topic, 0) for topic in STATE_TOPICS]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        state = MirrorState({}, {})
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for record in records:
                    _apply(state, name, tp.topic, record)
        for points in state.breakpoints.values():
            points.sort()
        return state
    finally:
        await consumer.close()


def _apply(state: MirrorState, name: str, topic: str, record: ConsumerRecord) -> None:
    try:
        key = json.loads(record.key) if record.key is not None else None
        if not (isinstance(key, list) and len(key) >= 3 and key[0] == name):
            return  # another mirror's, or not ours at all
        tp = TopicPartition(str(key[1]), int(key[2]))
        value = json.loads(record.value) if record.value is not None else None
        if topic == CHECKPOINTS_TOPIC:
            if value is None:
                state.checkpoints.pop(tp, None)
            else:
                state.checkpoints[tp] = Checkpoint(int(value["source"]), int(value["target"]))
        elif value is not None:
            state.breakpoints.setdefault(tp, []).extend(
                (int(source), int(target)) for source, target in value["points"]
            )
    except (ValueError, KeyError, TypeError) as exc:
        raise MirrorStateError(
            f"{topic} offset {record.offset}: not a streamlog mirror record ({exc})"
        ) from None


async def send_checkpoints(
    producer: Producer, name: str, checkpoints: Iterable[tuple[TopicPartition, Checkpoint]]
) -> list[Awaitable[RecordMetadata]]:
    """Queue checkpoint records; returns their acknowledgements to await."""
    return [
        await producer.send(
            CHECKPOINTS_TOPIC,
            _dumps({"v": _FORMAT, "source": cp.source_next, "target": cp.target_next}),
            key=_dumps([name, tp.topic, tp.partition]),
            partition=0,
        )
        for tp, cp in checkpoints
    ]


async def send_breakpoints(
    producer: Producer, name: str, tp: TopicPartition, points: Sequence[tuple[int, int]]
) -> list[Awaitable[RecordMetadata]]:
    """Queue offset-sync records for ``points`` (ascending); returns their
    acknowledgements."""
    sent = []
    for start in range(0, len(points), POINTS_PER_RECORD):
        chunk = points[start : start + POINTS_PER_RECORD]
        sent.append(
            await producer.send(
                OFFSET_SYNCS_TOPIC,
                _dumps({"v": _FORMAT, "points": chunk}),
                key=_dumps([name, tp.topic, tp.partition, chunk[0][0]]),
                partition=0,
            )
        )
    return sent


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
