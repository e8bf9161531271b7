"""streamlog: stream processing for Python on a bundled, Kafka-compatible log.

Importing this package defines things and does nothing else: no connection, no thread,
no logging configuration.
"""

from streamlog import _kio_import  # noqa: F401, I001 - first: kio without hypothesis hooks
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
    Settings,
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

# A program that feeds or reads an app's topics from outside the app (a data generator, a
# test, a benchmark) needs a client for the URL the app uses; connect() is the one the
# streamlog tools use, so it also reaches a file:// log that a running worker holds.
from streamlog.transport.connect import connect
from streamlog.transport.credentials import (
    GSSAPICredentials,
    OAuthCredentials,
    SASLCredentials,
    SSLCredentials,
)
from streamlog.transport.security import ClientSecurity
from streamlog.types import AgentT, AppT, ChannelT, EventT, ModelT, StreamT, TableT, TopicT
from streamlog.uuids import uuid

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
    "ClientSecurity",
    "GSSAPICredentials",
    "OAuthCredentials",
    "SASLCredentials",
    "SSLCredentials",
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
    "Settings",
    "Stream",
    "StreamlogError",
    "StreamsError",
    "Topic",
    "ValueDecodeError",
    "__version__",
    "codecs",
    "connect",
    "current_event",
    "default_codecs",
    "uuid",
    "web",
]


def __getattr__(name: str) -> object:
    """``streamlog.Worker`` (Faust's ``faust.Worker``), ``streamlog.cli`` (``faust.cli``'s
    ``option``/``argument``) and ``streamlog.windows`` (``faust.windows``), imported when
    first used: the command line, which ``import streamlog`` does not load, and the names
    a program ported by ``import streamlog as faust`` reaches for."""
    if name == "Worker":
        from streamlog.cli.worker import Worker

        return Worker
    if name in ("cli", "windows"):
        import importlib

        return importlib.import_module(
            "streamlog.cli" if name == "cli" else "streamlog.faust.windows"
        )
    raise AttributeError(f"module 'streamlog' has no attribute {name!r}")
