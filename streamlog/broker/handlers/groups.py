"""Group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
OffsetFetch, ListGroups and DescribeGroups.

Each handler reads the request's fields for its version, asks ``ctx.coordinator`` and
builds the response of the same version with ``build_message`` (fields a version lacks are
dropped there). This broker coordinates every group, so FindCoordinator always names it.
Without a coordinator (``ctx.coordinator`` is None) every group API answers
COORDINATOR_NOT_AVAILABLE, which clients retry.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from streamlog.broker.context import BrokerContext, Session
from streamlog.broker.coordinator import GroupCoordinator
from streamlog.broker.group_metadata import JoinResult
from streamlog.log.group_offsets import OffsetAndMetadata
from streamlog.protocol import (
    DecodedRequest,
    ErrorCode,
    ResponsePayload,
    build_message,
    error_response_for,
    response_class,
)

__all__ = [
    "handle_find_coordinator",
    "handle_join_group",
    "handle_sync_group",
    "handle_heartbeat",
    "handle_leave_group",
    "handle_offset_commit",
    "handle_offset_fetch",
    "handle_list_groups",
    "handle_describe_groups",
]

_GROUP_KEY = 0
_TRANSACTION_KEY = 1
_MAX_METADATA_BYTES = 4096  # Kafka's offset.metadata.max.bytes
# DescribeGroups v3+: READ, DELETE and DESCRIBE, the operations a group has (no ACLs here)
_GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)
_NOT_REQUESTED = -(2**31)


def _respond(request: DecodedRequest, **values: Any) -> ResponsePayload:
    return build_message(
        response_class(request.api_key, request.api_version), throttle_time=0, **values
    )


def _ms(value: datetime.timedelta) -> int:
    return value // datetime.timedelta(milliseconds=1)


def _needs_coordinator(
    handler: Callable[
        [GroupCoordinator, BrokerContext, Session, DecodedRequest], Awaitable[ResponsePayload]
    ],
) -> Callable[[BrokerContext, Session, DecodedRequest], Awaitable[ResponsePayload]]:
    """Hand ``ctx.coordinator`` to ``handler``, or answer COORDINATOR_NOT_AVAILABLE."""

    @functools.wraps(handler)
    async def with_coordinator(
        ctx: BrokerContext, session: Session, request: DecodedRequest
    ) -> ResponsePayload:
        if ctx.coordinator is None:
            return error_response_for(request, ErrorCode.COORDINATOR_NOT_AVAILABLE)
        return await handler(ctx.coordinator, ctx, session, request)

    return with_coordinator


# -- FindCoordinator ---------------------------------------------------------------------


async def handle_find_coordinator(
    ctx: BrokerContext, session: Session, request: DecodedRequest
) -> ResponsePayload:
    body: Any = request.body
    key_type = int(getattr(body, "key_type", _GROUP_KEY))
    keys: list[str] = list(body.coordinator_keys) if request.api_version >= 4 else [body.key]
    answers = [_coordinator_for(ctx, key, key_type) for key in keys]
    if request.api_version >= 4:
        return _respond(request, coordinators=answers)
    return _respond(request, **answers[0])


def _coordinator_for(ctx: BrokerContext, key: str, key_type: int) -> dict[str, Any]:
    available = ctx.coordinator if key_type == _GROUP_KEY else ctx.transactions
    if key_type in (_GROUP_KEY, _TRANSACTION_KEY) and available is not None:
        host, port = ctx.advertised
        return {
            "key": key,
            "error_code": ErrorCode.NONE,
            "error_message": None,
            "node_id": ctx.node_id,
            "host": host,
            "port": port,
        }
    if key_type in (_GROUP_KEY, _TRANSACTION_KEY):
        code, message = ErrorCode.COORDINATOR_NOT_AVAILABLE, "no coordinator for this key type"
    else:
        code, message = ErrorCode.INVALID_REQUEST, f"unknown key type {key_type}"
    return {
        "key": key,
        "error_code": code,
        "error_message": message,
        "node_id": -1,
        "host": "",
        "port": -1,
    }


# -- JoinGroup, SyncGroup, Heartbeat, LeaveGroup -----------------------------------------


@_needs_coordinator
async def handle_join_group(
    coordinator: GroupCoordinator,
    ctx: BrokerContext,
    session: Session,
    request: DecodedRequest,
) -> ResponsePayload:
    body: Any = request.body
    version = request.api_version
    session_ms = _ms(body.session_timeout)
    instance_id = getattr(body, "group_instance_id", None)
    result = await coordinator.join_group(
        body.group_id,
        body.member_id,
        protocol_type=body.protocol_type,
        protocols=[(p.name, p.metadata) for p in body.protocols],
        session_timeout_ms=session_ms,
        rebalance_timeout_ms=_ms(body.rebalance_timeout) if version >= 1 else session_ms,
        group_instance_id=instance_id,
        client_id=request.client_id or "",
        client_host=session.peer,
        require_known_member_id=version >= 4 and instance_id is None,
    )
    return _join_response(request, result)


def _join_response(request: DecodedRequest, result: JoinResult) -> ResponsePayload:
    protocol_name = result.protocol_name
    if protocol_name is None and request.api_version < 7:
        protocol_name = ""  # nullable from v7 only
    return _respond(
        request,
        error_code=result.error,
        generation_id=result.generation_id,
        protocol_type=result.protocol_type,
        protocol_name=protocol_name,
        leader=result.leader_id,
        skip_assignment=result.skip_assignment,
        member_id=result.member_id,
        members=[
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "metadata": m.metadata,
            }
            for m in result.members
        ],
    )


@_needs_coordinator
async def handle_sync_group(
    coordinator: GroupCoordinator,
    ctx: BrokerContext,
    session: Session,
    request: DecodedRequest,
) -> ResponsePayload:
    body: Any = request.body
    result = await coordinator.sync_group(
        body.group_id,
        body.member_id,
        body.generation_id,
        {a.member_id: a.assignment for a in body.assignments},
        group_instance_id=getattr(body, "group_instance_id", None),
        protocol_type=getattr(body, "protocol_type", None),
        protocol_name=getattr(body, "protocol_name", None),
    )
    return _respond(
        request,
        error_code=result.error,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name,
        assignment=result.assignment,
    )


@_needs_coordinator
async def handle_heartbeat(
    coordinator: GroupCoordinator,
    ctx: BrokerContext,
    session: Session,
    request: DecodedRequest,
) -> ResponsePayload:
    body: Any = request.body
    code = coordinator.heartbeat(
        body.group_id,
        body.member_id,
        body.generation_id,
        getattr(body, "group_instance_id", None),
    )
    return _respond(request, error_code=code)


@_needs_coordinator
async def handle_leave_group(
    coordinator: GroupCoordinator,
    ctx: BrokerContext,
    session: Session,
    request: DecodedRequest,
) -> ResponsePayload:
    body: Any = request.body
    if request.api_version < 3:
        leaving: list[tuple[str, str | None]] = [(body.member_id, None)]
    else:
        leaving = [(m.member_id, m.group_instance_id) for m in body.members]
    result = coordinator.leave_group(body.group_id, leaving)
    if request.api_version < 3:
        # one member, one error code: the member's, unless the group itself failed
        code = result.error
        if code is ErrorCode.NONE and result.member_errors:
            code = result.member_errors[0]
        return _respond(request, error_code=code)
    member_errors = result.member_errors or (result.error,) * len(leaving)
    return _respond(
        request,
        error_code=result.error,
        members=[
            {"member_id": member_id, "group_instance_id": instance_id, "error_code": code}
            for (member_id, instance_id), code in zip(leaving, member_errors, strict=True)
        ],
    )


# -- OffsetCommit and OffsetFetch --------------------------------------------------------


@_needs_coordinator
async def handle_offset_commit(
    coordinator: GroupCoordinator,
    ctx: BrokerContext,
    session: Session,
    request: DecodedRequest,
) -> ResponsePayload:
    body: Any = request.body
    # (topic, [(partition, error or None while pending)]) in request order
    answers: list[tuple[str, list[tuple[int, ErrorCode | None]]]] = []
    offsets: dict[tuple[str, int], OffsetAndMetadata] = {}
    for topic in body.topics:
        partition_count = _partition_count(ctx, topic.name)
        rows: list[tuple[int, ErrorCode | None]] = []
        for p in topic.partitions:
            index = p.partition_index
            metadata = p.committed_metadata or ""
            code: ErrorCode | None = None
            if not 0 <= index < partition_count:
                code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif len(metadata.encode()) > _MAX_METADATA_BYTES:
                code = ErrorCode.OFFSET_METADATA_TOO_LARGE
            else:
                offsets[(topic.name, index)] = OffsetAndMetadata(
                    p.committed_offset,
                    metadata,
                    getattr(p, "committed_leader_epoch", -1),
                    -1,
                )
            rows.append((index, code))
        answers.append((topic.name, rows))
    common = ErrorCode.NONE
    if offsets:
        common = await coordinator.commit_offsets(
            body.group_id,
            body.member_id,
            body.generation_id_or_member_epoch,
            offsets,
            group_instance_id=getattr(body, "group_instance_id", None),
        )
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
    """Partitions of ``topic``, 0 if it does not exist."""
    if not ctx.log.topic_exists(topic):
        return 0
    try:
        return ctx.log.partition_count(topic)
    except Exception:  # deleted meanwhile
        return 0


@_needs_coordinator
async def handle_offset_fetch(
    coordinator: GroupCoordinator,
    ctx: BrokerContext,
    session: Session,
    request: DecodedRequest,
) -> ResponsePayload:
    body: Any = request.body
    stable = bool(getattr(body, "require_stable", False)) and ctx.transactions is not None

    def unstable(group_id: str) -> set[tuple[str, int]]:
        # KIP-447: offsets an open transaction holds for the group are not answered yet
        if not stable or ctx.transactions is None:
            return set()
        return ctx.transactions.coordinator.pending_offsets(group_id)

    if request.api_version >= 8:
        groups = [
            _fetch_group(coordinator, g.group_id, g.topics, unstable(g.group_id))
            for g in body.groups
        ]
        return _respond(request, groups=groups)
    group = _fetch_group(coordinator, body.group_id, body.topics, unstable(body.group_id))
    return _respond(request, error_code=group["error_code"], topics=group["topics"])


def _fetch_group(
    coordinator: GroupCoordinator,
    group_id: str,
    topics: Iterable[Any] | None,
    pending: set[tuple[str, int]],
) -> dict[str, Any]:
    """The group's committed offsets; a partition in ``pending`` (offsets held by an open
    transaction, asked with ``require_stable``) gets UNSTABLE_OFFSET_COMMIT, which
    clients retry."""
    requested = None
    if topics is not None:
        requested = [(t.name, list(t.partition_indexes)) for t in topics]
    wanted = None if requested is None else [(n, p) for n, ps in requested for p in ps]
    code, stored = coordinator.fetch_offsets(group_id, wanted)
    if requested is None:  # v2+: every committed partition
        by_topic: dict[str, list[int]] = {}
        for name, index in sorted(stored):
            by_topic.setdefault(name, []).append(index)
        requested = list(by_topic.items())
    none = OffsetAndMetadata(-1, "", -1)
    return {
        "group_id": group_id,
        "error_code": code,
        "topics": [
            {
                "name": name,
                "partitions": [
                    {
                        "partition_index": index,
                        "committed_offset": stored.get((name, index), none).offset,
                        "committed_leader_epoch": stored.get((name, index), none).leader_epoch,
                        "metadata": stored.get((name, index), none).metadata,
                        "error_code": (
                            ErrorCode.UNSTABLE_OFFSET_COMMIT
                            if code is ErrorCode.NONE and (name, index) in pending
                            else code
                        ),
                    }
                    for index in indexes
                ],
            }
            for name, indexes in requested
        ],
    }


# -- ListGroups and DescribeGroups -------------------------------------------------------


@_needs_coordinator
async def handle_list_groups(
    coordinator: GroupCoordinator,
    ctx: BrokerContext,
    session: Session,
    request: DecodedRequest,
) -> ResponsePayload:
    states = getattr(request.body, "states_filter", None) or None
    return _respond(
        request,
        error_code=ErrorCode.NONE,
        groups=[
            {
                "group_id": g.group_id,
                "protocol_type": g.protocol_type,
                "group_state": g.state.value,
            }
            for g in coordinator.list_groups(states)
        ],
    )


@_needs_coordinator
async def handle_describe_groups(
    coordinator: GroupCoordinator,
    ctx: BrokerContext,
    session: Session,
    request: DecodedRequest,
) -> ResponsePayload:
    body: Any = request.body
    operations = (
        _GROUP_OPERATIONS
        if getattr(body, "include_authorized_operations", False)
        else _NOT_REQUESTED
    )
    groups = []
    for group_id in body.groups:
        described = coordinator.describe_group(group_id)
        groups.append(
            {
                "error_code": ErrorCode.NONE,
                "group_id": group_id,
                "group_state": described.state.value,
                "protocol_type": described.protocol_type,
                "protocol_data": described.protocol_name,
                "members": [
                    {
                        "member_id": m.member_id,
                        "group_instance_id": m.group_instance_id,
                        "client_id": m.client_id,
                        "client_host": m.client_host,
                        "member_metadata": m.metadata,
                        "member_assignment": m.assignment,
                    }
                    for m in described.members
                ],
                "authorized_operations": operations,
            }
        )
    return _respond(request, groups=groups)
