"""Produce: validate each partition's batches and append them as received.

The record sets are slices of the request frame; the log validates them (CRCs, record
framing, the topic's rules: ``streamlog/log/validator.py``) and patches base offsets,
no record object is made. A refused partition gets the Kafka error code of the log's
exception (``error_codes.py``) with its message in ``error_message`` and, for records
that break a rule, their indexes in ``record_errors`` (both from Produce v8 on).
``acks=0`` gets no response; ``acks=1`` and ``acks=-1`` are the same on one replica —
the answer comes after the append, which has already applied the topic's flush policy
(``flush.messages=1`` fsyncs before returning).
"""

from __future__ import annotations

import logging
from typing import Any

from streamlog.broker.context import BrokerContext, Session
from streamlog.broker.error_codes import error_code_for
from streamlog.broker.topics import ensure_topic
from streamlog.log.errors import LogError, RecordValidationError
from streamlog.protocol import (
    ApiKey,
    DecodedRequest,
    ErrorCode,
    ResponsePayload,
    build_message,
    response_class,
)

__all__ = ["handle_produce"]

log = logging.getLogger(__name__)


async def handle_produce(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload | None:
    body: Any = request.body
    if body.transactional_id is not None:
        return _all_failed(
            request,
            ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            "transactions are not supported by this broker yet",
        )
    if body.acks not in (0, 1, -1):
        return _all_failed(request, ErrorCode.INVALID_REQUIRED_ACKS, f"acks={body.acks}")
    manager = ctx.log
    waiters = ctx.waiters
    responses: list[dict[str, Any]] = []
    for topic in body.topics:
        name = topic.name
        partitions: list[dict[str, Any]] = []
        if not manager.topic_exists(name) and ctx.config.auto_create_topics:
            try:
                ensure_topic(ctx, name)
            except LogError:
                pass  # reported per partition below
        for part in topic.partitions:
            index = part.partition_index
            if part.records is None:
                partitions.append(_failed(index, ErrorCode.INVALID_RECORD, "no records"))
                continue
            try:
                # the client write path: internal topics answer INVALID_TOPIC_EXCEPTION
                result = manager.append(name, index, part.records)
            except (LogError, OSError) as exc:
                code = error_code_for(exc)
                if code in (ErrorCode.KAFKA_STORAGE_ERROR, ErrorCode.UNKNOWN_SERVER_ERROR):
                    log.error("produce to %s-%d failed: %s", name, index, exc)
                record_errors = exc.record_errors if isinstance(exc, RecordValidationError) else ()
                partitions.append(_failed(index, code, str(exc), record_errors))
                continue
            if not result.duplicate:
                waiters.notify(name, index)
            partitions.append(
                {
                    "index": index,
                    "error_code": ErrorCode.NONE,
                    "base_offset": result.base_offset,
                    "log_append_time": result.log_append_time,  # -1: CreateTime topic
                    "log_start_offset": result.log_start_offset,
                }
            )
        responses.append({"name": name, "partition_responses": partitions})
    if body.acks == 0:
        return None
    return build_message(
        response_class(ApiKey.PRODUCE, request.api_version),
        responses=responses,
        throttle_time=0,
    )


def _failed(
    index: int, code: int, message: str, record_errors: tuple[tuple[int, str], ...] = ()
) -> dict[str, Any]:
    return {
        "index": index,
        "error_code": code,
        "base_offset": -1,
        "log_append_time": -1,
        "log_start_offset": -1,
        "record_errors": [
            {"batch_index": i, "batch_index_error_message": text} for i, text in record_errors
        ],
        "error_message": message,
    }


def _all_failed(request: DecodedRequest, code: int, message: str) -> ResponsePayload | None:
    body: Any = request.body
    if body.acks == 0:
        return None
    return build_message(
        response_class(ApiKey.PRODUCE, request.api_version),
        responses=[
            {
                "name": topic.name,
                "partition_responses": [
                    _failed(p.partition_index, code, message) for p in topic.partitions
                ],
            }
            for topic in body.topics
        ],
        throttle_time=0,
    )
