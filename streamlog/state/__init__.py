"""streamlog.state: table stores (memory, RocksDB), transactions, the commit sequence,
changelogs, recovery and event-time windows. See docs/state.md."""

from streamlog.state.changelog import (
    changelog_configs,
    changelog_topic_name,
    ensure_changelog_topic,
)
from streamlog.state.checkpoint import Checkpoint, CommitOffsets
from streamlog.state.errors import (
    ChangelogError,
    ChangelogPartitionsError,
    CheckpointClosedError,
    CheckpointError,
    RecoveryError,
    RecoveryStalledError,
    StateError,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    TransactionStateError,
)
from streamlog.state.memory_store import MemoryStore, MemoryStorePartition
from streamlog.state.recovery import RecoveryResult, recover_partition
from streamlog.state.rocksdb_store import RocksDBStore, RocksDBStorePartition
from streamlog.state.stores import Store, StorePartition
from streamlog.state.transaction import PartitionTransaction, TransactionState

__all__ = [
    "ChangelogError",
    "ChangelogPartitionsError",
    "Checkpoint",
    "CheckpointClosedError",
    "CheckpointError",
    "CommitOffsets",
    "MemoryStore",
    "MemoryStorePartition",
    "PartitionTransaction",
    "RecoveryError",
    "RecoveryResult",
    "RecoveryStalledError",
    "RocksDBStore",
    "RocksDBStorePartition",
    "StateError",
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoreLockedError",
    "StorePartition",
    "TransactionState",
    "TransactionStateError",
    "changelog_configs",
    "changelog_topic_name",
    "ensure_changelog_topic",
    "recover_partition",
]
