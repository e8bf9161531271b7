"""From the log engine's exceptions to Kafka error codes, in one place."""

from __future__ import annotations

from streamlog.broker.errors import PartitionLimitError
from streamlog.log.compression import UnsupportedCompressionError
from streamlog.log.errors import (
    ConcurrentTransactionsError,
    CoordinatorNotLoadedError,
    CorruptRecordError,
    InvalidConfigError,
    InvalidGroupIdError,
    InvalidPartitionsError,
    InvalidProducerIdMappingError,
    InvalidRecordError,
    InvalidTimestampError,
    InvalidTopicNameError,
    InvalidTransactionalIdError,
    InvalidTransactionTimeoutError,
    InvalidTxnStateError,
    LogClosedError,
    LogError,
    OffsetMetadataTooLargeError,
    OffsetOutOfRangeError,
    OperationNotAttemptedError,
    ProducerFencedError,
    RecordTooLargeError,
    TopicExistsError,
    TransactionCoordinatorFencedError,
    TransactionLimitError,
    UnknownTopicError,
)
from streamlog.log.producer_state import InvalidProducerEpochError, OutOfOrderSequenceError
from streamlog.protocol import ErrorCode

__all__ = ["error_code_for"]

_CODES: tuple[tuple[type[BaseException], ErrorCode], ...] = (
    (PartitionLimitError, ErrorCode.POLICY_VIOLATION),
    (UnknownTopicError, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    (CorruptRecordError, ErrorCode.CORRUPT_MESSAGE),
    (RecordTooLargeError, ErrorCode.MESSAGE_TOO_LARGE),
    (UnsupportedCompressionError, ErrorCode.UNSUPPORTED_COMPRESSION_TYPE),
    (InvalidTimestampError, ErrorCode.INVALID_TIMESTAMP),
    (InvalidRecordError, ErrorCode.INVALID_RECORD),
    (InvalidTxnStateError, ErrorCode.INVALID_TXN_STATE),
    (OffsetOutOfRangeError, ErrorCode.OFFSET_OUT_OF_RANGE),
    (InvalidTopicNameError, ErrorCode.INVALID_TOPIC_EXCEPTION),
    (TopicExistsError, ErrorCode.TOPIC_ALREADY_EXISTS),
    (InvalidPartitionsError, ErrorCode.INVALID_PARTITIONS),
    (InvalidConfigError, ErrorCode.INVALID_CONFIG),
    (OutOfOrderSequenceError, ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER),
    (InvalidProducerEpochError, ErrorCode.INVALID_PRODUCER_EPOCH),
    (TransactionCoordinatorFencedError, ErrorCode.TRANSACTION_COORDINATOR_FENCED),
    (ProducerFencedError, ErrorCode.PRODUCER_FENCED),
    (InvalidProducerIdMappingError, ErrorCode.INVALID_PRODUCER_ID_MAPPING),
    (ConcurrentTransactionsError, ErrorCode.CONCURRENT_TRANSACTIONS),
    (InvalidTransactionTimeoutError, ErrorCode.INVALID_TRANSACTION_TIMEOUT),
    (InvalidTransactionalIdError, ErrorCode.INVALID_REQUEST),
    (InvalidGroupIdError, ErrorCode.INVALID_GROUP_ID),
    (TransactionLimitError, ErrorCode.POLICY_VIOLATION),
    (OffsetMetadataTooLargeError, ErrorCode.OFFSET_METADATA_TOO_LARGE),
    (OperationNotAttemptedError, ErrorCode.OPERATION_NOT_ATTEMPTED),
    (CoordinatorNotLoadedError, ErrorCode.COORDINATOR_NOT_AVAILABLE),
    (LogClosedError, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    (LogError, ErrorCode.UNKNOWN_SERVER_ERROR),
    (OSError, ErrorCode.KAFKA_STORAGE_ERROR),
)


def error_code_for(exc: BaseException) -> ErrorCode:
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return ErrorCode.UNKNOWN_SERVER_ERROR
