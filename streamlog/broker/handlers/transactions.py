"""Transaction APIs: InitProducerId with a transactional id, AddPartitionsToTxn (v0-3),
AddOffsetsToTxn, TxnOffsetCommit, EndTxn, DescribeTransactions and ListTransactions.

Each handler validates what the client sent (sizes and counts are bounded before
anything is done), runs the coordinator's call off the event loop
(``ctx.transactions.call``) and answers with the error code of the coordinator's
exception (``error_codes.py``). PRODUCER_FENCED is answered as INVALID_PRODUCER_EPOCH to
request versions older than KIP-588's, whose clients do not know the newer code (as
Kafka does). Without a transaction coordinator every API answers
COORDINATOR_NOT_AVAILABLE.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from streamlog.broker.context import BrokerContext, Session
from streamlog.broker.error_codes import error_code_for
from streamlog.broker.transactions import TransactionService
from streamlog.log.errors import LogError, UnknownTopicError
from streamlog.log.group_offsets import OffsetAndMetadata
from streamlog.log.txn_coordinator import MAX_OFFSET_METADATA_BYTES, TxnStatus
from streamlog.protocol import (
    ApiKey,
    DecodedRequest,
    ErrorCode,
    ResponsePayload,
    build_message,
    error_response_for,
    response_class,
)

__all__ = [
    "init_transactional_producer",
    "handle_add_partitions_to_txn",
    "handle_add_offsets_to_txn",
    "handle_txn_offset_commit",
    "handle_end_txn",
    "handle_describe_transactions",
    "handle_list_transactions",
    "MAX_PARTITIONS_PER_REQUEST",
]

log = logging.getLogger(__name__)

MAX_PARTITIONS_PER_REQUEST = 10_000
"""Partitions (or offsets) one AddPartitionsToTxn or TxnOffsetCommit may name."""
MAX_IDS_PER_DESCRIBE = 1_000
"""Transactional ids one DescribeTransactions may name."""

# The first version of each API whose clients know PRODUCER_FENCED (KIP-588).
_FENCED_FROM_VERSION = {
    ApiKey.INIT_PRODUCER_ID: 4,
    ApiKey.ADD_PARTITIONS_TO_TXN: 2,
    ApiKey.ADD_OFFSETS_TO_TXN: 2,
    ApiKey.END_TXN: 2,
    ApiKey.TXN_OFFSET_COMMIT: 3,
}
# -1 in DescribeTransactions' non-nullable start time (no transaction open), as Kafka
# sends it: kio writes round(timestamp() * 1000).
_NO_START_TIME = datetime.datetime.fromtimestamp(-0.001, datetime.UTC)


def _code(request: DecodedRequest, exc: BaseException) -> ErrorCode:
    code = error_code_for(exc)
    if code is ErrorCode.PRODUCER_FENCED:
        if request.api_version < _FENCED_FROM_VERSION.get(ApiKey(request.api_key), 0):
            return ErrorCode.INVALID_PRODUCER_EPOCH
    elif code in (ErrorCode.UNKNOWN_SERVER_ERROR, ErrorCode.KAFKA_STORAGE_ERROR):
        log.error("%s failed: %s", ApiKey(request.api_key).name, exc)
        if isinstance(exc, OSError):  # the state is unchanged: the client may retry
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
    return code


def _respond(request: DecodedRequest, **values: Any) -> ResponsePayload:
    return build_message(
        response_class(request.api_key, request.api_version), throttle_time=0, **values
    )


def _service(ctx: BrokerContext) -> TransactionService | None:
    return ctx.transactions


# -- InitProducerId ----------------------------------------------------------------------


async def init_transactional_producer(
    ctx: BrokerContext, request: DecodedRequest
) -> ResponsePayload:
    """InitProducerId with a transactional id (``producer_ids.py`` hands it over)."""
    body: Any = request.body
    service = _service(ctx)
    if service is None:
        return error_response_for(request, ErrorCode.COORDINATOR_NOT_AVAILABLE)
    timeout_ms = body.transaction_timeout // datetime.timedelta(milliseconds=1)
    fenced = service.open_partitions(body.transactional_id)  # aborted if it is still open
    try:
        producer_id, epoch = await service.call(
            service.coordinator.init_producer_id,
            body.transactional_id,
            timeout_ms,
            getattr(body, "producer_id", -1),
            getattr(body, "producer_epoch", -1),
        )
    except (LogError, OSError) as exc:
        return error_response_for(request, _code(request, exc))
    service.notify(fenced)
    return _respond(
        request, error_code=ErrorCode.NONE, producer_id=producer_id, producer_epoch=epoch
    )


# -- AddPartitionsToTxn ------------------------------------------------------------------


async def handle_add_partitions_to_txn(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    body: Any = request.body
    service = _service(ctx)
    if service is None:
        return error_response_for(request, ErrorCode.COORDINATOR_NOT_AVAILABLE)
    wanted = [(t.name, p) for t in body.v3_and_below_topics for p in t.partitions]
    if len(wanted) > MAX_PARTITIONS_PER_REQUEST:
        return error_response_for(request, ErrorCode.POLICY_VIOLATION)
    try:
        results = await service.call(
            service.coordinator.add_partitions,
            body.v3_and_below_transactional_id,
            body.v3_and_below_producer_id,
            body.v3_and_below_producer_epoch,
            wanted,
        )
    except (LogError, OSError) as exc:
        return error_response_for(request, _code(request, exc))
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for (topic, partition), error in results.items():
        code = ErrorCode.NONE if error is None else _code(request, error)
        by_topic.setdefault(topic, []).append(
            {"partition_index": partition, "partition_error_code": code}
        )
    return _respond(
        request,
        results_by_topic_v3_and_below=[
            {"name": topic, "results_by_partition": rows} for topic, rows in by_topic.items()
        ],
    )


# -- AddOffsetsToTxn and EndTxn ----------------------------------------------------------


async def handle_add_offsets_to_txn(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    body: Any = request.body
    return await _just_error(
        ctx,
        request,
        "add_offsets",
        body.transactional_id,
        body.producer_id,
        body.producer_epoch,
        body.group_id,
    )


async def handle_end_txn(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    body: Any = request.body
    service = _service(ctx)
    ended = service.open_partitions(body.transactional_id) if service is not None else ()
    response = await _just_error(
        ctx,
        request,
        "end_txn",
        body.transactional_id,
        body.producer_id,
        body.producer_epoch,
        bool(body.committed),
    )
    if service is not None:
        service.notify(ended)  # the markers moved their last stable offsets
    return response


async def _just_error(
    ctx: BrokerContext, request: DecodedRequest, method: str, *args: object
) -> ResponsePayload:
    service = _service(ctx)
    if service is None:
        return error_response_for(request, ErrorCode.COORDINATOR_NOT_AVAILABLE)
    try:
        await service.call(getattr(service.coordinator, method), *args)
    except (LogError, OSError) as exc:
        return _respond(request, error_code=_code(request, exc))
    return _respond(request, error_code=ErrorCode.NONE)


# -- TxnOffsetCommit ---------------------------------------------------------------------


async def handle_txn_offset_commit(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    """Offsets held by the transaction until it commits. The group's generation and
    member (v3+, KIP-447) are checked as an OffsetCommit's are, so a zombie member's
    offsets get ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID; v0-2 carry
    none and are not checked (as Kafka)."""
    body: Any = request.body
    service = _service(ctx)
    if service is None or ctx.coordinator is None:
        return error_response_for(request, ErrorCode.COORDINATOR_NOT_AVAILABLE)
    count = sum(len(t.partitions) for t in body.topics)
    if count > MAX_PARTITIONS_PER_REQUEST:
        return error_response_for(request, ErrorCode.POLICY_VIOLATION)
    common = ctx.coordinator.validate_txn_offset_commit(
        body.group_id,
        getattr(body, "member_id", ""),
        getattr(body, "generation_id", -1),
        getattr(body, "group_instance_id", None),
    )
    answers: list[tuple[str, list[tuple[int, ErrorCode | None]]]] = []
    offsets: dict[tuple[str, int], OffsetAndMetadata] = {}
    for topic in body.topics:
        partitions = _partition_count(ctx, topic.name)
        rows: list[tuple[int, ErrorCode | None]] = []
        for p in topic.partitions:
            metadata = p.committed_metadata or ""
            code: ErrorCode | None = None
            if not 0 <= p.partition_index < partitions:
                code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif len(metadata.encode()) > MAX_OFFSET_METADATA_BYTES:
                code = ErrorCode.OFFSET_METADATA_TOO_LARGE
            else:
                offsets[(topic.name, p.partition_index)] = OffsetAndMetadata(
                    p.committed_offset, metadata, getattr(p, "committed_leader_epoch", -1)
                )
            rows.append((p.partition_index, code))
        answers.append((topic.name, rows))
    if common is ErrorCode.NONE and offsets:
        try:
            await service.call(
                service.coordinator.txn_offset_commit,
                body.transactional_id,
                body.producer_id,
                body.producer_epoch,
                body.group_id,
                offsets,
            )
        except (LogError, OSError) as exc:
            common = _code(request, exc)
    return _respond(
        request,
        topics=[
            {
                "name": name,
                "partitions": [
                    {"partition_index": index, "error_code": common if code is None else code}
                    for index, code in rows
                ],
            }
            for name, rows in answers
        ],
    )


def _partition_count(ctx: BrokerContext, topic: str) -> int:
    try:
        return ctx.log.partition_count(topic)
    except (UnknownTopicError, LogError):
        return 0


# -- DescribeTransactions and ListTransactions -------------------------------------------


async def handle_describe_transactions(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    body: Any = request.body
    service = _service(ctx)
    if service is None:
        return error_response_for(request, ErrorCode.COORDINATOR_NOT_AVAILABLE)
    if len(body.transactional_ids) > MAX_IDS_PER_DESCRIBE:
        return error_response_for(request, ErrorCode.POLICY_VIOLATION)
    described = service.coordinator.describe(body.transactional_ids)
    states = []
    for txn_id in body.transactional_ids:
        d = described.get(txn_id)
        if d is None:
            states.append(
                {
                    "error_code": ErrorCode.TRANSACTIONAL_ID_NOT_FOUND,
                    "transactional_id": txn_id,
                    "producer_id": -1,
                    "producer_epoch": -1,
                    "topics": [],
                }
            )
            continue
        by_topic: dict[str, list[int]] = {}
        for topic, partition in d.partitions:
            by_topic.setdefault(topic, []).append(partition)
        states.append(
            {
                "error_code": ErrorCode.NONE,
                "transactional_id": txn_id,
                "transaction_state": d.state.kafka_name,
                "transaction_timeout": d.timeout_ms,
                "transaction_start_time": d.start_ms if d.start_ms >= 0 else _NO_START_TIME,
                "producer_id": d.producer_id,
                "producer_epoch": d.producer_epoch,
                "topics": [{"topic": t, "partitions": ps} for t, ps in by_topic.items()],
            }
        )
    return _respond(request, transaction_states=states)


async def handle_list_transactions(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    body: Any = request.body
    service = _service(ctx)
    if service is None:
        return error_response_for(request, ErrorCode.COORDINATOR_NOT_AVAILABLE)
    states: list[TxnStatus] = []
    unknown: list[str] = []
    for name in body.state_filters:
        status = TxnStatus.from_kafka_name(name)
        if status is None:
            unknown.append(name)
        else:
            states.append(status)
    if unknown and not states:
        listed = []  # every filter unknown: nothing can match (Kafka's answer)
    else:
        listed = service.coordinator.list_transactions(states, body.producer_id_filters)
    duration_ms = getattr(body, "duration_filter", -1)
    if duration_ms >= 0:
        now = ctx.clock.time_ms()
        described = service.coordinator.describe(t.transactional_id for t in listed)
        listed = [
            t
            for t in listed
            if (d := described.get(t.transactional_id)) is not None
            and d.start_ms >= 0
            and now - d.start_ms > duration_ms
        ]
    return _respond(
        request,
        error_code=ErrorCode.NONE,
        unknown_state_filters=unknown,
        transaction_states=[
            {
                "transactional_id": t.transactional_id,
                "producer_id": t.producer_id,
                "transaction_state": t.state.kafka_name,
            }
            for t in listed
        ],
    )
