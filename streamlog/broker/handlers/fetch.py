"""Fetch: stored batch bytes straight from the log, with long polling.

A fetch reads every requested partition from its offset; if the total is below
``min_bytes`` it waits (up to ``max_wait_ms``) for an append to any of them and reads
again. ``max_bytes`` and ``partition_max_bytes`` are honoured the way Kafka does: the
first batch found is returned whole even if larger, so a consumer always progresses.
Every partition reports its last stable offset; a ``read_committed`` fetch
(``isolation_level`` 1) gets no batch at or past it and the aborted transactions with
records in what it got (``aborted_transactions``; the log engine's ``read``, see
docs/broker.md "Transactions in the log"). Fetch sessions (KIP-227) are not kept: the
response's session id 0 tells clients to send full fetches.
"""

from __future__ import annotations

import time
from typing import Any

from streamlog.broker.context import BrokerContext, Session
from streamlog.broker.error_codes import error_code_for
from streamlog.log.errors import LogError
from streamlog.log.partition_log import IsolationLevel
from streamlog.protocol import (
    ApiKey,
    DecodedRequest,
    ErrorCode,
    ResponsePayload,
    build_message,
    response_class,
)

__all__ = ["handle_fetch"]


async def handle_fetch(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    body: Any = request.body
    version = request.api_version
    if getattr(body, "session_id", 0) != 0:
        return build_message(
            response_class(ApiKey.FETCH, version),
            error_code=ErrorCode.FETCH_SESSION_ID_NOT_FOUND,
            session_id=0,
            responses=[],
        )
    max_wait_s = min(_millis(body.max_wait), ctx.config.max_fetch_wait_ms) / 1000
    deadline = time.monotonic() + max_wait_s
    keys = [(t.topic, p.partition) for t in body.topics for p in t.partitions]
    while True:
        responses, total, errors = _read(ctx, body)
        remaining = deadline - time.monotonic()
        if total >= body.min_bytes or errors or remaining <= 0 or not keys:
            break
        await ctx.waiters.wait_any(keys, remaining)
    return build_message(
        response_class(ApiKey.FETCH, version),
        throttle_time=0,
        error_code=ErrorCode.NONE,
        session_id=0,
        responses=responses,
    )


def _read(ctx: BrokerContext, body: Any) -> tuple[list[dict[str, Any]], int, bool]:
    manager = ctx.log
    budget = body.max_bytes if body.max_bytes > 0 else 1 << 30
    isolation = (
        IsolationLevel.READ_COMMITTED
        if getattr(body, "isolation_level", 0) == IsolationLevel.READ_COMMITTED
        else IsolationLevel.READ_UNCOMMITTED
    )
    total = 0
    errors = False
    responses = []
    for topic in body.topics:
        name = topic.topic
        partitions = []
        for part in topic.partitions:
            index = part.partition
            records: bytes | memoryview = b""
            aborted: list[dict[str, int]] | None = None
            try:
                plog = manager.partition(name, index)
                if budget <= 0:
                    hw, start = plog.high_watermark, plog.log_start_offset
                    stable = plog.last_stable_offset
                else:
                    limit = min(part.partition_max_bytes, budget)
                    result = plog.read(
                        part.fetch_offset, max(limit, 0), min_one=total == 0, isolation=isolation
                    )
                    records = result.records
                    hw, start = result.high_watermark, result.log_start_offset
                    stable = result.last_stable_offset
                    if result.aborted_transactions is not None:
                        aborted = [
                            {"producer_id": t.producer_id, "first_offset": t.first_offset}
                            for t in result.aborted_transactions
                        ]
            except (LogError, OSError) as exc:
                errors = True
                partitions.append(_failed(ctx, name, index, exc))
                continue
            total += len(records)
            budget -= len(records)
            partitions.append(
                {
                    "partition_index": index,
                    "error_code": ErrorCode.NONE,
                    "high_watermark": hw,
                    "last_stable_offset": stable,
                    "log_start_offset": start,
                    "aborted_transactions": aborted,
                    "preferred_read_replica": -1,
                    "records": records,
                }
            )
        responses.append({"topic": name, "partitions": partitions})
    return responses, total, errors


def _failed(ctx: BrokerContext, name: str, index: int, exc: BaseException) -> dict[str, Any]:
    hw = start = -1
    try:
        plog = ctx.log.partition(name, index)
        hw, start = plog.high_watermark, plog.log_start_offset
    except LogError:
        pass
    return {
        "partition_index": index,
        "error_code": error_code_for(exc),
        "high_watermark": hw,
        "last_stable_offset": hw,
        "log_start_offset": start,
        "aborted_transactions": None,
        "preferred_read_replica": -1,
        "records": None,
    }


def _millis(value: Any) -> int:
    if hasattr(value, "total_seconds"):
        return int(value.total_seconds() * 1000)
    return int(value)
