"""Errors of the wire codec, and Kafka's protocol error codes.

Exceptions: everything the codec raises on purpose derives from ``ProtocolError``, so a
server can catch a bad peer without catching its own bugs. The exceptions raised while
decoding a request carry as much of the request header as could be read, because the
protocol answers some of them (an unsupported ApiVersions version) and the server wants
to log the others before it closes the connection.

``ErrorCode`` holds the numbers Kafka puts in the ``error_code`` fields of its responses.
The numbers and names are those of the protocol specification ("Error Codes" in
https://kafka.apache.org/protocol); they never change meaning once assigned.
"""

from __future__ import annotations

import enum

from streamlog.errors import StreamlogError

__all__ = [
    "ProtocolError",
    "FrameTooLargeError",
    "RequestError",
    "UnsupportedApiError",
    "UnsupportedVersionError",
    "MalformedRequestError",
    "MalformedResponseError",
    "WireError",
    "ErrorCode",
]


class ProtocolError(StreamlogError):
    """Base class of every error the wire codec raises on purpose."""


class WireError(ProtocolError, ValueError):
    """Bytes that do not follow the Kafka wire grammar at this position (the decoders
    wrap it in a ``MalformedRequestError`` or ``MalformedResponseError``)."""


class FrameTooLargeError(ProtocolError):
    """A size prefix announced a frame that is negative or larger than allowed.

    The connection cannot be resynchronised after this: the peer must be disconnected.
    An HTTP request sent to a Kafka port is the classic cause (``GET `` read as a size is
    1,195,725,856 bytes).
    """

    def __init__(self, size: int, max_frame_size: int) -> None:
        if size < 0:
            message = f"invalid frame size {size} (negative)"
        else:
            message = f"frame of {size} bytes exceeds the limit of {max_frame_size} bytes"
        super().__init__(message)
        self.size = size
        self.max_frame_size = max_frame_size


class RequestError(ProtocolError):
    """A request frame that could not be decoded into a request the server serves.

    ``api_key``, ``api_version`` and ``correlation_id`` are ``None`` when the frame was too
    short to contain them; ``client_id`` is ``None`` when it was null or unreadable.
    """

    def __init__(
        self,
        message: str,
        *,
        api_key: int | None = None,
        api_version: int | None = None,
        correlation_id: int | None = None,
        client_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id
        self.client_id = client_id


class UnsupportedApiError(RequestError):
    """The request's API key is not one this codec serves.

    Kafka closes the connection in this case; there is no response type to answer with.
    """

    api_key: int
    api_version: int
    correlation_id: int

    def __init__(
        self, *, api_key: int, api_version: int, correlation_id: int, client_id: str | None
    ) -> None:
        super().__init__(
            f"unsupported API key {api_key} (version {api_version})",
            api_key=api_key,
            api_version=api_version,
            correlation_id=correlation_id,
            client_id=client_id,
        )


class UnsupportedVersionError(RequestError):
    """A known API key at a version outside our supported range.

    Kafka answers an ApiVersions request at an unsupported version with an ApiVersions v0
    response carrying ``UNSUPPORTED_VERSION`` and the supported ranges, so that the
    client can retry at a version both sides know (see ``error_response_for``); for every
    other API it closes the connection.
    """

    api_key: int
    api_version: int
    correlation_id: int

    def __init__(
        self,
        *,
        api_key: int,
        api_version: int,
        correlation_id: int,
        client_id: str | None,
        min_version: int,
        max_version: int,
    ) -> None:
        super().__init__(
            f"unsupported version {api_version} of API key {api_key} "
            f"(supported: {min_version}..{max_version})",
            api_key=api_key,
            api_version=api_version,
            correlation_id=correlation_id,
            client_id=client_id,
        )
        self.min_version = min_version
        self.max_version = max_version


class MalformedRequestError(RequestError):
    """A request frame that does not match its schema.

    Truncated or trailing bytes, invalid UTF-8, a negative length, an invalid boolean or a
    tagged field this schema does not know (kio cannot skip those) all end here.
    """


class MalformedResponseError(ProtocolError):
    """A response frame that does not match the schema of the request it answers."""


# Retriable codes, as classified by the specification. Kept beside the enum rather than
# inside it so that members stay plain ints (cheap to compare, hash and pack).
_RETRIABLE = frozenset(
    {
        2, 3, 5, 6, 7, 9, 13, 14, 15, 16, 19, 20, 41, 51, 56, 70, 71, 72, 74, 75, 78, 80,
        83, 84, 88, 89, 100, 103, 106, 122, 123, 133,
    }
)  # fmt: skip


class ErrorCode(enum.IntEnum):
    """Kafka protocol error codes, as sent in responses' ``error_code`` fields."""

    UNKNOWN_SERVER_ERROR = -1
    NONE = 0
    OFFSET_OUT_OF_RANGE = 1
    CORRUPT_MESSAGE = 2
    UNKNOWN_TOPIC_OR_PARTITION = 3
    INVALID_FETCH_SIZE = 4
    LEADER_NOT_AVAILABLE = 5
    NOT_LEADER_OR_FOLLOWER = 6
    REQUEST_TIMED_OUT = 7
    BROKER_NOT_AVAILABLE = 8
    REPLICA_NOT_AVAILABLE = 9
    MESSAGE_TOO_LARGE = 10
    STALE_CONTROLLER_EPOCH = 11
    OFFSET_METADATA_TOO_LARGE = 12
    NETWORK_EXCEPTION = 13
    COORDINATOR_LOAD_IN_PROGRESS = 14
    COORDINATOR_NOT_AVAILABLE = 15
    NOT_COORDINATOR = 16
    INVALID_TOPIC_EXCEPTION = 17
    RECORD_LIST_TOO_LARGE = 18
    NOT_ENOUGH_REPLICAS = 19
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20
    INVALID_REQUIRED_ACKS = 21
    ILLEGAL_GENERATION = 22
    INCONSISTENT_GROUP_PROTOCOL = 23
    INVALID_GROUP_ID = 24
    UNKNOWN_MEMBER_ID = 25
    INVALID_SESSION_TIMEOUT = 26
    REBALANCE_IN_PROGRESS = 27
    INVALID_COMMIT_OFFSET_SIZE = 28
    TOPIC_AUTHORIZATION_FAILED = 29
    GROUP_AUTHORIZATION_FAILED = 30
    CLUSTER_AUTHORIZATION_FAILED = 31
    INVALID_TIMESTAMP = 32
    UNSUPPORTED_SASL_MECHANISM = 33
    ILLEGAL_SASL_STATE = 34
    UNSUPPORTED_VERSION = 35
    TOPIC_ALREADY_EXISTS = 36
    INVALID_PARTITIONS = 37
    INVALID_REPLICATION_FACTOR = 38
    INVALID_REPLICA_ASSIGNMENT = 39
    INVALID_CONFIG = 40
    NOT_CONTROLLER = 41
    INVALID_REQUEST = 42
    UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
    POLICY_VIOLATION = 44
    OUT_OF_ORDER_SEQUENCE_NUMBER = 45
    DUPLICATE_SEQUENCE_NUMBER = 46
    INVALID_PRODUCER_EPOCH = 47
    INVALID_TXN_STATE = 48
    INVALID_PRODUCER_ID_MAPPING = 49
    INVALID_TRANSACTION_TIMEOUT = 50
    CONCURRENT_TRANSACTIONS = 51
    TRANSACTION_COORDINATOR_FENCED = 52
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
    SECURITY_DISABLED = 54
    OPERATION_NOT_ATTEMPTED = 55
    KAFKA_STORAGE_ERROR = 56
    LOG_DIR_NOT_FOUND = 57
    SASL_AUTHENTICATION_FAILED = 58
    UNKNOWN_PRODUCER_ID = 59
    REASSIGNMENT_IN_PROGRESS = 60
    DELEGATION_TOKEN_AUTH_DISABLED = 61
    DELEGATION_TOKEN_NOT_FOUND = 62
    DELEGATION_TOKEN_OWNER_MISMATCH = 63
    DELEGATION_TOKEN_REQUEST_NOT_ALLOWED = 64
    DELEGATION_TOKEN_AUTHORIZATION_FAILED = 65
    DELEGATION_TOKEN_EXPIRED = 66
    INVALID_PRINCIPAL_TYPE = 67
    NON_EMPTY_GROUP = 68
    GROUP_ID_NOT_FOUND = 69
    FETCH_SESSION_ID_NOT_FOUND = 70
    INVALID_FETCH_SESSION_EPOCH = 71
    LISTENER_NOT_FOUND = 72
    TOPIC_DELETION_DISABLED = 73
    FENCED_LEADER_EPOCH = 74
    UNKNOWN_LEADER_EPOCH = 75
    UNSUPPORTED_COMPRESSION_TYPE = 76
    STALE_BROKER_EPOCH = 77
    OFFSET_NOT_AVAILABLE = 78
    MEMBER_ID_REQUIRED = 79
    PREFERRED_LEADER_NOT_AVAILABLE = 80
    GROUP_MAX_SIZE_REACHED = 81
    FENCED_INSTANCE_ID = 82
    ELIGIBLE_LEADERS_NOT_AVAILABLE = 83
    ELECTION_NOT_NEEDED = 84
    NO_REASSIGNMENT_IN_PROGRESS = 85
    GROUP_SUBSCRIBED_TO_TOPIC = 86
    INVALID_RECORD = 87
    UNSTABLE_OFFSET_COMMIT = 88
    THROTTLING_QUOTA_EXCEEDED = 89
    PRODUCER_FENCED = 90
    RESOURCE_NOT_FOUND = 91
    DUPLICATE_RESOURCE = 92
    UNACCEPTABLE_CREDENTIAL = 93
    INCONSISTENT_VOTER_SET = 94
    INVALID_UPDATE_VERSION = 95
    FEATURE_UPDATE_FAILED = 96
    PRINCIPAL_DESERIALIZATION_FAILURE = 97
    SNAPSHOT_NOT_FOUND = 98
    POSITION_OUT_OF_RANGE = 99
    UNKNOWN_TOPIC_ID = 100
    DUPLICATE_BROKER_REGISTRATION = 101
    BROKER_ID_NOT_REGISTERED = 102
    INCONSISTENT_TOPIC_ID = 103
    INCONSISTENT_CLUSTER_ID = 104
    TRANSACTIONAL_ID_NOT_FOUND = 105
    FETCH_SESSION_TOPIC_ID_ERROR = 106
    INELIGIBLE_REPLICA = 107
    NEW_LEADER_ELECTED = 108
    OFFSET_MOVED_TO_TIERED_STORAGE = 109
    FENCED_MEMBER_EPOCH = 110
    UNRELEASED_INSTANCE_ID = 111
    UNSUPPORTED_ASSIGNOR = 112
    STALE_MEMBER_EPOCH = 113
    MISMATCHED_ENDPOINT_TYPE = 114
    UNSUPPORTED_ENDPOINT_TYPE = 115
    UNKNOWN_CONTROLLER_ID = 116
    UNKNOWN_SUBSCRIPTION_ID = 117
    TELEMETRY_TOO_LARGE = 118
    INVALID_REGISTRATION = 119
    TRANSACTION_ABORTABLE = 120
    INVALID_RECORD_STATE = 121
    SHARE_SESSION_NOT_FOUND = 122
    INVALID_SHARE_SESSION_EPOCH = 123
    FENCED_STATE_EPOCH = 124
    INVALID_VOTER_KEY = 125
    DUPLICATE_VOTER = 126
    VOTER_NOT_FOUND = 127
    INVALID_REGULAR_EXPRESSION = 128
    REBOOTSTRAP_REQUIRED = 129
    STREAMS_INVALID_TOPOLOGY = 130
    STREAMS_INVALID_TOPOLOGY_EPOCH = 131
    STREAMS_TOPOLOGY_FENCED = 132
    SHARE_SESSION_LIMIT_REACHED = 133

    @property
    def retriable(self) -> bool:
        """Whether a client may retry the request unchanged and expect it to succeed."""
        return self.value in _RETRIABLE
