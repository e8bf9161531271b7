"""InitProducerId: ids for idempotent producers, never reused by this data directory.

A transactional producer (a ``transactional_id``) gets its id and epoch from the
transaction coordinator (``transactions.py``). An idempotent producer that asks to bump
its epoch (KIP-360: it sends its current id and epoch) gets the same id with the next
epoch.
"""

from __future__ import annotations

from typing import Any

from streamlog.broker.context import BrokerContext, Session
from streamlog.broker.handlers.transactions import init_transactional_producer
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
        return await init_transactional_producer(ctx, request)
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
