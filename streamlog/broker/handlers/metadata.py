"""Metadata: one broker (node ``ctx.node_id``) leading every partition, replicas = isr = [it].

Topics a client names that do not exist are created when auto-creation is on and the
client allows it (``allow_auto_topic_creation``, v4+; always for older versions), as
Kafka does with ``auto.create.topics.enable``.
"""

from __future__ import annotations

import uuid
from typing import Any

from streamlog.broker.context import BrokerContext, Session
from streamlog.broker.error_codes import error_code_for
from streamlog.broker.topics import ensure_topic
from streamlog.log.errors import LogError
from streamlog.log.topic_names import is_internal
from streamlog.protocol import (
    ApiKey,
    DecodedRequest,
    ErrorCode,
    ResponsePayload,
    build_message,
    response_class,
)

__all__ = ["handle_metadata", "topic_metadata"]


def topic_metadata(ctx: BrokerContext, name: str) -> dict[str, Any]:
    node = ctx.node_id
    partitions = ctx.log.partition_count(name)
    return {
        "error_code": ErrorCode.NONE,
        "name": name,
        "topic_id": uuid.UUID(ctx.log.topic_id(name)),
        "is_internal": is_internal(name),
        "partitions": [
            {
                "error_code": ErrorCode.NONE,
                "partition_index": p,
                "leader_id": node,
                "leader_epoch": 0,
                "replica_nodes": [node],
                "isr_nodes": [node],
                "offline_replicas": [],
            }
            for p in range(partitions)
        ],
        "topic_authorized_operations": -2147483648,
    }


async def handle_metadata(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    body: Any = request.body
    version = request.api_version
    requested = body.topics
    # v1+: null means every topic, [] means none; v0 had only [] for every topic.
    if requested is None or (version == 0 and not requested):
        topics = [topic_metadata(ctx, n) for n in ctx.log.list_topics(include_internal=True)]
    else:
        topics = []
        allow_create = getattr(body, "allow_auto_topic_creation", True)
        for wanted in requested:
            name = wanted.name
            if name is None:  # v10+ may ask by topic id
                topics.append(_unknown_by_id(ctx, wanted.topic_id))
                continue
            try:
                if not ctx.log.topic_exists(name):
                    if not (allow_create and ctx.config.auto_create_topics):
                        topics.append(_error_topic(name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
                        continue
                    ensure_topic(ctx, name)
                topics.append(topic_metadata(ctx, name))
            except LogError as exc:
                topics.append(_error_topic(name, error_code_for(exc)))
    host, port = ctx.advertised
    return build_message(
        response_class(ApiKey.METADATA, version),
        throttle_time=0,
        brokers=[
            {
                "node_id": ctx.node_id,
                "host": host,
                "port": port,
                "rack": None,
            }
        ],
        cluster_id=ctx.cluster_id,
        controller_id=ctx.node_id,
        topics=topics,
        cluster_authorized_operations=-2147483648,
    )


def _error_topic(name: str, code: int) -> dict[str, Any]:
    return {"error_code": code, "name": name, "is_internal": False, "partitions": []}


def _unknown_by_id(ctx: BrokerContext, topic_id: uuid.UUID | None) -> dict[str, Any]:
    for name in ctx.log.list_topics(include_internal=True):
        if topic_id is not None and uuid.UUID(ctx.log.topic_id(name)) == topic_id:
            return topic_metadata(ctx, name)
    return {
        "error_code": ErrorCode.UNKNOWN_TOPIC_ID,
        "name": None,
        "topic_id": topic_id,
        "partitions": [],
    }
