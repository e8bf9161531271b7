"""Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs.

CreateTopics and CreatePartitions check the partition limits (``partition_limits.py``)
before creating anything; a topic either is created whole or not at all (the log manager
removes what a failed create had made), and a storage failure (EMFILE, ENOSPC) is
answered with KAFKA_STORAGE_ERROR and its message.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from streamlog.broker.context import BrokerContext, Session
from streamlog.broker.error_codes import error_code_for
from streamlog.broker.errors import BrokerError, PartitionLimitError
from streamlog.broker.partition_limits import check_broker_limit, check_request_limit
from streamlog.log.config import TOPIC_CONFIG_KEYS, TopicConfig, describe_config
from streamlog.log.errors import InvalidPartitionsError, LogError, TopicExistsError
from streamlog.log.manager import MAX_PARTITIONS
from streamlog.log.topic_names import check_collisions, check_not_internal, validate_topic_name
from streamlog.protocol import (
    ApiKey,
    DecodedRequest,
    ErrorCode,
    ResponsePayload,
    build_message,
    response_class,
)

__all__ = [
    "handle_create_topics",
    "handle_delete_topics",
    "handle_create_partitions",
    "handle_describe_configs",
]

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
# DescribeConfigs config_source values (Kafka's ConfigSource).
SOURCE_TOPIC = 1
SOURCE_STATIC_BROKER = 4
SOURCE_DEFAULT = 5


def _check_replicas(ctx: BrokerContext, replication_factor: int, assignments: Any) -> str | None:
    """Why a replica layout is impossible on this one-broker cluster, or None."""
    if replication_factor not in (-1, 1):
        return f"replication factor {replication_factor} is larger than the 1 broker available"
    for assignment in assignments or ():
        if list(assignment.broker_ids) != [ctx.node_id]:
            return f"replicas {list(assignment.broker_ids)} are not [{ctx.node_id}]"
    return None


def _planned_partitions(ctx: BrokerContext, topic: Any) -> tuple[int, str | None]:
    """How many partitions a CreateTopics entry asks for, and why it is impossible."""
    problem = _check_replicas(ctx, topic.replication_factor, topic.assignments)
    partitions = topic.num_partitions
    if topic.assignments:
        if partitions != -1:
            problem = problem or "give either num_partitions or assignments, not both"
        partitions = len(topic.assignments)
    elif partitions == -1:
        partitions = ctx.config.default_partitions
    return partitions, problem


async def handle_create_topics(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    body: Any = request.body
    plans = [_planned_partitions(ctx, topic) for topic in body.topics]
    refusal = _request_refusal(
        ctx,
        sum(
            max(partitions, 0)
            for topic, (partitions, problem) in zip(body.topics, plans, strict=True)
            if problem is None and not ctx.log.topic_exists(topic.name)
        ),
    )
    results = []
    for topic, (partitions, problem) in zip(body.topics, plans, strict=True):
        entry: dict[str, Any] = {"name": topic.name, "num_partitions": -1, "replication_factor": -1}
        if refusal is not None:
            results.append(
                {**entry, "error_code": error_code_for(refusal), "error_message": str(refusal)}
            )
            continue
        if problem:
            code = (
                ErrorCode.INVALID_REPLICATION_FACTOR
                if "replication" in problem
                else ErrorCode.INVALID_REPLICA_ASSIGNMENT
                if "replicas" in problem
                else ErrorCode.INVALID_REQUEST
            )
            results.append({**entry, "error_code": code, "error_message": problem})
            continue
        configs = {c.name: c.value for c in topic.configs if c.value is not None}
        try:
            if body.validate_only:
                _validate_new_topic(ctx, topic.name, partitions, configs)
                check_broker_limit(ctx, partitions)
                config = TopicConfig.from_map(configs, base=ctx.log.default_config)
                topic_id = None
            else:
                if not ctx.log.topic_exists(topic.name):
                    check_broker_limit(ctx, max(partitions, 0))
                ctx.log.create_topic(topic.name, partitions, configs)
                config = ctx.log.topic_config(topic.name)
                topic_id = uuid.UUID(ctx.log.topic_id(topic.name))
        except (LogError, BrokerError, OSError) as exc:
            results.append({**entry, "error_code": error_code_for(exc), "error_message": str(exc)})
            continue
        overrides = config.overrides(ctx.log.default_config)
        results.append(
            {
                "name": topic.name,
                "topic_id": topic_id,
                "error_code": ErrorCode.NONE,
                "error_message": None,
                "num_partitions": partitions,
                "replication_factor": 1,
                "configs": [
                    {
                        "name": key,
                        "value": value,
                        "read_only": False,
                        "config_source": SOURCE_TOPIC if key in overrides else SOURCE_DEFAULT,
                        "is_sensitive": False,
                    }
                    for key, value in config.to_map().items()
                ],
            }
        )
    return build_message(
        response_class(ApiKey.CREATE_TOPICS, request.api_version),
        throttle_time=0,
        topics=results,
    )


def _validate_new_topic(
    ctx: BrokerContext, name: str, partitions: int, configs: dict[str, str]
) -> None:
    """What create_topic would refuse, without creating anything (validate_only)."""
    validate_topic_name(name)
    if ctx.log.topic_exists(name):
        raise TopicExistsError(f"topic {name!r} already exists")
    check_not_internal(name, "create")
    check_collisions(name, ctx.log.list_topics(include_internal=True))
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise InvalidPartitionsError(f"partition count must be between 1 and {MAX_PARTITIONS}")
    TopicConfig.from_map(configs, base=ctx.log.default_config)


def _request_refusal(ctx: BrokerContext, new_partitions: int) -> PartitionLimitError | None:
    """Why the whole request is refused for its size, or None."""
    try:
        check_request_limit(ctx, new_partitions)
    except PartitionLimitError as exc:
        return exc
    return None


async def handle_delete_topics(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    body: Any = request.body
    results = []
    names = getattr(body, "topic_names", None)
    wanted: list[tuple[str | None, uuid.UUID | None]]
    if names is not None:
        wanted = [(n, None) for n in names]
    else:
        wanted = [(t.name, t.topic_id) for t in body.topics]
    for name, topic_id in wanted:
        if name is None and topic_id is not None:
            name = next(
                (n for n in ctx.log.list_topics() if uuid.UUID(ctx.log.topic_id(n)) == topic_id),
                None,
            )
            if name is None:
                results.append(
                    {
                        "name": None,
                        "topic_id": topic_id,
                        "error_code": ErrorCode.UNKNOWN_TOPIC_ID,
                        "error_message": f"no topic has id {topic_id}",
                    }
                )
                continue
        if name is None:
            results.append(
                {
                    "name": None,
                    "topic_id": topic_id,
                    "error_code": ErrorCode.INVALID_REQUEST,
                    "error_message": "a topic needs a name or an id",
                }
            )
            continue
        try:
            tid = uuid.UUID(ctx.log.topic_id(name)) if ctx.log.topic_exists(name) else None
            ctx.log.delete_topic(name)
            ctx.waiters.notify_all()  # fetches waiting on it answer now
            results.append({"name": name, "topic_id": tid, "error_code": ErrorCode.NONE})
        except LogError as exc:
            results.append(
                {
                    "name": name,
                    "topic_id": topic_id,
                    "error_code": error_code_for(exc),
                    "error_message": str(exc),
                }
            )
    return build_message(
        response_class(ApiKey.DELETE_TOPICS, request.api_version),
        throttle_time=0,
        responses=results,
    )


async def handle_create_partitions(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    body: Any = request.body
    refusal = _request_refusal(
        ctx, sum(_partitions_added(ctx, topic.name, topic.count) for topic in body.topics)
    )
    results = []
    for topic in body.topics:
        if refusal is not None:
            results.append(
                {
                    "name": topic.name,
                    "error_code": error_code_for(refusal),
                    "error_message": str(refusal),
                }
            )
            continue
        problem = _check_replicas(ctx, 1, topic.assignments)
        if problem:
            results.append(
                {
                    "name": topic.name,
                    "error_code": ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    "error_message": problem,
                }
            )
            continue
        try:
            ctx.log.check_add_partitions(topic.name, topic.count)
            check_broker_limit(ctx, topic.count - ctx.log.partition_count(topic.name))
            if not body.validate_only:
                ctx.log.add_partitions(topic.name, topic.count)
            results.append({"name": topic.name, "error_code": ErrorCode.NONE})
        except (LogError, BrokerError, OSError) as exc:
            results.append(
                {"name": topic.name, "error_code": error_code_for(exc), "error_message": str(exc)}
            )
    return build_message(
        response_class(ApiKey.CREATE_PARTITIONS, request.api_version),
        throttle_time=0,
        results=results,
    )


def _partitions_added(ctx: BrokerContext, topic: str, count: int) -> int:
    """New partitions a CreatePartitions entry asks for (0 if it would fail anyway)."""
    if not ctx.log.topic_exists(topic):
        return 0
    return max(count - ctx.log.partition_count(topic), 0)


async def handle_describe_configs(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    body: Any = request.body
    with_docs = getattr(body, "include_documentation", False)
    results = []
    for resource in body.resources:
        keys = resource.configuration_keys
        base = {"resource_type": resource.resource_type, "resource_name": resource.resource_name}
        if resource.resource_type == RESOURCE_TOPIC:
            try:
                config = ctx.log.topic_config(resource.resource_name)
            except LogError as exc:
                results.append(
                    {
                        **base,
                        "error_code": error_code_for(exc),
                        "error_message": str(exc),
                        "configs": [],
                    }
                )
                continue
            overrides = config.overrides(ctx.log.default_config)
            entries = [
                _entry(key, value, SOURCE_TOPIC if key in overrides else SOURCE_DEFAULT, with_docs)
                for key, value in config.to_map().items()
                if keys is None or key in keys
            ]
        elif resource.resource_type == RESOURCE_BROKER:
            if resource.resource_name not in ("", str(ctx.node_id)):
                results.append(
                    {
                        **base,
                        "error_code": ErrorCode.INVALID_REQUEST,
                        "error_message": f"no broker {resource.resource_name}",
                        "configs": [],
                    }
                )
                continue
            entries = [
                _broker_entry(key, value)
                for key, value in _broker_configs(ctx).items()
                if keys is None or key in keys
            ]
        else:
            results.append(
                {
                    **base,
                    "error_code": ErrorCode.INVALID_REQUEST,
                    "error_message": f"resource type {resource.resource_type} is not supported",
                    "configs": [],
                }
            )
            continue
        results.append(
            {**base, "error_code": ErrorCode.NONE, "error_message": None, "configs": entries}
        )
    return build_message(
        response_class(ApiKey.DESCRIBE_CONFIGS, request.api_version),
        throttle_time=0,
        results=results,
    )


def _entry(key: str, value: str, source: int, with_docs: bool) -> dict[str, Any]:
    info = describe_config(key) if key in TOPIC_CONFIG_KEYS else None
    return {
        "name": key,
        "value": value,
        "read_only": False,
        "config_source": source,
        "is_sensitive": False,
        "synonyms": [],
        "config_type": int(info.type) if info else 0,
        "documentation": info.documentation if (info and with_docs) else None,
    }


def _broker_entry(key: str, value: str) -> dict[str, Any]:
    return {
        "name": key,
        "value": value,
        "read_only": True,
        "config_source": SOURCE_STATIC_BROKER,
        "is_sensitive": False,
        "synonyms": [],
        "config_type": 0,
        "documentation": None,
    }


def _broker_configs(ctx: BrokerContext) -> dict[str, str]:
    cfg = ctx.config
    host, port = ctx.advertised
    return {
        "broker.id": str(cfg.node_id),
        "log.dirs": os.path.abspath(cfg.data_dir),
        "listeners": f"PLAINTEXT://{cfg.host}:{ctx.port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "auto.create.topics.enable": str(cfg.auto_create_topics).lower(),
        "num.partitions": str(cfg.default_partitions),
        "default.replication.factor": "1",
        "offsets.topic.num.partitions": str(cfg.offsets_topic_partitions),
        "socket.request.max.bytes": str(cfg.max_frame_bytes),
        "max.connections": str(cfg.max_connections),
        "max.connections.per.ip": str(cfg.max_connections_per_ip),
        "connections.max.idle.ms": str(cfg.idle_timeout_ms),
        "connection.failed.authentication.delay.ms": str(cfg.failed_authentication_delay_ms),
        "group.min.session.timeout.ms": str(cfg.group_min_session_timeout_ms),
        "group.max.session.timeout.ms": str(cfg.group_max_session_timeout_ms),
        "group.initial.rebalance.delay.ms": str(cfg.group_initial_rebalance_delay_ms),
    }
