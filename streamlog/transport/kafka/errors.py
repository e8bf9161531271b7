"""From Kafka error codes in responses to the transport's exceptions, in one place."""

from __future__ import annotations

from streamlog.protocol import ErrorCode
from streamlog.transport.errors import (
    GroupError,
    InvalidConfigError,
    InvalidPartitionsError,
    MembershipLostError,
    OffsetOutOfRangeError,
    RebalanceInProgressError,
    RecordTooLargeError,
    StaleGenerationError,
    TopicExistsError,
    TransportError,
    UnknownTopicError,
)

__all__ = ["error_for", "is_retriable", "COORDINATOR_ERRORS", "REJOIN_ERRORS"]

_BY_CODE: dict[int, type[TransportError]] = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: UnknownTopicError,
    ErrorCode.UNKNOWN_TOPIC_ID: UnknownTopicError,
    ErrorCode.TOPIC_ALREADY_EXISTS: TopicExistsError,
    ErrorCode.INVALID_PARTITIONS: InvalidPartitionsError,
    ErrorCode.INVALID_CONFIG: InvalidConfigError,
    ErrorCode.INVALID_REPLICATION_FACTOR: InvalidConfigError,
    ErrorCode.INVALID_TOPIC_EXCEPTION: InvalidConfigError,
    ErrorCode.OFFSET_OUT_OF_RANGE: OffsetOutOfRangeError,
    ErrorCode.MESSAGE_TOO_LARGE: RecordTooLargeError,
    ErrorCode.RECORD_LIST_TOO_LARGE: RecordTooLargeError,
    ErrorCode.REBALANCE_IN_PROGRESS: RebalanceInProgressError,
    ErrorCode.ILLEGAL_GENERATION: StaleGenerationError,
    ErrorCode.UNKNOWN_MEMBER_ID: MembershipLostError,
    ErrorCode.FENCED_INSTANCE_ID: GroupError,
    ErrorCode.INVALID_GROUP_ID: GroupError,
    ErrorCode.GROUP_ID_NOT_FOUND: GroupError,
    ErrorCode.NON_EMPTY_GROUP: GroupError,
    ErrorCode.INCONSISTENT_GROUP_PROTOCOL: GroupError,
    ErrorCode.INVALID_SESSION_TIMEOUT: GroupError,
    ErrorCode.GROUP_MAX_SIZE_REACHED: GroupError,
    ErrorCode.GROUP_AUTHORIZATION_FAILED: GroupError,
    ErrorCode.OFFSET_METADATA_TOO_LARGE: GroupError,
    ErrorCode.INVALID_COMMIT_OFFSET_SIZE: GroupError,
    ErrorCode.COORDINATOR_NOT_AVAILABLE: GroupError,
    ErrorCode.NOT_COORDINATOR: GroupError,
    ErrorCode.COORDINATOR_LOAD_IN_PROGRESS: GroupError,
}

# Errors after which a group client must find the coordinator again.
COORDINATOR_ERRORS = frozenset(
    {
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    }
)
# Errors after which a group member must join again.
REJOIN_ERRORS = frozenset(
    {
        ErrorCode.REBALANCE_IN_PROGRESS,
        ErrorCode.ILLEGAL_GENERATION,
        ErrorCode.UNKNOWN_MEMBER_ID,
    }
)


def _name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error code {code}"


def is_retriable(code: int) -> bool:
    try:
        return ErrorCode(code).retriable
    except ValueError:
        return False


def error_for(
    code: int,
    context: str,
    message: str | None = None,
    default: type[TransportError] = TransportError,
) -> TransportError:
    """The exception for a non-zero ``code`` answered about ``context`` (a topic, a group...)."""
    kind = _BY_CODE.get(code, default)
    text = f"{context}: {_name(code)}"
    if message:
        text += f" ({message})"
    return kind(text)
