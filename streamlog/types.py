"""Faust's abstract type names (``faust.types``) for streamlog's objects.

Faust programs annotate with ``StreamT[Order]``, ``ChannelT``, ``AgentT``, ``TableT``,
``EventT``: here they are ``typing.Protocol``s, generic where Faust's are, so that the
annotations evaluate (``StreamT[Order]`` is subscriptable), a type checker sees the methods
streamlog implements, and ``isinstance(x, StreamT)`` answers structurally (each Protocol is
``runtime_checkable``). Each lists what streamlog's concrete class offers and nothing
more: ``Stream``, ``Topic`` and ``Channel``, ``Agent``, ``Table``, ``Event``, ``App`` and
``Record`` all satisfy them (mypy checks that below, so a Protocol cannot drift from its
class unnoticed).

Importing this module only defines names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from streamlog.dsl.agents.topics import HeadersArg
from streamlog.dsl.runtime.events import Message
from streamlog.serde import Codec
from streamlog.state.windows import (
    HoppingWindow,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    WindowRange,
)
from streamlog.transport.types import RecordMetadata, TopicPartition

__all__ = [
    "AgentT",
    "AppT",
    "ChannelT",
    "CodecArg",
    "CodecT",
    "CollectionT",
    "EventT",
    "HeadersArg",
    "K",
    "Message",
    "ModelArg",
    "ModelT",
    "RecordMetadata",
    "StreamT",
    "TP",
    "TableT",
    "TopicT",
    "V",
    "WindowRange",
    "WindowT",
]

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

#: A codec given by name (``"json"``, ``"raw|gzip"``) or as an object.
CodecArg = str | Codec
CodecT = Codec
#: What ``key_type=`` / ``value_type=`` take: a Record class, ``str``, ``bytes``, ``int``...
ModelArg = type | Any
TP = TopicPartition
#: A window kind (streamlog's windows share no base class: their arithmetic differs).
WindowT = TumblingWindow | HoppingWindow | SlidingWindow | SessionWindow


@runtime_checkable
class EventT(Protocol[T_co]):
    """A decoded record with its message (``stream.events()``, ``faust.current_event()``)."""

    @property
    def key(self) -> Any: ...

    @property
    def value(self) -> T_co: ...

    @property
    def headers(self) -> Mapping[str, bytes | None]: ...

    @property
    def message(self) -> Message: ...


@runtime_checkable
class ChannelT(Protocol):
    """Something to send to: a ``Topic`` (the log) or a ``Channel`` (in memory)."""

    @property
    def name(self) -> str: ...

    async def send(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        headers: HeadersArg = None,
        timestamp: float | None = None,
    ) -> Awaitable[RecordMetadata]: ...

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> RecordMetadata: ...


@runtime_checkable
class TopicT(ChannelT, Protocol):
    """A topic of the log, as an app declares it (``app.topic``)."""

    @property
    def partitions(self) -> int | None: ...

    @property
    def topics(self) -> tuple[str, ...]: ...


@runtime_checkable
class StreamT(Protocol[T_co]):
    """What an agent iterates (``async for value in stream``), with Faust's operators."""

    def __aiter__(self) -> AsyncIterator[T_co]: ...

    def items(self) -> AsyncIterator[tuple[Any, T_co]]: ...

    def events(self) -> AsyncIterator[EventT[T_co]]: ...

    def enumerate(self, start: int = 0) -> AsyncIterator[tuple[int, T_co]]: ...

    def take(self, max_: int, within: float | None = None) -> AsyncIterator[Sequence[T_co]]: ...

    def filter(self, fun: Callable[[Any], Any]) -> StreamT[T_co]: ...

    def group_by(
        self, key: Any, *, name: str | None = ..., partitions: int | None = ...
    ) -> Any: ...

    def through(self, channel: Any) -> StreamT[T_co]: ...

    def echo(self, *channels: Any) -> StreamT[T_co]: ...

    def noack(self) -> StreamT[T_co]: ...

    def ack(self, event: Any) -> bool: ...


@runtime_checkable
class AgentT(Protocol):
    """An ``@app.agent``: its name, what it reads, and the ways to send it work."""

    @property
    def name(self) -> str: ...

    @property
    def channel(self) -> Any: ...

    async def send(self, *args: Any, **kwargs: Any) -> Any: ...

    async def cast(self, *args: Any, **kwargs: Any) -> Any: ...

    async def ask(self, *args: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class CollectionT(Protocol[K, V]):
    """A table: a mapping kept in a store, with a changelog."""

    @property
    def name(self) -> str: ...

    def __getitem__(self, key: K) -> V: ...

    def __setitem__(self, key: K, value: V) -> None: ...

    def __delitem__(self, key: K) -> None: ...

    def __contains__(self, key: object) -> bool: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[K]: ...

    def get(self, key: K, default: Any = None) -> Any: ...

    def items(self) -> Iterator[tuple[K, V]]: ...

    def keys(self) -> Iterator[K]: ...

    def values(self) -> Iterator[V]: ...

    def as_ansitable(
        self, *, title: str | None = None, sort: bool = True, limit: int = 0
    ) -> str: ...


#: Faust's table type; streamlog's tables have one shape (``CollectionT``).
TableT = CollectionT


@runtime_checkable
class ModelT(Protocol):
    """A model (``Record``): made from and turned into plain data."""

    def asdict(self) -> dict[str, Any]: ...

    def to_representation(self) -> dict[str, Any]: ...


@runtime_checkable
class AppT(Protocol):
    """An application: settings and the declarations a program makes."""

    @property
    def conf(self) -> Any: ...

    def topic(self, *args: Any, **kwargs: Any) -> Any: ...

    def channel(self, *args: Any, **kwargs: Any) -> Any: ...

    def agent(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]: ...

    def timer(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]: ...


if TYPE_CHECKING:  # mypy checks that streamlog's classes satisfy the Protocols above

    def _conforms(
        stream: Stream[int],
        topic: Topic,
        channel: Channel,
        agent: Agent,
        table: Table,
        event: Event,
        app: App,
        record: Record,
    ) -> None:
        _stream: StreamT[int] = stream
        _topic: TopicT = topic
        _channel: ChannelT = channel
        _agent: AgentT = agent
        _table: TableT[Any, Any] = table
        _event: EventT[Any] = event
        _app: AppT = app
        _model: ModelT = record

    from streamlog.dsl.agents.agent import Agent
    from streamlog.dsl.agents.stream import Stream
    from streamlog.dsl.agents.topics import Channel, Topic
    from streamlog.dsl.app.app import App
    from streamlog.dsl.runtime.events import Event
    from streamlog.dsl.tables.table import Table
    from streamlog.serde import Record
