"""InitProducerId: ids for idempotent producers, never reused by this data directory.

Transactional producers (a ``transactional_id``) need a transaction coordinator, which
this broker does not have yet: they get TRANSACTIONAL_ID_AUTHORIZATION_FAILED, a fatal
error with a clear meaning, rather than ids that would fail later at AddPartitionsToTxn.
An idempotent producer that asks to bump its epoch (KIP-360: it sends its current id and
epoch) gets the same id with the next epoch.
"""

from __future__ import annotations

from typing import Any

from streamlog.broker.context import BrokerContext, Session
from streamlog.protocol import (
    ApiKey,
    DecodedRequest,
    ErrorCode,
    ResponsePayload,
    build_message,
    response_class,
)

__all__ = ["handle_init_producer_id"]

_MAX_EPOCH = 32767


async def handle_init_producer_id(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    body: Any = request.body
    cls = response_class(ApiKey.INIT_PRODUCER_ID, request.api_version)
    if body.transactional_id is not None:
        return build_message(
            cls,
            error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            producer_id=-1,
            producer_epoch=-1,
        )
    current_id = getattr(body, "producer_id", -1)
    current_epoch = getattr(body, "producer_epoch", -1)
    if current_id >= 0 and 0 <= current_epoch < _MAX_EPOCH - 1:
        producer_id, epoch = current_id, current_epoch + 1
    else:
        producer_id, epoch = ctx.log.allocate_producer_id(), 0
    return build_message(
        cls,
        error_code=ErrorCode.NONE,
        producer_id=producer_id,
        producer_epoch=epoch,
        throttle_time=0,
    )
