"""``app.topology()``: the graph of what an app reads, computes, stores and writes.

Nodes are topics (by role: ``topic``, ``repartition``, ``changelog``, ``dlq``), channels,
processors (``agent`` and the DSL nodes ``map``, ``filter``, ``aggregate``, ``join``),
tables, and callables that receive an agent's yields (``function``). Edges are labelled:
``reads``, ``left``/``right`` (a join's inputs), ``sink`` (an agent's yields), ``to`` (a DSL
node's output), ``into`` (an aggregate's table), ``group_by(<label>)`` and ``through`` (a
repartition), ``dead letters`` (``on_error="dlq"``), ``writes`` (a table's changelog) and
``uses`` (a table or topic the function's code refers to: inferred, see below).

How it is found, without starting the app or touching the broker:

* declarations: each agent's channel, sinks and error policy; each DSL node's spec
  (``streamlog.dsl.topology.nodes.NodeSpec``); each table and its changelog; every declared topic;
* ``group_by``/``through``: these run when an agent's function reaches its ``async for``.
  Each function is run once against a *probe* stream whose owner records the operators
  called, and whose first read stops the function (``_ProbeStop``, a ``BaseException`` so
  that ``except Exception`` in user code does not swallow it) before any event. So the
  code *before* the first ``async for`` does run once per ``topology()`` call; code that
  awaits something real there (a send, a sleep) stops the probe, and a note says so;
* tables and topics the function uses: the objects its code reaches (``references.py``:
  its closure variables, the globals its bytecode loads and the modules it imports,
  then, transitively and bounded, the user functions, methods and objects' attributes it
  names, never entering streamlog, the stdlib or installed packages), kept when they are
  a ``Table`` (or an object whose ``table`` attribute is one) of this app, a ``Topic`` or
  an ``Agent`` (its channel). So a send in a helper function or in a method of an object
  the agent holds is seen. A heuristic: a table reached by a computed lookup
  (``app.tables["x"]``) or through an object built at run time is not seen, and an
  attribute of a reached object that shares a name the code uses elsewhere is counted.
  Such edges are ``inferred`` and drawn dashed. Agents read only their channel, so a
  topic reached is one the agent sends to, its own input included.

``to_text()`` and ``to_dot()`` are deterministic (processors and tables sorted by name,
each one's edges in discovery order). ``write_png`` needs Graphviz's ``dot``.
"""

from __future__ import annotations

import shutil
import subprocess
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamlog.dsl.agents.agent import Agent
from streamlog.dsl.agents.topics import Channel, Topic
from streamlog.dsl.errors import GraphvizNotFoundError, StreamsError
from streamlog.dsl.tables.table import Table
from streamlog.dsl.topology.nodes import node_spec, window_label
from streamlog.dsl.topology.probe import ProbeResult, probe_agent
from streamlog.dsl.topology.references import referenced_objects, static_attribute

if TYPE_CHECKING:
    from streamlog.dsl.topology.host import TopologyHost

__all__ = [
    "Node",
    "Edge",
    "Topology",
    "GraphvizNotFoundError",
    "build_topology",
    "probe_agent",
    "ProbeResult",
    "TOPIC_KINDS",
    "PROCESSOR_KINDS",
]

TOPIC_KINDS = ("topic", "repartition", "changelog", "dlq")
PROCESSOR_KINDS = ("agent", "map", "filter", "aggregate", "join")
_ORDER = {
    k: i for i, k in enumerate(PROCESSOR_KINDS + ("table",) + TOPIC_KINDS + ("channel", "function"))
}
# When one topic turns up in several roles, the most specific one names it.
_TOPIC_RANK = {"topic": 0, "repartition": 1, "dlq": 2, "changelog": 3}

_DOT_STYLE = {
    "topic": "shape=box",
    "repartition": "shape=box, style=dashed",
    "changelog": "shape=note",
    "dlq": "shape=box, color=red, fontcolor=red",
    "channel": "shape=box, style=rounded",
    "agent": "shape=ellipse",
    "map": "shape=parallelogram",
    "filter": "shape=invtrapezium",
    "aggregate": "shape=hexagon",
    "join": "shape=diamond",
    "table": "shape=cylinder",
    "function": "shape=plaintext",
}


@dataclass(frozen=True, slots=True)
class Node:
    """One vertex: ``id`` is unique (``topic:<name>``, ``agent:<name>``, ``table:<name>``...)."""

    id: str
    kind: str
    name: str
    details: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        """ "<kind> <name>", as the text and DOT renderings show it."""
        return f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class Edge:
    """``source -> target`` with a label; ``inferred`` edges come from the code heuristic."""

    source: str
    target: str
    label: str
    inferred: bool = False


class Topology:
    """A labelled directed graph of an app; build it with ``build_topology(app)``."""

    def __init__(self, app_id: str) -> None:
        self.app_id = app_id
        self._nodes: dict[str, Node] = {}
        self._edges: list[Edge] = []
        self._pairs: set[tuple[str, str, str]] = set()
        self.notes: list[str] = []

    def __repr__(self) -> str:
        return f"<Topology {self.app_id}: {len(self._nodes)} nodes, {len(self._edges)} edges>"

    # ------------------------------------------------------------------ building

    def add_node(self, kind: str, name: str, details: Iterable[str] = ()) -> str:
        """Add (or refine) a node and return its id. A topic seen in several roles keeps
        the most specific kind; details given later replace empty ones."""
        if kind not in _DOT_STYLE:
            raise ValueError(f"unknown node kind {kind!r} (known: {', '.join(_DOT_STYLE)})")
        node_id = f"{_namespace(kind)}:{name}"
        new = Node(node_id, kind, name, tuple(details))
        old = self._nodes.get(node_id)
        if old is not None:
            kind = old.kind
            if old.kind in _TOPIC_RANK and _TOPIC_RANK[new.kind] > _TOPIC_RANK[old.kind]:
                kind = new.kind
            new = Node(node_id, kind, name, old.details or new.details)
        self._nodes[node_id] = new
        return node_id

    def add_edge(self, source: str, target: str, label: str, *, inferred: bool = False) -> None:
        """Add an edge once (the same source, target and label again is ignored)."""
        if source not in self._nodes or target not in self._nodes:
            raise KeyError(f"edge {source} -> {target}: add both nodes first")
        key = (source, target, label)
        if key not in self._pairs:
            self._pairs.add(key)
            self._edges.append(Edge(source, target, label, inferred))

    def connected(self, a: str, b: str) -> bool:
        """True when an edge joins ``a`` and ``b`` (either way)."""
        return any({e.source, e.target} == {a, b} for e in self._edges)

    def leads_to(self, source: str, target: str) -> bool:
        """True when an edge goes from ``source`` to ``target``."""
        return any(e.source == source and e.target == target for e in self._edges)

    # ------------------------------------------------------------------ reading

    @property
    def nodes(self) -> list[Node]:
        """Every node: processors, tables, topics, then channels and functions, by name."""
        return sorted(self._nodes.values(), key=lambda n: (_ORDER.get(n.kind, 99), n.name))

    @property
    def edges(self) -> tuple[Edge, ...]:
        """Every edge in discovery order."""
        return tuple(self._edges)

    def node(self, node_id: str) -> Node:
        """The node with id ``node_id``."""
        return self._nodes[node_id]

    def edges_of(self, node_id: str) -> list[Edge]:
        """The edges from or to ``node_id``."""
        return [e for e in self._edges if node_id in (e.source, e.target)]

    def processors(self) -> list[Node]:
        """Agents and DSL nodes, by name."""
        return sorted(
            (n for n in self._nodes.values() if n.kind in PROCESSOR_KINDS), key=lambda n: n.name
        )

    def tables(self) -> list[Node]:
        """Tables, by name."""
        return sorted((n for n in self._nodes.values() if n.kind == "table"), key=lambda n: n.name)

    def topics(self) -> list[Node]:
        """Topics and channels, by name."""
        return sorted(
            (n for n in self._nodes.values() if n.kind in TOPIC_KINDS or n.kind == "channel"),
            key=lambda n: n.name,
        )

    def sources(self) -> list[Node]:
        """Topics and channels the app reads and nothing in it writes: its inputs."""
        written = {e.target for e in self._edges}
        read = {e.source for e in self._edges}
        return [
            n
            for n in self.topics()
            if n.kind in ("topic", "channel") and n.id in read and n.id not in written
        ]

    def sinks(self) -> list[Node]:
        """Topics, channels and functions the app writes and nothing in it reads: its outputs.

        A topic an agent's code only refers to (an inferred ``uses`` edge) counts as
        written, as in ``sources``: agents read nothing but their channel, so a topic
        their code reaches is one they send to (``await matches.send(...)``)."""
        written = {e.target for e in self._edges}
        read = {e.source for e in self._edges}
        return sorted(
            (
                n
                for n in self._nodes.values()
                if n.kind in ("topic", "channel", "function")
                and n.id in written
                and n.id not in read
            ),
            key=lambda n: n.name,
        )

    # ------------------------------------------------------------------ rendering

    def to_text(self) -> str:
        """For people: inputs and outputs, one block per processor and table, the topics."""
        out = [f"Topology of app {self.app_id}"]
        out.append("Sources: " + (", ".join(n.name for n in self.sources()) or "-"))
        out.append("Sinks: " + (", ".join(n.name for n in self.sinks()) or "-"))
        for node in self.processors() + self.tables():
            out.append("")
            out.append(node.title + _details(node.details))
            for edge in self.edges_of(node.id):
                incoming = edge.target == node.id
                other = self._nodes[edge.source if incoming else edge.target]
                label = "" if incoming and edge.label == "reads" else f"  [{edge.label}]"
                out.append(f"  {'<-' if incoming else '->'} {other.title}{label}")
        topics = self.topics()
        if topics:
            out.append("")
            out.append("Topics:")
            sources = {n.id for n in self.sources()}
            sinks = {n.id for n in self.sinks()}
            rows = [
                (
                    n.name,
                    n.kind,
                    ", ".join(n.details),
                    "source" if n.id in sources else "sink" if n.id in sinks else "",
                )
                for n in topics
            ]
            out.extend("  " + line for line in _columns(rows))
        if self.notes:
            out.append("")
            out.append("Notes:")
            out.extend(f"  {note}" for note in self.notes)
        return "\n".join(out) + "\n"

    def to_dot(self) -> str:
        """Graphviz DOT: left to right, one shape per node kind, inferred edges dashed."""
        out = [f"digraph {_quote(self.app_id)} {{"]
        out.append("  rankdir=LR;")
        out.append('  node [fontname="Helvetica", fontsize=10];')
        out.append('  edge [fontname="Helvetica", fontsize=9];')
        for node in self.nodes:
            label = f"{node.kind}\n{node.name}" if node.kind in PROCESSOR_KINDS else node.name
            if node.details:
                label += "\n" + ", ".join(node.details)
            out.append(f"  {_quote(node.id)} [label={_quote(label)}, {_DOT_STYLE[node.kind]}];")
        for edge in self._ordered_edges():
            attrs = [] if edge.label == "reads" else [f"label={_quote(edge.label)}"]
            if edge.inferred:
                attrs.append("style=dashed")
            tail = f" [{', '.join(attrs)}]" if attrs else ""
            out.append(f"  {_quote(edge.source)} -> {_quote(edge.target)}{tail};")
        out.append("}")
        return "\n".join(out) + "\n"

    def _ordered_edges(self) -> Iterator[Edge]:
        """Edges in the order ``to_text`` shows them (by processor, then table), each once."""
        seen: set[int] = set()
        for node in self.processors() + self.tables():
            for edge in self.edges_of(node.id):
                if id(edge) not in seen:
                    seen.add(id(edge))
                    yield edge
        for edge in self._edges:
            if id(edge) not in seen:
                yield edge

    def write_png(self, path: str, *, timeout: float = 60.0) -> None:
        """Render with Graphviz's ``dot`` to ``path``; ``GraphvizNotFoundError`` without it."""
        dot = shutil.which("dot")
        if dot is None:
            raise GraphvizNotFoundError(
                "PNG output needs Graphviz's 'dot' program, which is not installed "
                "(e.g. apt-get install graphviz); write DOT with --dot and render it elsewhere"
            )
        done = subprocess.run(
            [dot, "-Tpng", "-o", path],
            input=self.to_dot().encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise StreamsError(
                f"dot failed (exit {done.returncode}): {done.stderr.decode(errors='replace')}"
            )


def _namespace(kind: str) -> str:
    if kind in TOPIC_KINDS:
        return "topic"
    if kind in PROCESSOR_KINDS:
        return "agent"
    return kind


def _partitions(count: int) -> str:
    return f"{count} partition" + ("" if count == 1 else "s")


def _details(details: tuple[str, ...]) -> str:
    return f" ({', '.join(details)})" if details else ""


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _quote(text: str) -> str:
    """A DOT double-quoted string; newlines become DOT's centred line break ``\\n``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


# ---------------------------------------------------------------------------- probing


def _as_table(obj: Any, tables: dict[int, Table]) -> Table | None:
    if id(obj) in tables:
        return tables[id(obj)]
    if isinstance(obj, types.ModuleType | type) or callable(obj):
        return None
    inner = static_attribute(obj, "table")  # runs no property of a user object
    return tables.get(id(inner)) if inner is not None else None


# ---------------------------------------------------------------------------- building


def build_topology(app: TopologyHost) -> Topology:
    """The topology of ``app`` as declared (see the module docstring). Starts nothing."""
    topo = Topology(app.conf.id)
    tables = {id(t): t for t in app.tables.values()}
    default_partitions = app.conf.topic_partitions

    def channel_node(channel: Topic | Channel, kind: str = "topic") -> str:
        if isinstance(channel, Channel):
            return topo.add_node("channel", channel.name)
        count = channel.partitions or default_partitions
        return topo.add_node(kind, channel.name, (_partitions(count),))

    def table_node(table: Table) -> str:
        kind = type(table).__name__
        windowed = getattr(table, "windowed", None)
        details = (
            ((kind,) if kind != "Table" else ())
            + ((window_label(windowed.window),) if windowed is not None else ())
            + (table.store_kind, _partitions(table.partitions))
        )
        return topo.add_node("table", table.name, details)

    for name in sorted(app.agents):
        agent = app.agents[name]
        spec = node_spec(agent)
        if spec is None:
            details = [f"concurrency={agent.concurrency}"] if agent.concurrency > 1 else []
            me = topo.add_node("agent", agent.name, details)
            topo.add_edge(channel_node(agent.channel), me, "reads")
            fun: Any = agent.fun
        else:
            me = topo.add_node(spec.kind, spec.name, spec.details)
            for label, source in spec.inputs:
                node = table_node(source) if isinstance(source, Table) else channel_node(source)
                topo.add_edge(node, me, label)
            for topic in spec.repartitions:
                topo.add_edge(me, channel_node(topic, "repartition"), "repartition")
            fun = spec.fun
        probe = probe_agent(agent)
        for label, target in probe.forwards:
            kind = "repartition" if label.startswith("group_by(") else "topic"
            node = channel_node(target, kind)
            topo.add_edge(me, node, label)
            topo.add_edge(node, me, "reads")
        if not probe.reached:
            topo.notes.append(f"{agent.name}: {probe.note}")
        if spec is not None:
            for table in spec.tables:
                topo.add_edge(me, table_node(table), "into")
            for channel in spec.outputs:
                topo.add_edge(me, channel_node(channel), "to")
        for sink in agent.sinks:
            if isinstance(sink, Agent):
                topo.add_edge(me, channel_node(sink.channel), "sink")
            elif isinstance(sink, Topic | Channel):
                topo.add_edge(me, channel_node(sink), "sink")
            else:
                label = getattr(sink, "__qualname__", None) or type(sink).__name__
                topo.add_edge(me, topo.add_node("function", label), "sink")
        if agent.on_error == "dlq":
            dlq = topo.add_node("dlq", agent.dlq_topic_name, (_partitions(default_partitions),))
            topo.add_edge(me, dlq, "dead letters")
        for obj in referenced_objects(fun):
            used = _as_table(obj, tables)
            if used is not None:
                other = table_node(used)
                if topo.connected(me, other):  # its join input or aggregate table
                    continue
            elif isinstance(obj, Topic | Channel | Agent):
                # an agent reads only its channel, so code reaching a topic sends to it,
                # the topic it reads included (a hand-off back into its own input)
                other = channel_node(obj.channel if isinstance(obj, Agent) else obj)
                if topo.leads_to(me, other):  # already a sink or a DSL node's output
                    continue
            else:
                continue
            topo.add_edge(me, other, "uses", inferred=True)

    for name in sorted(app.tables):
        table = app.tables[name]
        changelog = channel_node(table.changelog_topic, "changelog")
        topo.add_edge(table_node(table), changelog, "writes")

    for topic_name in sorted(app.topics):
        topic = app.topics[topic_name]
        if topic_name == app.leader_topic_name:
            continue
        channel_node(topic, "repartition" if _is_repartition(topic) else "topic")
    return topo


def _is_repartition(topic: Topic) -> bool:
    return topic.internal and topic.name.endswith("-repartition")
