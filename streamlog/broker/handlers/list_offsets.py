"""ListOffsets: earliest (-2), latest (-1), max timestamp (-3) or the first offset at or
after a timestamp, per partition. Latest is the high watermark, or for a
``read_committed`` request (``isolation_level`` 1, v2+) the last stable offset, and a
``read_committed`` lookup by timestamp that lands at or past it answers -1."""

from __future__ import annotations

from typing import Any

from streamlog.broker.context import BrokerContext, Session
from streamlog.broker.error_codes import error_code_for
from streamlog.log.errors import LogError
from streamlog.log.partition_log import IsolationLevel, PartitionLog
from streamlog.protocol import (
    ApiKey,
    DecodedRequest,
    ErrorCode,
    ResponsePayload,
    build_message,
    response_class,
)

__all__ = ["handle_list_offsets", "LATEST", "EARLIEST", "MAX_TIMESTAMP"]

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3


async def handle_list_offsets(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    body: Any = request.body
    committed = getattr(body, "isolation_level", 0) == IsolationLevel.READ_COMMITTED
    topics = []
    for topic in body.topics:
        partitions = []
        for part in topic.partitions:
            try:
                plog = ctx.log.partition(topic.name, part.partition_index)
                offset, timestamp = _lookup(plog, part.timestamp, committed)
                partitions.append(_answer(part.partition_index, ErrorCode.NONE, offset, timestamp))
            except (LogError, OSError) as exc:
                partitions.append(_answer(part.partition_index, error_code_for(exc), -1, -1))
        topics.append({"name": topic.name, "partitions": partitions})
    return build_message(
        response_class(ApiKey.LIST_OFFSETS, request.api_version), throttle_time=0, topics=topics
    )


def _lookup(plog: PartitionLog, timestamp: int, committed: bool) -> tuple[int, int]:
    offset, found_ts = _lookup_uncommitted(plog, timestamp, committed)
    if committed and timestamp not in (LATEST, EARLIEST) and offset >= plog.last_stable_offset:
        # as Kafka: a read_committed lookup by time never lands at or past the LSO (the
        # earliest offset is the log start whatever the isolation, as Kafka's is)
        return -1, -1
    return offset, found_ts


def _lookup_uncommitted(plog: PartitionLog, timestamp: int, committed: bool) -> tuple[int, int]:
    if timestamp == LATEST:
        return (plog.last_stable_offset if committed else plog.high_watermark), -1
    if timestamp == EARLIEST:
        return plog.log_start_offset, -1
    if timestamp == MAX_TIMESTAMP:
        newest = max((s.max_timestamp for s in plog.segments), default=-1)
        found = plog.offset_for_timestamp(newest) if newest >= 0 else None
        return found if found is not None else (-1, -1)
    found = plog.offset_for_timestamp(timestamp)
    return found if found is not None else (-1, -1)


def _answer(index: int, code: int, offset: int, timestamp: int) -> dict[str, Any]:
    return {
        "partition_index": index,
        "error_code": code,
        "timestamp": timestamp,
        "offset": offset,
        "leader_epoch": 0 if code == ErrorCode.NONE else -1,
    }
