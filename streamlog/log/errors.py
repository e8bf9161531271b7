"""Exceptions raised by the log engine.

Each failure a caller may want to handle differently has its own class; all derive from
``LogError`` (a ``StreamlogError``) so that a server can catch the engine's errors
without catching bugs.
"""

from __future__ import annotations

from streamlog.errors import StreamlogError

__all__ = [
    "LogError",
    "DataFormatError",
    "DataFormatTooNewError",
    "CorruptRecordError",
    "InvalidRecordError",
    "OffsetOutOfRangeError",
    "UnknownTopicError",
    "TopicExistsError",
    "InvalidTopicNameError",
    "InternalTopicError",
    "InvalidPartitionsError",
    "InvalidConfigError",
    "DataDirectoryLockedError",
    "LogClosedError",
    "RecordTooLargeError",
    "DecompressionLimitError",
    "MalformedRecordError",
    "RecordValidationError",
    "InvalidTimestampError",
    "InvalidTxnStateError",
    "UnsupportedCompressionError",
    "IndexCorruptError",
    "OutOfOrderSequenceError",
    "InvalidProducerEpochError",
    "TransactionCoordinatorFencedError",
    "TransactionError",
    "ProducerFencedError",
    "InvalidProducerIdMappingError",
    "ConcurrentTransactionsError",
    "InvalidTransactionTimeoutError",
    "InvalidTransactionalIdError",
    "InvalidGroupIdError",
    "TransactionLimitError",
    "OffsetMetadataTooLargeError",
    "OperationNotAttemptedError",
    "CoordinatorNotLoadedError",
]


class LogError(StreamlogError):
    """Base class of every error the log engine raises on purpose."""


class CorruptRecordError(LogError):
    """Bytes that claim to be a record batch fail a structural or CRC check."""


class InvalidRecordError(LogError):
    """A well-formed batch that the log refuses (wrong magic, bad offsets, bad sizes)."""


class DecompressionLimitError(CorruptRecordError):
    """A compressed batch that inflates past the bound its reader allows (a bomb, or a
    batch larger than ``max.message.bytes`` once decompressed)."""


class RecordTooLargeError(InvalidRecordError):
    """A batch larger than the topic's ``max.message.bytes``."""


class MalformedRecordError(InvalidRecordError):
    """A batch whose CRC holds but whose records do not parse (framing, varints, a record
    count that is not the number of records, a payload that does not decompress).

    Not a ``CorruptRecordError``: the bytes arrived as their sender wrote them, so sending
    them again cannot help (Kafka answers INVALID_RECORD, which clients do not retry).
    """


class RecordValidationError(InvalidRecordError):
    """Well-formed records that break a rule of the topic (a compacted topic's record
    without a key, a timestamp out of range).

    ``record_errors`` holds ``(index of the record in its batch, message)`` for the first
    records at fault, which Produce v8+ reports per record.
    """

    def __init__(self, message: str, record_errors: tuple[tuple[int, str], ...] = ()) -> None:
        super().__init__(message)
        self.record_errors = record_errors


class InvalidTimestampError(RecordValidationError):
    """A record timestamp outside ``message.timestamp.before/after.max.ms`` of the
    broker's clock, or a client batch that claims LogAppendTime on a CreateTime topic."""


class InvalidTxnStateError(LogError):
    """A transactional batch from a producer with no transaction open on the partition
    (Kafka's INVALID_TXN_STATE: "Record was not part of an ongoing transaction")."""


class OffsetOutOfRangeError(LogError):
    """A read asked for an offset below the log start offset or past the log end offset."""

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        super().__init__(f"offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


class UnknownTopicError(LogError):
    """The topic (or the partition of a topic) does not exist."""


class TopicExistsError(LogError):
    """``create_topic`` was asked for a name that is already taken."""


class InvalidTopicNameError(LogError):
    """A topic name Kafka would refuse: empty, too long, '.'/'..', or illegal characters."""


class InternalTopicError(InvalidTopicNameError):
    """A client tried to write to, create, delete or grow a topic the broker owns.

    Internal topics (``__consumer_offsets``...) hold the broker's own state: one forged
    record there moves another group's offsets. Kafka answers INVALID_TOPIC_EXCEPTION,
    hence the base class.
    """


class InvalidPartitionsError(LogError):
    """A partition count that is not positive, or that would shrink a topic."""


class InvalidConfigError(LogError):
    """An unknown topic config key, or a value of the wrong type or range."""


class DataDirectoryLockedError(LogError):
    """Another process owns the data directory."""


class DataFormatError(LogError):
    """The data directory's format record (``.format``) cannot be read."""


class DataFormatTooNewError(DataFormatError):
    """The data directory was written in a newer format than this streamlog reads."""


class LogClosedError(LogError):
    """An operation on a log (or log manager) that has been closed."""


class UnsupportedCompressionError(InvalidRecordError):
    """A compression id Kafka does not define (5-7), or one we were asked to use wrongly."""


class IndexCorruptError(LogError):
    """An index file that does not match its log; the caller rebuilds it."""


class OutOfOrderSequenceError(LogError):
    """A batch's sequence does not follow the producer's last one."""


class InvalidProducerEpochError(LogError):
    """A batch from an older epoch than one already seen: that producer is fenced."""


class TransactionCoordinatorFencedError(LogError):
    """A transaction marker from a coordinator epoch older than one already seen for that
    producer: a newer coordinator owns its transactions (Kafka's
    TRANSACTION_COORDINATOR_FENCED)."""


class TransactionError(LogError):
    """Base of the transaction coordinator's refusals (``txn_coordinator.py``).

    ``InvalidTxnStateError`` is raised by the coordinator too, for a request that does
    not fit the transaction's state (an EndTxn with nothing open, a commit after an
    abort, offsets for a group the transaction did not add).
    """


class ProducerFencedError(TransactionError):
    """A request from a producer epoch other than the transactional id's current one: a
    newer instance (or the coordinator, on a timeout) bumped the epoch (Kafka's
    PRODUCER_FENCED)."""


class InvalidProducerIdMappingError(TransactionError):
    """A transactional id the coordinator does not know, or one mapped to another
    producer id (Kafka's INVALID_PRODUCER_ID_MAPPING)."""


class ConcurrentTransactionsError(TransactionError):
    """The transaction is still completing (its markers are not all written): retry
    (Kafka's CONCURRENT_TRANSACTIONS, which clients retry)."""


class InvalidTransactionTimeoutError(TransactionError):
    """A transaction timeout that is not positive or exceeds the coordinator's maximum
    (Kafka's INVALID_TRANSACTION_TIMEOUT, ``transaction.max.timeout.ms``)."""


class InvalidTransactionalIdError(TransactionError):
    """An empty or over-long transactional id (Kafka answers INVALID_REQUEST)."""


class InvalidGroupIdError(TransactionError):
    """An empty or over-long group id in AddOffsetsToTxn (Kafka's INVALID_GROUP_ID)."""


class TransactionLimitError(TransactionError):
    """A transaction past a bound of the coordinator: too many partitions, groups or
    pending offsets in one transaction, or too many transactional ids."""


class OffsetMetadataTooLargeError(TransactionError):
    """Offset metadata longer than ``offset.metadata.max.bytes`` (Kafka's
    OFFSET_METADATA_TOO_LARGE)."""


class OperationNotAttemptedError(TransactionError):
    """A partition of an AddPartitionsToTxn that was not added because another
    partition of the same request was refused (Kafka's OPERATION_NOT_ATTEMPTED)."""


class CoordinatorNotLoadedError(TransactionError):
    """The coordinator's state is not loaded yet (or it was closed): Kafka's
    COORDINATOR_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE."""
