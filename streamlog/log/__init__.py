"""The bundled log engine: Kafka's storage model in Python.

Layers, bottom up: ``records`` (RecordBatch v2 codec) and ``batch_header``; ``index`` and
``segment`` (one ``.log`` file with its indexes); ``partition_log`` (the segments of one
partition: append, read, flush, recovery, retention); ``cleaner`` (compaction);
``manager`` (topics, configs, group offsets, maintenance); ``txn_coordinator`` (the
transaction coordinator, its state in ``txn_state``), shared by the broker and the
embedded transport. Nothing here imports from the
rest of streamlog.
"""

from streamlog.log.batch_header import BatchHeader
from streamlog.log.cleaner import CleanResult, LogCleaner
from streamlog.log.clock import Clock, ManualClock, SystemClock
from streamlog.log.config import TopicConfig
from streamlog.log.errors import (
    CorruptRecordError,
    DataDirectoryLockedError,
    InternalTopicError,
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidRecordError,
    InvalidTopicNameError,
    LogClosedError,
    LogError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    TopicExistsError,
    UnknownTopicError,
)
from streamlog.log.group_offsets import OFFSETS_TOPIC, GroupOffsetStore, OffsetAndMetadata
from streamlog.log.maintenance import MaintenanceReport
from streamlog.log.manager import LogManager, PartitionDescription, TopicDescription
from streamlog.log.partition_log import (
    AbortedTxn,
    AppendOrigin,
    AppendResult,
    IsolationLevel,
    PartitionLog,
    ReadResult,
)
from streamlog.log.partitioner import (
    DefaultPartitioner,
    RoundRobinPartitioner,
    StickyPartitioner,
    murmur2,
    partition_for_key,
)
from streamlog.log.records import (
    Compression,
    ControlRecord,
    ControlType,
    DecodedBatch,
    Record,
    decode_batch,
    encode_batch,
    encode_control_batch,
    encode_records,
    iter_batches,
)
from streamlog.log.txn_coordinator import (
    TransactionCoordinator,
    TransactionDescription,
    TransactionListing,
    TxnStatus,
)

__all__ = [
    "AbortedTxn",
    "AppendOrigin",
    "AppendResult",
    "BatchHeader",
    "CleanResult",
    "Clock",
    "Compression",
    "ControlRecord",
    "ControlType",
    "CorruptRecordError",
    "DataDirectoryLockedError",
    "DecodedBatch",
    "DefaultPartitioner",
    "GroupOffsetStore",
    "InternalTopicError",
    "InvalidConfigError",
    "InvalidPartitionsError",
    "InvalidRecordError",
    "InvalidTopicNameError",
    "IsolationLevel",
    "LogCleaner",
    "LogClosedError",
    "LogError",
    "LogManager",
    "MaintenanceReport",
    "ManualClock",
    "OFFSETS_TOPIC",
    "OffsetAndMetadata",
    "OffsetOutOfRangeError",
    "PartitionDescription",
    "PartitionLog",
    "ReadResult",
    "Record",
    "RecordTooLargeError",
    "RoundRobinPartitioner",
    "StickyPartitioner",
    "SystemClock",
    "TopicConfig",
    "TopicDescription",
    "TopicExistsError",
    "TransactionCoordinator",
    "TransactionDescription",
    "TransactionListing",
    "TxnStatus",
    "UnknownTopicError",
    "decode_batch",
    "encode_batch",
    "encode_control_batch",
    "encode_records",
    "iter_batches",
    "murmur2",
    "partition_for_key",
]
