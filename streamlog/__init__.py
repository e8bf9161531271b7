"""streamlog: stream processing for Python on a bundled, Kafka-compatible log.

Importing this package defines things and does nothing else: no connection, no thread,
no logging configuration.
"""

from streamlog import types, web  # faust.types; faust.web (aiohttp imported when used)
from streamlog.dsl import (
    Agent,
    AgentError,
    App,
    AppNotFoundError,
    AskTimeoutError,
    Channel,
    Event,
    ImproperlyConfigured,
    ManualAsyncClock,
    Message,
    Stream,
    StreamlogError,
    StreamsError,
    Topic,
)
from streamlog.dsl.agents.crontab import Crontab, CrontabError
from streamlog.dsl.errors import WindowedTableError
from streamlog.dsl.joins.api import (
    CoPartitioningError,
    JoinStats,
    StreamStreamJoin,
    StreamTableJoin,
    TableTableJoin,
    join_stream_table,
)
from streamlog.dsl.runtime.context import current_event
from streamlog.dsl.tables.kinds import GlobalTable, SetTable
from streamlog.dsl.tables.table import PartitionNotOwnedError, Table
from streamlog.dsl.topology.graph import Topology
from streamlog.dsl.windows.table import WindowedTable, WindowSet
from streamlog.serde import (
    Codec,
    CodecRegistry,
    KeyDecodeError,
    Record,
    Schema,
    SerdeError,
    ValueDecodeError,
    codecs,
    default_codecs,
)
from streamlog.state.windows import (
    HoppingWindow,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    WindowRange,
)
from streamlog.types import AgentT, AppT, ChannelT, EventT, ModelT, StreamT, TableT, TopicT

__version__ = "0.1.0"

__all__ = [
    "AgentT",
    "AppT",
    "ChannelT",
    "EventT",
    "ModelT",
    "StreamT",
    "TableT",
    "TopicT",
    "Worker",
    "types",
    "CoPartitioningError",
    "Crontab",
    "CrontabError",
    "GlobalTable",
    "HoppingWindow",
    "JoinStats",
    "PartitionNotOwnedError",
    "SessionWindow",
    "SetTable",
    "SlidingWindow",
    "StreamStreamJoin",
    "StreamTableJoin",
    "Table",
    "TableTableJoin",
    "Topology",
    "TumblingWindow",
    "WindowRange",
    "WindowSet",
    "WindowedTable",
    "WindowedTableError",
    "join_stream_table",
    "Agent",
    "AgentError",
    "App",
    "AppNotFoundError",
    "AskTimeoutError",
    "Channel",
    "Codec",
    "CodecRegistry",
    "Event",
    "ImproperlyConfigured",
    "KeyDecodeError",
    "ManualAsyncClock",
    "Message",
    "Record",
    "Schema",
    "SerdeError",
    "Stream",
    "StreamlogError",
    "StreamsError",
    "Topic",
    "ValueDecodeError",
    "__version__",
    "codecs",
    "current_event",
    "default_codecs",
    "web",
]


def __getattr__(name: str) -> object:
    """``streamlog.Worker`` (Faust's ``faust.Worker``), imported when first used: it is the
    command line's worker, which ``import streamlog`` does not load."""
    if name == "Worker":
        from streamlog.cli.worker import Worker

        return Worker
    raise AttributeError(f"module 'streamlog' has no attribute {name!r}")
