"""Produce: validate each partition's batches and append them as received.

The record sets are slices of the request frame; the log validates them (CRCs, record
framing, the topic's rules: ``streamlog/log/validator.py``) and patches base offsets,
no record object is made. A refused partition gets the Kafka error code of the log's
exception (``error_codes.py``) with its message in ``error_message`` and, for records
that break a rule, their indexes in ``record_errors`` (both from Produce v8 on).
A transactional batch is appended only while its producer (id and epoch) has added the
partition to its ongoing transaction (``_append_transactional``), never silently.
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
from streamlog.log.batch_header import HEADER_SIZE, parse_header
from streamlog.log.errors import LogError, RecordValidationError
from streamlog.log.partition_log import AppendResult
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

_HEADER_BYTES = HEADER_SIZE
_MAGIC_AT = 16
_ATTRIBUTES_LOW_AT = 22
_TRANSACTIONAL_BIT = 0x10
_TRANSACTIONAL_OR_CONTROL = 0x30  # a client's control batch goes to the log, which refuses it


async def handle_produce(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload | None:
    body: Any = request.body
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
                records = part.records
                if _is_transactional(records):
                    result = await _append_transactional(ctx, name, index, records)
                else:
                    # the client write path: internal topics answer INVALID_TOPIC_EXCEPTION
                    result = manager.append(name, index, records)
            except (LogError, OSError) as exc:
                code = error_code_for(exc)
                if code is ErrorCode.PRODUCER_FENCED:  # Produce's word for it
                    code = ErrorCode.INVALID_PRODUCER_EPOCH
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


def _is_transactional(records: Any) -> bool:
    """Whether the first batch is a transactional data batch (magic 2, bit 4 of the
    attributes' low byte set, bit 5, control, clear); a batch too short to tell is left
    to the log to refuse."""
    return (
        len(records) >= _HEADER_BYTES
        and records[_MAGIC_AT] == 2
        and records[_ATTRIBUTES_LOW_AT] & _TRANSACTIONAL_OR_CONTROL == _TRANSACTIONAL_BIT
    )


async def _append_transactional(
    ctx: BrokerContext, topic: str, partition: int, records: Any
) -> AppendResult:
    """Append a transactional batch if its producer has added the partition to its
    ongoing transaction (checked and appended under the transaction's lock, in the
    thread pool since the lock may be held while markers are written); else
    INVALID_TXN_STATE, or INVALID_PRODUCER_EPOCH for a fenced epoch."""
    manager = ctx.log
    service = ctx.transactions
    if service is None:
        return manager.append(topic, partition, records)  # refused: nothing vouches for it
    header = parse_header(records)
    return await service.call(
        service.coordinator.run_in_transaction,
        header.producer_id,
        header.producer_epoch,
        topic,
        partition,
        lambda: manager.append(topic, partition, records, transaction_verified=True),
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
