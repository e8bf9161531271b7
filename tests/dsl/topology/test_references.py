"""``referenced_objects`` follows user code: the topics and tables an agent reaches through
helper functions and the methods of objects it holds are edges of ``app.topology()``."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import streamlog
from streamlog.dsl.topology.graph import build_topology
from streamlog.dsl.topology.references import referenced_objects

# set by the tests (monkeypatch) to the app's topic: a module-level helper's global
ALERTS: Any = None


async def alert(key: str) -> None:
    """A module-level helper, as an app's ``send_flag``: sends to a module global."""
    await ALERTS.send(key=key, value=key)


class Notifier:
    """An object an agent holds; its methods reach a table and (one call deeper) a topic."""

    def __init__(self, audit: Any, seen: Any, spare: Any) -> None:
        self.audit = audit
        self.seen = seen
        self.spare = spare  # used only by a method no agent calls

    async def notify(self, key: str) -> None:
        self.seen[key] += 1
        await self._emit(key)

    async def _emit(self, key: str) -> None:
        await self.audit.send(key=key, value=key)

    async def unused(self, key: str) -> None:
        await self.spare.send(key=key, value=key)


def helpers_app() -> streamlog.App:
    app = streamlog.App("helpers", broker="memory://", topic_partitions=2, store="memory://")
    orders = app.topic("orders")
    globals()["ALERTS"] = app.topic("alerts")
    notifier = Notifier(app.topic("audit"), app.Table("seen", default=int), app.topic("spare"))

    @app.agent(orders, name="check")
    async def check(stream):
        async for order in stream:
            await alert(order)
            await notifier.notify(order)

    return app


HELPERS_TEXT = """\
Topology of app helpers
Sources: orders
Sinks: alerts, audit

agent check
  <- topic orders
  -> table seen  [uses]
  -> topic alerts  [uses]
  -> topic audit  [uses]

table seen (memory, 2 partitions)
  <- agent check  [uses]
  -> changelog helpers-seen-changelog  [writes]

Topics:
  alerts                  topic      2 partitions  sink
  audit                   topic      2 partitions  sink
  helpers-seen-changelog  changelog  2 partitions
  orders                  topic      2 partitions  source
  spare                   topic      2 partitions
"""

HELPERS_DOT = """\
digraph "helpers" {
  rankdir=LR;
  node [fontname="Helvetica", fontsize=10];
  edge [fontname="Helvetica", fontsize=9];
  "agent:check" [label="agent\\ncheck", shape=ellipse];
  "table:seen" [label="seen\\nmemory, 2 partitions", shape=cylinder];
  "topic:alerts" [label="alerts\\n2 partitions", shape=box];
  "topic:audit" [label="audit\\n2 partitions", shape=box];
  "topic:orders" [label="orders\\n2 partitions", shape=box];
  "topic:spare" [label="spare\\n2 partitions", shape=box];
  "topic:helpers-seen-changelog" [label="helpers-seen-changelog\\n2 partitions", shape=note];
  "topic:orders" -> "agent:check";
  "agent:check" -> "table:seen" [label="uses", style=dashed];
  "agent:check" -> "topic:alerts" [label="uses", style=dashed];
  "agent:check" -> "topic:audit" [label="uses", style=dashed];
  "table:seen" -> "topic:helpers-seen-changelog" [label="writes"];
}
"""


def test_sends_and_table_uses_in_helpers_are_edges(monkeypatch):
    monkeypatch.setitem(globals(), "ALERTS", None)  # restored after the test
    app = helpers_app()
    graph = build_topology(app)
    assert graph.to_text() == HELPERS_TEXT
    assert graph.to_dot() == HELPERS_DOT
    # breadth first: the table and topic one call deep (notify, alert) come before the
    # topic two calls deep (notify -> _emit); a topic only an uncalled method sends to is
    # not reached
    refs = referenced_objects(app.agents["check"].fun)
    names = [getattr(r, "name", None) for r in refs]
    assert [n for n in names if n is not None] == ["seen", "alerts", "audit"]
    assert app.topics["spare"] not in refs


def test_bound_methods_properties_classes_and_modules_are_followed():
    app = streamlog.App("kinds", broker="memory://", topic_partitions=1, store="memory://")
    via_method = app.topic("via_method")
    via_property = app.topic("via_property")
    via_static = app.topic("via_static")
    ran: list[str] = []

    class Holder:
        @property
        def out(self) -> Any:
            ran.append("property")  # never run: read, not called
            return via_property

        @staticmethod
        def helper() -> Any:
            return via_static

        def send(self) -> Any:
            return via_method

    @dataclass(slots=True)
    class Slotted:
        target: Any

        def __getattr__(self, name: str) -> Any:
            ran.append(f"__getattr__({name})")  # never run: attributes are read statically
            raise AttributeError(name)

        def emit(self) -> Any:
            return self.target.send

    holder = Holder()
    bound = holder.send
    slotted = Slotted(app.topic("via_slot"))

    async def agent_fun(stream):
        async for _ in stream:
            bound()
            _ = holder.out
            Holder.helper()
            slotted.emit()
            _ = slotted.missing

    refs = referenced_objects(agent_fun)
    # in closure order (Holder, bound, holder, slotted), each one call deep
    assert [r for r in refs if isinstance(r, streamlog.Topic)] == [
        via_static,
        via_method,
        via_property,
        slotted.target,
    ]
    assert ran == []


def test_the_stdlib_and_streamlog_are_not_entered():
    def uses_libraries():
        json.dumps({})
        return streamlog.App

    refs = referenced_objects(uses_libraries)
    # the modules themselves are reached; nothing in them is looked up
    assert refs == [json, streamlog]
    this_module = sys.modules[__name__]
    assert referenced_objects(lambda: this_module.Notifier) == [this_module, Notifier]


def chain(length: int, topic: Any) -> Any:
    """A function calling a function ... ``length`` calls deep to one that names ``topic``."""

    def last() -> Any:
        return topic.send

    fun = last
    for _ in range(length):
        fun = (lambda inner: lambda: inner())(fun)
    return fun


def test_depth_and_count_are_bounded():
    app = streamlog.App("bounds", broker="memory://", topic_partitions=1)
    deep = app.topic("deep")
    top = chain(7, deep)
    assert deep in referenced_objects(top, max_depth=7)
    assert deep not in referenced_objects(top, max_depth=6)
    many = [app.topic(f"t{i}") for i in range(50)]

    def uses_many():
        return many

    assert referenced_objects(uses_many, max_objects=10) == [many, *many[:9]]
    assert len(referenced_objects(uses_many)) == 51


def test_cycles_end():
    app = streamlog.App("cycles", broker="memory://", topic_partitions=1)
    out = app.topic("out")

    class Node:
        def __init__(self) -> None:
            self.next: Any = self
            self.out = out

        def step(self) -> Any:
            self.out.send()
            return self.next.step()

    node = Node()
    items: list[Any] = []
    items.append(items)

    async def agent_fun(stream):
        async for _ in stream:
            node.step()
            _ = items

    refs = referenced_objects(agent_fun)
    assert refs == [items, node, out]


def test_globals_are_told_from_attributes_and_imports_inside_functions_are_followed(monkeypatch):
    app = streamlog.App("names", broker="memory://", topic_partitions=1)
    alerts = app.topic("alerts")
    monkeypatch.setitem(globals(), "ALERTS", alerts)
    monkeypatch.setitem(globals(), "amount", app.topic("amount"))

    def by_attribute(order):
        return order.amount  # an attribute: not the global ``amount``

    def by_absolute_import(order):
        from tests.dsl.topology import test_references as here

        return here.alert(order)

    def by_relative_import(order):
        from . import test_references

        return test_references.alert(order)

    assert referenced_objects(by_attribute) == []
    package = sys.modules["tests.dsl.topology"]
    this_module = sys.modules[__name__]
    assert referenced_objects(by_absolute_import) == [package, this_module, alert, alerts]
    assert referenced_objects(by_relative_import) == [package, this_module, alert, alerts]
