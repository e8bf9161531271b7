"""Responses a server can always send: error answers to any request, and ApiVersions.

``error_response_for`` is what lets a broker answer a request it cannot serve (a handler
raised, the feature is missing) instead of dropping the connection: it mirrors the
request's topics, partitions, groups or resources into a response of the same version
with every error code set, and the "no value" sentinels Kafka uses in that case (offsets
and epochs of -1, empty records).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import ErrorCode, UnsupportedVersionError
from .produce import ProduceRequestView
from .requests import DecodedRequest
from .schema import ResponsePayload, build_message, response_class
from .versions import SUPPORTED_VERSIONS, ApiKey, VersionRange

__all__ = ["api_versions_response", "error_response_for"]


def api_versions_response(
    version: int,
    *,
    error_code: int = ErrorCode.NONE,
    supported: Mapping[int, VersionRange] = SUPPORTED_VERSIONS,
    throttle_time_ms: int = 0,
) -> ResponsePayload:
    """An ApiVersions response of ``version`` advertising ``supported``."""
    return build_message(
        response_class(ApiKey.API_VERSIONS, version),
        error_code=error_code,
        api_keys=[
            {"api_key": key, "min_version": r.min, "max_version": r.max}
            for key, r in sorted(supported.items())
        ],
        throttle_time=throttle_time_ms,
    )


def error_response_for(
    request: DecodedRequest | UnsupportedVersionError, error_code: int
) -> ResponsePayload:
    """A response to ``request`` reporting ``error_code`` everywhere it has an error code.

    Given the ``UnsupportedVersionError`` of an ApiVersions request, returns what Kafka
    sends: an ApiVersions v0 response with the error and our supported versions, which
    ``encode_response(error, response)`` frames. Other unsupported requests have no
    response the client could parse; Kafka closes the connection, and so should we.

    A Produce request with ``acks=0`` expects no response at all; the server should close
    the connection instead of sending this.

    :raises ValueError: ``request`` is an unsupported version of an API other than
        ApiVersions.
    """
    if isinstance(request, UnsupportedVersionError):
        if request.api_key != ApiKey.API_VERSIONS:
            raise ValueError(
                f"no response can answer API key {request.api_key} v{request.api_version}; "
                "close the connection"
            )
        return api_versions_response(0, error_code=error_code)
    values = _MIRRORS[request.api_key](request.body, int(error_code), request.api_version)
    return build_message(response_class(request.api_key, request.api_version), **values)


# Each mirror maps (request body, error code, version) to build_message values. Names a
# version lacks are dropped by build_message, so one mapping serves every version.
_Mirror = Callable[[Any, int, int], dict[str, Any]]


def _produce(body: Any, code: int, version: int) -> dict[str, Any]:
    if isinstance(body, ProduceRequestView):
        topics = [(t.name, [p.partition_index for p in t.partitions]) for t in body.topics]
    else:
        topics = [(t.name, [p.index for p in t.partition_data]) for t in body.topic_data]
    return {
        "responses": [
            {
                "name": name,
                "partition_responses": [
                    {
                        "index": index,
                        "error_code": code,
                        "base_offset": -1,
                        "log_append_time": None,
                        "log_start_offset": -1,
                    }
                    for index in indexes
                ],
            }
            for name, indexes in topics
        ]
    }


def _fetch(body: Any, code: int, version: int) -> dict[str, Any]:
    return {
        "error_code": code,
        "session_id": 0,
        "responses": [
            {
                "topic": topic.topic,
                "partitions": [
                    {
                        "partition_index": p.partition,
                        "error_code": code,
                        "high_watermark": -1,
                        "last_stable_offset": -1,
                        "log_start_offset": -1,
                        "aborted_transactions": None,
                        "records": b"",
                    }
                    for p in topic.partitions
                ],
            }
            for topic in body.topics
        ],
    }


def _list_offsets(body: Any, code: int, version: int) -> dict[str, Any]:
    return {
        "topics": [
            {
                "name": topic.name,
                "partitions": [
                    {
                        "partition_index": p.partition_index,
                        "error_code": code,
                        "timestamp": -1,
                        "offset": -1,
                        "leader_epoch": -1,
                    }
                    for p in topic.partitions
                ],
            }
            for topic in body.topics
        ]
    }


def _metadata(body: Any, code: int, version: int) -> dict[str, Any]:
    topics = []
    for topic in body.topics or ():
        entry: dict[str, Any] = {"error_code": code, "name": topic.name, "partitions": []}
        if topic.name is None and version < 12:
            entry["name"] = ""  # names are nullable in responses from v12 only
        if getattr(topic, "topic_id", None) is not None:
            entry["topic_id"] = topic.topic_id
        topics.append(entry)
    return {"brokers": [], "topics": topics}


def _offset_fetch_topics(topics: Any, code: int) -> list[dict[str, Any]]:
    return [
        {
            "name": topic.name,
            "partitions": [
                {
                    "partition_index": index,
                    "committed_offset": -1,
                    "committed_leader_epoch": -1,
                    "metadata": "",
                    "error_code": code,
                }
                for index in topic.partition_indexes
            ],
        }
        for topic in topics or ()
    ]


def _offset_fetch(body: Any, code: int, version: int) -> dict[str, Any]:
    if version >= 8:
        return {
            "groups": [
                {
                    "group_id": group.group_id,
                    "error_code": code,
                    "topics": _offset_fetch_topics(group.topics, code),
                }
                for group in body.groups
            ]
        }
    return {"error_code": code, "topics": _offset_fetch_topics(body.topics, code)}


def _offset_commit(body: Any, code: int, version: int) -> dict[str, Any]:
    return {
        "topics": [
            {
                "name": topic.name,
                "partitions": [
                    {"partition_index": p.partition_index, "error_code": code}
                    for p in topic.partitions
                ],
            }
            for topic in body.topics
        ]
    }


def _find_coordinator(body: Any, code: int, version: int) -> dict[str, Any]:
    if version >= 4:
        return {
            "coordinators": [
                {"key": key, "node_id": -1, "host": "", "port": -1, "error_code": code}
                for key in body.coordinator_keys
            ]
        }
    return {"error_code": code, "node_id": -1, "host": "", "port": -1}


def _join_group(body: Any, code: int, version: int) -> dict[str, Any]:
    return {"error_code": code, "generation_id": -1, "leader": "", "member_id": ""}


def _just_error(body: Any, code: int, version: int) -> dict[str, Any]:
    return {"error_code": code}


def _leave_group(body: Any, code: int, version: int) -> dict[str, Any]:
    return {
        "error_code": code,
        "members": [
            {
                "member_id": member.member_id,
                "group_instance_id": member.group_instance_id,
                "error_code": code,
            }
            for member in getattr(body, "members", ())
        ],
    }


def _sync_group(body: Any, code: int, version: int) -> dict[str, Any]:
    return {"error_code": code, "assignment": b""}


def _describe_groups(body: Any, code: int, version: int) -> dict[str, Any]:
    return {
        "groups": [
            {
                "error_code": code,
                "group_id": group_id,
                "group_state": "",
                "protocol_type": "",
                "protocol_data": "",
                "members": [],
            }
            for group_id in body.groups
        ]
    }


def _api_versions(body: Any, code: int, version: int) -> dict[str, Any]:
    # Kafka lists its versions only with UNSUPPORTED_VERSION, so the client can retry.
    api_keys = []
    if code == ErrorCode.UNSUPPORTED_VERSION:
        api_keys = [
            {"api_key": key, "min_version": r.min, "max_version": r.max}
            for key, r in sorted(SUPPORTED_VERSIONS.items())
        ]
    return {"error_code": code, "api_keys": api_keys}


def _create_topics(body: Any, code: int, version: int) -> dict[str, Any]:
    return {
        "topics": [
            {
                "name": topic.name,
                "error_code": code,
                "num_partitions": -1,
                "replication_factor": -1,
                "configs": None,
            }
            for topic in body.topics
        ]
    }


def _delete_topics(body: Any, code: int, version: int) -> dict[str, Any]:
    if version >= 6:
        return {
            "responses": [
                {"name": topic.name, "topic_id": topic.topic_id, "error_code": code}
                for topic in body.topics
            ]
        }
    return {"responses": [{"name": name, "error_code": code} for name in body.topic_names]}


def _init_producer_id(body: Any, code: int, version: int) -> dict[str, Any]:
    return {"error_code": code, "producer_id": -1, "producer_epoch": -1}


def _add_partitions_to_txn(body: Any, code: int, version: int) -> dict[str, Any]:
    return {
        "results_by_topic_v3_and_below": [
            {
                "name": topic.name,
                "results_by_partition": [
                    {"partition_index": p, "partition_error_code": code} for p in topic.partitions
                ],
            }
            for topic in body.v3_and_below_topics
        ]
    }


def _txn_offset_commit(body: Any, code: int, version: int) -> dict[str, Any]:
    return {
        "topics": [
            {
                "name": topic.name,
                "partitions": [
                    {"partition_index": p.partition_index, "error_code": code}
                    for p in topic.partitions
                ],
            }
            for topic in body.topics
        ]
    }


def _describe_transactions(body: Any, code: int, version: int) -> dict[str, Any]:
    return {
        "transaction_states": [
            {
                "error_code": code,
                "transactional_id": txn_id,
                "transaction_state": "",
                "transaction_timeout": 0,
                "transaction_start_time": 0,
                "producer_id": -1,
                "producer_epoch": -1,
                "topics": [],
            }
            for txn_id in body.transactional_ids
        ]
    }


def _describe_configs(body: Any, code: int, version: int) -> dict[str, Any]:
    return {
        "results": [
            {
                "error_code": code,
                "resource_type": resource.resource_type,
                "resource_name": resource.resource_name,
                "configs": [],
            }
            for resource in body.resources
        ]
    }


def _sasl_authenticate(body: Any, code: int, version: int) -> dict[str, Any]:
    return {"error_code": code, "auth_bytes": b""}


def _create_partitions(body: Any, code: int, version: int) -> dict[str, Any]:
    return {"results": [{"name": topic.name, "error_code": code} for topic in body.topics]}


_MIRRORS: Mapping[int, _Mirror] = {
    ApiKey.PRODUCE: _produce,
    ApiKey.FETCH: _fetch,
    ApiKey.LIST_OFFSETS: _list_offsets,
    ApiKey.METADATA: _metadata,
    ApiKey.OFFSET_COMMIT: _offset_commit,
    ApiKey.OFFSET_FETCH: _offset_fetch,
    ApiKey.FIND_COORDINATOR: _find_coordinator,
    ApiKey.JOIN_GROUP: _join_group,
    ApiKey.HEARTBEAT: _just_error,
    ApiKey.LEAVE_GROUP: _leave_group,
    ApiKey.SYNC_GROUP: _sync_group,
    ApiKey.DESCRIBE_GROUPS: _describe_groups,
    ApiKey.LIST_GROUPS: lambda body, code, version: {"error_code": code, "groups": []},
    ApiKey.SASL_HANDSHAKE: lambda body, code, version: {"error_code": code, "mechanisms": []},
    ApiKey.API_VERSIONS: _api_versions,
    ApiKey.CREATE_TOPICS: _create_topics,
    ApiKey.DELETE_TOPICS: _delete_topics,
    ApiKey.INIT_PRODUCER_ID: _init_producer_id,
    ApiKey.ADD_PARTITIONS_TO_TXN: _add_partitions_to_txn,
    ApiKey.ADD_OFFSETS_TO_TXN: _just_error,
    ApiKey.END_TXN: _just_error,
    ApiKey.TXN_OFFSET_COMMIT: _txn_offset_commit,
    ApiKey.DESCRIBE_CONFIGS: _describe_configs,
    ApiKey.SASL_AUTHENTICATE: _sasl_authenticate,
    ApiKey.CREATE_PARTITIONS: _create_partitions,
    ApiKey.DESCRIBE_TRANSACTIONS: _describe_transactions,
    ApiKey.LIST_TRANSACTIONS: lambda body, code, version: {
        "error_code": code,
        "unknown_state_filters": [],
        "transaction_states": [],
    },
}
