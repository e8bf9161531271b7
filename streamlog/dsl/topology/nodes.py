"""The topology DSL: ``@app.map``, ``@app.filter``, ``@app.aggregate`` and ``@app.join``.

Each decorator takes a plain function, sync or async, and compiles it to ordinary agents
(``app.agent``) and tables, so a node is restarted, dead-lettered, committed and scaled
exactly as an ``@app.agent`` is. The agent's function is a ``NodeFunction`` that carries
a ``NodeSpec``: what the node reads, writes and owns, so ``app.topology()`` can draw it
without running anything.

Semantics, per input event:

* ``map(source, to=)``: ``fun(value) -> new value``. ``None`` drops the event (nothing is
  written), so a map can also filter; a map cannot write a null value (tombstone): use
  an agent for that.
* ``filter(source, to=)``: ``fun(value) -> bool``; kept events are written unchanged.
* ``aggregate(source, by=, into=, to=)``: ``fun(acc, value) -> acc`` per key, the
  accumulator stored in a table (``into``: a Table, a name, or None for the function's
  name). ``by`` (a Record field such as ``Order.user``, a field name, or a function of
  the value) re-keys the stream through a repartition topic first (``group_by``);
  without ``by`` the record key is the table key. A new key starts from ``default()``
  (or the table's ``default``), else None. Each update is written to ``to`` as key =
  the key, value = the new accumulator.
* ``aggregate(..., window=)`` (or ``into=`` a windowed table such as
  ``app.Table("clicks", default=int).tumbling(60)``): every open window holding the
  event's time becomes ``fun(acc, value)`` (``fun`` must be sync; late events are
  dropped by the windowed table's rules). ``window=`` is seconds (tumbling, Kafka
  Streams' rules: grace 0), a window of ``streamlog.state.windows`` or ``lambda table:
  table.hopping(60, 10, grace=0)`` (without ``grace=`` a table follows Faust's rules:
  windows close only when they expire). ``to`` gets *final* results only: one record
  per window when it closes, key -> ``{"start", "end", "value"}`` (the windowed table's
  ``emit_final``).
* ``join(left, right, ..., to=)``: ``fun(left, right) -> result`` is the joiner of
  ``streamlog.dsl.joins.api.join`` (stream-table, windowed stream-stream or table-table, as
  the arguments say); the decorator returns the join object.

Written records keep the input record's key, timestamp and headers (as ``group_by``
does), so event time survives the pipeline and co-partitioning by key is kept. Without
``to=``, a map or filter node *yields* its results instead (to ``agent.ask`` callers and
to sinks added with ``agent.add_sink``) and a table aggregate yields ``(key, acc)``.

A source may be a ``Topic``, a ``Channel``, a topic name, or a node declared before with
exactly one output (``@app.filter(amounts_node)``). A ``to`` given by name that the app
has not declared is declared like the source (same key type and serialiser, same
partition count; a filter's output also keeps the value type; an aggregate's output is
keyed as its table is).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from streamlog.dsl.agents.agent import Agent
from streamlog.dsl.agents.naming import callable_name
from streamlog.dsl.agents.stream import Stream
from streamlog.dsl.agents.topics import Channel, Topic
from streamlog.dsl.durations import Seconds
from streamlog.dsl.errors import FeatureUnavailableError, ImproperlyConfigured
from streamlog.dsl.tables.table import Table
from streamlog.dsl.tables.views import WindowedView
from streamlog.serde import field_name
from streamlog.state.windows import HoppingWindow, SessionWindow, SlidingWindow, TumblingWindow

if TYPE_CHECKING:
    from streamlog.dsl.runtime.events import Message
    from streamlog.dsl.topology.host import TopologyHost

__all__ = [
    "NODE_KINDS",
    "NodeSpec",
    "NodeFunction",
    "SourceArg",
    "OutputArg",
    "KeyArg",
    "IntoArg",
    "WindowArg",
    "JoinInput",
    "FeatureUnavailableError",
    "node_spec",
    "map_node",
    "filter_node",
    "aggregate_node",
    "join_node",
    "window_label",
]

NODE_KINDS = ("map", "filter", "aggregate", "join")

SourceArg = Topic | Channel | Agent | str
"""What a node reads: a topic (or its name), a channel, or another node or agent."""
OutputArg = Topic | Channel | Agent | str | Sequence[Topic | Channel | Agent | str] | None
"""Where a node's results go: one target or several (None: a derived topic)."""
FieldRef = Any
"""A Record field as a class attribute (``Order.user``): a msgspec field reference."""
KeyArg = Callable[[Any], Any] | str | FieldRef | None
"""What ``by=`` re-keys by: a function of the value, a field name, or a Record field."""
IntoArg = Table | WindowedView | str | None
"""The table an aggregate keeps: a table, a windowed table, or a name to declare one."""
WindowArg = (
    Seconds
    | TumblingWindow
    | HoppingWindow
    | SlidingWindow
    | SessionWindow
    | Callable[[Table], WindowedView]
    | None
)
"""An aggregate's windows: seconds (tumbling), a window from ``streamlog.state.windows``,
or a function of the table (``lambda t: t.hopping(60, 10)``)."""
JoinInput = Topic | Table | str | Any
"""One side of a join: a topic (or its name), a table, or (right side) any object with
``get(key, default)``."""

_MISSING = object()


@dataclass(frozen=True)
class NodeSpec:
    """What one DSL node reads, writes and owns: the topology's view of it.

    ``inputs`` pairs each channel (or table) read with the edge label (``"reads"``, or
    ``"left"``/``"right"``/``"rekey"`` for a join); ``repartitions`` are topics the node
    writes and reads back; ``tables`` the state it owns. Several agents may share one
    spec (a join reading two topics): the topology shows them as one node named ``name``.
    """

    kind: str
    name: str
    fun: Callable[..., Any]
    inputs: tuple[tuple[str, Topic | Channel | Table], ...]
    outputs: tuple[Topic | Channel, ...] = ()
    tables: tuple[Table, ...] = ()
    details: tuple[str, ...] = ()
    repartitions: tuple[Topic, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in NODE_KINDS:
            raise ValueError(f"node kind must be one of {', '.join(NODE_KINDS)}: {self.kind!r}")


class NodeFunction:
    """The agent function a DSL node compiles to; ``spec`` describes the node."""

    def __init__(self, spec: NodeSpec, body: Callable[[Stream], Any]) -> None:
        self.spec = spec
        self._body = body
        fun = spec.fun
        self.__name__ = getattr(fun, "__name__", spec.kind)
        self.__qualname__ = getattr(fun, "__qualname__", self.__name__)
        self.__module__ = getattr(fun, "__module__", __name__)
        self.__doc__ = fun.__doc__

    def __repr__(self) -> str:
        return f"<NodeFunction {self.spec.kind} {self.spec.name}>"

    def __call__(self, stream: Stream) -> Any:
        return self._body(stream)


def node_spec(agent: Agent) -> NodeSpec | None:
    """The spec of the DSL node ``agent`` runs, or None for a plain ``@app.agent``."""
    fun = agent.fun
    return fun.spec if isinstance(fun, NodeFunction) else None


# ---------------------------------------------------------------------------- resolving


def _source(app: TopologyHost, source: SourceArg, what: str) -> Topic | Channel:
    if isinstance(source, Topic | Channel):
        return source
    if isinstance(source, str):
        return app.topics.get(source) or app.topic(source)  # as declared, if it was
    if isinstance(source, Agent):
        spec = node_spec(source)
        if spec is not None and len(spec.outputs) == 1:
            return spec.outputs[0]
        raise ImproperlyConfigured(
            f"{what}: agent {source.name} is not a node with exactly one output topic; "
            "read the topic it writes instead"
        )
    raise ImproperlyConfigured(f"{what}: expected a topic, channel, name or node, got {source!r}")


def _outputs(
    app: TopologyHost, to: OutputArg, like: Topic | Channel, what: str, **overrides: Any
) -> tuple[Topic | Channel, ...]:
    if to is None:
        return ()
    items = list(to) if isinstance(to, list | tuple) else [to]
    out: list[Topic | Channel] = []
    for item in items:
        if isinstance(item, Topic | Channel):
            out.append(item)
        elif isinstance(item, Agent):
            out.append(item.channel)
        elif isinstance(item, str):
            out.append(_declare_like(app, item, like, overrides))
        else:
            raise ImproperlyConfigured(f"{what}: to= takes topics, channels or names: {item!r}")
    return tuple(out)


def _declare_like(
    app: TopologyHost, name: str, like: Topic | Channel, overrides: dict[str, Any]
) -> Topic:
    """The topic ``name``: as declared, else declared like ``like`` with ``overrides``."""
    existing = app.topics.get(name)
    if existing is not None:
        return existing
    if isinstance(like, Topic):
        return like.derive(name, **overrides)
    return app.topic(name, **overrides)


def _node_name(fun: Callable[..., Any], name: str | None) -> str:
    return name or callable_name(fun)


def _is_async(fun: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fun) or inspect.iscoroutinefunction(
        getattr(fun, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


async def _emit(outputs: tuple[Topic | Channel, ...], key: Any, value: Any, msg: Message) -> None:
    for target in outputs:
        await target.send(key=key, value=value, headers=msg.headers, timestamp=msg.timestamp)


def _register(
    app: TopologyHost,
    spec: NodeSpec,
    body: Callable[[Stream], Any],
    source: Topic | Channel,
    concurrency: int,
    on_error: str | None,
) -> Agent:
    return app.agent(source, name=spec.name, concurrency=concurrency, on_error=on_error)(
        NodeFunction(spec, body)
    )


# ---------------------------------------------------------------------------- map / filter


def map_node(
    app: TopologyHost,
    source: SourceArg,
    *,
    to: OutputArg = None,
    name: str | None = None,
    concurrency: int = 1,
    on_error: str | None = None,
    key: Callable[[Any], Any] | None = None,
) -> Callable[[Callable[[Any], Any]], Agent]:
    """``@app.map(source, to=)``: write ``fun(value)`` for each event (None drops it).

    ``key=``: a function of the written value giving the written record's key (Kafka
    Streams' ``map`` to a new key): a step that re-keys, e.g. to route events to the
    partition of an entity they name, stays a node. Without it the input's key is kept.
    """

    def decorate(fun: Callable[[Any], Any]) -> Agent:
        channel = _source(app, source, "map")
        if key is not None and not callable(key):
            raise ImproperlyConfigured(f"map: key= takes a function of the value, not {key!r}")
        overrides: dict[str, Any] = {"value_type": None, "value_serializer": None}
        if key is not None:  # new keys: the source's key type no longer describes them
            overrides.update(key_type=None)
        outputs = _outputs(app, to, channel, "map", **overrides)
        spec = NodeSpec("map", _node_name(fun, name), fun, (("reads", channel),), outputs)
        is_async = _is_async(fun)

        async def body(stream: Stream) -> AsyncIterator[Any]:
            async for event in stream.events():
                result = fun(event.value)
                if is_async or inspect.isawaitable(result):
                    result = await result
                if result is None:
                    continue
                if outputs:
                    out_key = event.key if key is None else key(result)
                    await _emit(outputs, out_key, result, event.message)
                else:
                    yield result

        return _register(app, spec, body, channel, concurrency, on_error)

    return decorate


def filter_node(
    app: TopologyHost,
    source: SourceArg,
    *,
    to: OutputArg = None,
    name: str | None = None,
    concurrency: int = 1,
    on_error: str | None = None,
) -> Callable[[Callable[[Any], Any]], Agent]:
    """``@app.filter(source, to=)``: write the events for which ``fun(value)`` is true."""

    def decorate(fun: Callable[[Any], Any]) -> Agent:
        channel = _source(app, source, "filter")
        outputs = _outputs(app, to, channel, "filter")
        spec = NodeSpec("filter", _node_name(fun, name), fun, (("reads", channel),), outputs)
        is_async = _is_async(fun)

        async def body(stream: Stream) -> AsyncIterator[Any]:
            async for event in stream.events():
                keep = fun(event.value)
                if is_async or inspect.isawaitable(keep):
                    keep = await keep
                if not keep:
                    continue
                if outputs:
                    await _emit(outputs, event.key, event.value, event.message)
                else:
                    yield event.value

        return _register(app, spec, body, channel, concurrency, on_error)

    return decorate


# ---------------------------------------------------------------------------- aggregate


def _key_label(by: Any) -> tuple[Any, str]:
    """``by`` checked now (a typo fails at import, not on the first event) and its label."""
    if by is None:
        return None, ""
    if isinstance(by, type):
        raise ImproperlyConfigured(
            f"aggregate: by= takes a field (Order.user), a field name or a function, "
            f"not the class {by.__name__}"
        )
    if isinstance(by, str) or not callable(by):
        try:
            return by, field_name(by)
        except TypeError as exc:
            raise ImproperlyConfigured(f"aggregate: by= {exc}") from None
    label = getattr(by, "__name__", "") or "key"
    return by, "key" if label == "<lambda>" else label


def _table(
    app: TopologyHost,
    into: Table | str | None,
    fun: Callable[..., Any],
    default: Callable[[], Any] | None,
    key_type: Any,
    key_serializer: Any,
    partitions: int | None,
) -> Table:
    if isinstance(into, Table):
        theirs = into.changelog_topic.key_serializer
        if isinstance(theirs, str) and isinstance(key_serializer, str) and theirs != key_serializer:
            raise ImproperlyConfigured(
                f"aggregate into table {into.name!r}: the table encodes keys with "
                f"{theirs!r} but the stream it reads is keyed with {key_serializer!r}, so a "
                "key would land in another partition; declare the table with "
                f"key_serializer={key_serializer!r} (or pass into= a name)"
            )
        if partitions is not None and into.partitions != partitions:
            raise ImproperlyConfigured(
                f"aggregate into table {into.name!r}: {into.partitions} partitions, but the "
                f"stream it reads has {partitions}; they must match (co-partitioning)"
            )
        return into
    table_name = into if isinstance(into, str) else getattr(fun, "__name__", "aggregate")
    return app.Table(
        table_name,
        default=default,
        key_type=key_type,
        key_serializer=key_serializer,
        partitions=partitions,
        help=(fun.__doc__ or "").strip().split("\n")[0],
    )


def aggregate_node(
    app: TopologyHost,
    source: SourceArg,
    *,
    by: KeyArg = None,
    into: IntoArg = None,
    to: OutputArg = None,
    window: WindowArg = None,
    default: Callable[[], Any] | None = None,
    name: str | None = None,
    on_error: str | None = None,
) -> Callable[[Callable[[Any, Any], Any]], Agent]:
    """``@app.aggregate(source, by=, into=, to=, window=)``: ``fun(acc, value) -> acc``.

    One actor per node (no ``concurrency``): two actors would interleave read-modify-write
    cycles of one key across an ``await``. See the module docstring for windows.
    """
    getter, label = _key_label(by)
    windows: Any = None
    if window is not None or not (into is None or isinstance(into, Table | str)):
        windows = _optional_module("streamlog.dsl.windows.table", "@app.aggregate with windows")

    def decorate(fun: Callable[[Any, Any], Any]) -> Agent:
        channel = _source(app, source, "aggregate")
        partitions = channel.partitions if isinstance(channel, Topic) else None
        key_type = None if getter is not None else channel.key_type
        if getter is not None:
            key_serializer: Any = "json"  # what group_by's repartition topic uses
        elif isinstance(channel, Topic):
            key_serializer = channel.key_serializer
        else:
            key_serializer = None
        windowed: Any = None
        if windows is not None and isinstance(into, windows.WindowedTable):
            if window is not None:
                raise ImproperlyConfigured("aggregate: into= is windowed already; drop window=")
            windowed = into
            table = _table(app, into.table, fun, default, key_type, key_serializer, partitions)
        elif into is None or isinstance(into, Table | str):
            table = _table(app, into, fun, default, key_type, key_serializer, partitions)
            if window is not None:
                windowed = _windowed(windows, table, window)
        else:
            raise ImproperlyConfigured(
                f"aggregate: into= takes a table, a windowed table or a name, not {into!r}"
            )
        outputs = _outputs(
            app,
            to,
            channel,
            "aggregate",
            key_type=key_type,
            key_serializer=key_serializer,
            value_type=None,
            value_serializer=None,
        )
        details = ((f"by={label}",) if label else ()) + (
            (f"window={window_label(windowed.window)}",) if windowed is not None else ()
        )
        spec = NodeSpec(
            "aggregate",
            _node_name(fun, name),
            fun,
            (("reads", channel),),
            outputs,
            (table,),
            details,
        )
        if windowed is not None:
            body = _windowed_body(spec, windowed, getter, label, outputs)
        else:
            body = _table_body(spec, table, default or table.default, getter, label, outputs)
        return _register(app, spec, body, channel, 1, on_error)

    return decorate


def _table_body(
    spec: NodeSpec,
    table: Table,
    initial: Callable[[], Any] | None,
    getter: Any,
    label: str,
    outputs: tuple[Topic | Channel, ...],
) -> Callable[[Stream], AsyncIterator[Any]]:
    fun = spec.fun
    is_async = _is_async(fun)

    async def body(stream: Stream) -> AsyncIterator[Any]:
        keyed = stream if getter is None else stream.group_by(getter, name=label)
        async for event in keyed.events():
            key = event.key
            acc = table.get(key, _MISSING)
            if acc is _MISSING:
                acc = initial() if initial is not None else None
            acc = fun(acc, event.value)
            if is_async or inspect.isawaitable(acc):
                acc = await acc
            table[key] = acc
            if outputs:
                await _emit(outputs, key, acc, event.message)
            else:
                yield key, acc

    return body


def _windowed_body(
    spec: NodeSpec,
    windowed: Any,
    getter: Any,
    label: str,
    outputs: tuple[Topic | Channel, ...],
) -> Callable[[Stream], Any]:
    """Each event updates every open window holding its time: ``fun(acc, value)``.

    Final results only: each window's value goes to ``to`` once, when it closes (the
    windowed table's ``emit_final``), as key -> ``{"start", "end", "value"}``.
    """
    fun = spec.fun
    if _is_async(fun):
        raise ImproperlyConfigured(
            f"aggregate {spec.name}: a windowed aggregate's function must be a plain (sync) "
            "function: it runs inside the window update"
        )
    if windowed.table.default is None:
        raise ImproperlyConfigured(
            f"aggregate {spec.name}: a windowed aggregate needs default= (the value a new "
            "window starts from)"
        )
    for target in outputs:
        windowed.emit_final(target)

    async def body(stream: Stream) -> None:
        keyed = stream if getter is None else stream.group_by(getter, name=label)
        async for event in keyed.events():
            windowed.apply(event.key, fun, event.value)

    return body


def _windowed(windows: Any, table: Table, window: Any) -> Any:
    """``table`` windowed by ``window``: a ``streamlog.state.windows`` window (ms), a
    function of the table (``lambda t: t.hopping(60, 10)``), or seconds (tumbling)."""
    if isinstance(window, TumblingWindow | HoppingWindow | SlidingWindow | SessionWindow):
        return table.app.window_table(table, window)
    if isinstance(window, int | float | timedelta) and not isinstance(window, bool):
        return table.tumbling(window, grace=0)  # Kafka Streams' rules: final results at end
    if callable(window):
        made = window(table)
        if isinstance(made, windows.WindowedTable):
            return made
    raise ImproperlyConfigured(
        "aggregate: window= takes seconds (tumbling), a window from streamlog.state.windows "
        f"or a function such as lambda t: t.hopping(60, 10); got {window!r}"
    )


def window_label(window: Any) -> str:
    """``tumbling 10s``, ``hopping 60s/10s``, ``sliding 5s``, ``session 30s``."""
    kind = type(window).__name__.removesuffix("Window").lower()
    sizes = [getattr(window, a) for a in ("size", "step", "gap") if hasattr(window, a)]
    if kind == "tumbling":
        sizes = sizes[:1]
    return f"{kind} " + "/".join(f"{ms / 1000:g}s" for ms in sizes)


# ---------------------------------------------------------------------------- join


def join_node(
    app: TopologyHost,
    left: JoinInput,
    right: JoinInput,
    *,
    to: OutputArg = None,
    name: str | None = None,
    **options: Any,
) -> Callable[[Callable[[Any, Any], Any]], Any]:
    """``@app.join(left, right, kind=, window=, key=, to=)``: ``fun(left, right) -> result``.

    The decorated function is the joiner; ``streamlog.dsl.joins.api.join`` picks the join
    (stream-table, windowed stream-stream, table-table) from the arguments and declares
    its agents and tables. Returns the join object (``stats``, ``add_sink``). Its agents
    run a ``NodeFunction`` with one shared spec, so the topology shows one ``join`` node.
    """
    joins = _optional_module("streamlog.dsl.joins.api", "@app.join")

    def decorate(fun: Callable[[Any, Any], Any]) -> Any:
        made = joins.join(app, left, right, joiner=fun, to=to, name=name or fun.__name__, **options)
        inputs: list[tuple[str, Topic | Channel | Table]] = list(made.inputs)
        side = getattr(made, "table", None)
        if made.join_type == "stream-table" and isinstance(side, Table):
            inputs.append(("right", side))
        repartition = getattr(made, "repartition_topic", None)
        spec = NodeSpec(
            "join",
            made.name,
            fun,
            tuple(inputs),
            tuple(made.outputs),
            tuple(made.tables),
            (made.join_type, made.kind),
            (repartition,) if isinstance(repartition, Topic) else (),
        )
        for agent in made.agents:
            agent.fun = NodeFunction(spec, agent.fun)
        return made

    return decorate


def _optional_module(module: str, feature: str) -> Any:
    """Import ``module`` now (not at import time), or say clearly that it is missing."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise FeatureUnavailableError(
            f"{feature} needs {module}, which this build of streamlog does not have yet"
        ) from None
