"""The topology DSL (map/filter/aggregate nodes) and ``app.topology()``'s graph, text and DOT."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time

import pytest

import streamlog
from streamlog.dsl.errors import ImproperlyConfigured
from streamlog.dsl.topology.graph import (
    GraphvizNotFoundError,
    Topology,
    build_topology,
    probe_agent,
    referenced_objects,
)
from streamlog.dsl.topology.nodes import (
    NodeSpec,
    aggregate_node,
    filter_node,
    join_node,
    map_node,
    node_spec,
)
from tests.dsl.helpers import read_topic, run, wait_for


class Order(streamlog.Record):
    order_id: int
    user: str
    amount: int


def shop_app() -> streamlog.App:
    """An agent, a group_by agent with a table and a sink, a map and a filter node."""
    app = streamlog.App("shop", broker="memory://", topic_partitions=4, store="memory://")
    orders = app.topic("orders", value_type=Order)
    totals = app.topic("totals", value_type=dict)
    spent = app.Table("spent", default=int, help="Amount spent per user.")

    @app.agent(orders, name="audit")
    async def audit(stream):
        async for _order in stream:
            pass

    @app.agent(orders, name="per_user", sink=[totals])
    async def per_user(stream):
        async for order in stream.group_by(Order.user):
            spent[order.user] += order.amount
            yield {"user": order.user, "spent": spent[order.user]}

    @map_node(app, orders, to="amounts", name="amount")
    def amount(order):
        return order.amount

    @filter_node(app, "amounts", to="big", name="big")
    def big(n):
        return n >= 100

    return app


SHOP_TEXT = """\
Topology of app shop
Sources: orders
Sinks: big, totals

map amount
  <- topic orders
  -> topic amounts  [to]

agent audit
  <- topic orders

filter big
  <- topic amounts
  -> topic big  [to]

agent per_user
  <- topic orders
  -> repartition shop-per_user-user-repartition  [group_by(user)]
  <- repartition shop-per_user-user-repartition
  -> topic totals  [sink]
  -> table spent  [uses]

table spent (memory, 4 partitions)
  <- agent per_user  [uses]
  -> changelog shop-spent-changelog  [writes]

Topics:
  amounts                         topic        4 partitions
  big                             topic        4 partitions  sink
  orders                          topic        4 partitions  source
  shop-per_user-user-repartition  repartition  4 partitions
  shop-spent-changelog            changelog    4 partitions
  totals                          topic        4 partitions  sink
"""

SHOP_DOT = """\
digraph "shop" {
  rankdir=LR;
  node [fontname="Helvetica", fontsize=10];
  edge [fontname="Helvetica", fontsize=9];
  "agent:audit" [label="agent\\naudit", shape=ellipse];
  "agent:per_user" [label="agent\\nper_user", shape=ellipse];
  "agent:amount" [label="map\\namount", shape=parallelogram];
  "agent:big" [label="filter\\nbig", shape=invtrapezium];
  "table:spent" [label="spent\\nmemory, 4 partitions", shape=cylinder];
  "topic:amounts" [label="amounts\\n4 partitions", shape=box];
  "topic:big" [label="big\\n4 partitions", shape=box];
  "topic:orders" [label="orders\\n4 partitions", shape=box];
  "topic:totals" [label="totals\\n4 partitions", shape=box];
  "topic:shop-per_user-user-repartition" [label="shop-per_user-user-repartition\\n4 partitions", shape=box, style=dashed];
  "topic:shop-spent-changelog" [label="shop-spent-changelog\\n4 partitions", shape=note];
  "topic:orders" -> "agent:amount";
  "agent:amount" -> "topic:amounts" [label="to"];
  "topic:orders" -> "agent:audit";
  "topic:amounts" -> "agent:big";
  "agent:big" -> "topic:big" [label="to"];
  "topic:orders" -> "agent:per_user";
  "agent:per_user" -> "topic:shop-per_user-user-repartition" [label="group_by(user)"];
  "topic:shop-per_user-user-repartition" -> "agent:per_user";
  "agent:per_user" -> "topic:totals" [label="sink"];
  "agent:per_user" -> "table:spent" [label="uses", style=dashed];
  "table:spent" -> "topic:shop-spent-changelog" [label="writes"];
}
"""  # noqa: E501 - DOT lines as written


def test_text_and_dot_of_a_small_app():
    app = shop_app()
    declared = sorted(app.topics)
    graph = build_topology(app)
    assert graph.to_text() == SHOP_TEXT
    assert graph.to_dot() == SHOP_DOT
    # Building it declared nothing (the repartition topic appears only at start) and ran
    # no actor.
    assert sorted(app.topics) == declared
    assert "shop-per_user-user-repartition" not in app.topics
    assert not app.started and all(not a._actors for a in app.agents.values())
    # Deterministic: a second build, and a second app declared the same way, agree.
    assert build_topology(app).to_text() == SHOP_TEXT
    assert build_topology(shop_app()).to_dot() == SHOP_DOT


def test_graph_edges_and_roles():
    graph = build_topology(shop_app())
    assert [n.name for n in graph.sources()] == ["orders"]
    assert [n.name for n in graph.sinks()] == ["big", "totals"]
    assert [(e.source, e.target, e.label, e.inferred) for e in graph.edges_of("table:spent")] == [
        ("agent:per_user", "table:spent", "uses", True),
        ("table:spent", "topic:shop-spent-changelog", "writes", False),
    ]
    assert graph.node("topic:shop-per_user-user-repartition").kind == "repartition"


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_dot_output_is_valid_graphviz_and_renders_a_png(tmp_path):
    graph = build_topology(shop_app())
    checked = subprocess.run(
        ["dot", "-Tcanon"], input=graph.to_dot().encode(), capture_output=True, timeout=60
    )
    assert checked.returncode == 0, checked.stderr.decode()
    png = tmp_path / "shop.png"
    graph.write_png(str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_without_graphviz_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on this PATH
    with pytest.raises(GraphvizNotFoundError, match="Graphviz's 'dot' program"):
        build_topology(shop_app()).write_png(str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


def test_dot_quotes_names_and_shapes_every_kind():
    graph = Topology('we"ird\\app')
    left = graph.add_node("topic", "left")
    right = graph.add_node("channel", "right")
    join = graph.add_node("join", "enrich")
    graph.add_edge(left, join, "left")
    graph.add_edge(right, join, "right")
    graph.add_edge(join, graph.add_node("dlq", "a-dlq"), "dead letters")
    graph.add_edge(join, graph.add_node("function", "list.append"), "sink")
    assert graph.to_dot().splitlines() == [
        'digraph "we\\"ird\\\\app" {',
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
        '  "agent:enrich" [label="join\\nenrich", shape=diamond];',
        '  "topic:left" [label="left", shape=box];',
        '  "topic:a-dlq" [label="a-dlq", shape=box, color=red, fontcolor=red];',
        '  "channel:right" [label="right", shape=box, style=rounded];',
        '  "function:list.append" [label="list.append", shape=plaintext];',
        '  "topic:left" -> "agent:enrich" [label="left"];',
        '  "channel:right" -> "agent:enrich" [label="right"];',
        '  "agent:enrich" -> "topic:a-dlq" [label="dead letters"];',
        '  "agent:enrich" -> "function:list.append" [label="sink"];',
        "}",
    ]
    assert graph.to_text().splitlines()[4:9] == [
        "join enrich",
        "  <- topic left  [left]",
        "  <- channel right  [right]",
        "  -> dlq a-dlq  [dead letters]",
        "  -> function list.append  [sink]",
    ]


def test_a_topic_seen_in_several_roles_keeps_the_most_specific_kind():
    graph = Topology("a")
    graph.add_node("topic", "x-changelog", ("1 partitions",))
    graph.add_node("changelog", "x-changelog", ("3 partitions",))
    graph.add_node("topic", "x-changelog")
    assert graph.node("topic:x-changelog").kind == "changelog"
    assert graph.node("topic:x-changelog").details == ("1 partitions",)
    with pytest.raises(ValueError, match="unknown node kind 'stage'"):
        graph.add_node("stage", "x")
    with pytest.raises(KeyError, match="add both nodes first"):
        graph.add_edge("topic:x-changelog", "agent:nobody", "reads")


def test_probe_records_operators_and_explains_where_it_stopped():
    app = streamlog.App("probe", broker="memory://", topic_partitions=2)
    src = app.topic("src", value_type=dict)
    out = app.topic("out")
    started: list[str] = []

    @app.agent(src, name="two_hops")
    async def two_hops(stream):
        started.append("two_hops")
        await asyncio.sleep(0)  # a bare yield to the loop is fine without one
        async for _ in stream.group_by(lambda v: v["k"], name="k").through("mid").take(5):
            pass

    @app.agent(src, name="sends_first")
    async def sends_first(stream):
        await out.send(value=1)
        async for _ in stream:
            pass

    @app.agent(src, name="swallows")
    async def swallows(stream):
        try:
            async for _ in stream:
                pass
        except Exception:  # noqa: BLE001 - the probe's stop is no Exception
            pass

    @app.agent(src, name="returns")
    async def returns(stream):
        return None

    hops = probe_agent(two_hops)
    assert [(label, t.name) for label, t in hops.forwards] == [
        ("group_by(k)", "probe-two_hops-k-repartition"),
        ("through", "mid"),
    ]
    assert hops.reached and hops.note is None
    assert started == ["two_hops"]  # the code before the loop ran once
    blocked = probe_agent(sends_first)
    assert not blocked.reached
    assert blocked.note is not None and "AppNotRunningError" in blocked.note
    assert probe_agent(swallows).reached
    assert probe_agent(returns).note == "returned without reading its stream"
    text = build_topology(app).to_text()
    assert text.endswith(
        f"Notes:\n  returns: returned without reading its stream\n  sends_first: {blocked.note}\n"
    )
    assert "  -> topic out  [uses]\n" in text  # referenced in the code: inferred


def test_tables_are_found_through_globals_closures_and_nested_code():
    app = streamlog.App("refs", broker="memory://", store="memory://")
    src = app.topic("src")
    by_closure = app.Table("by_closure")
    by_global = app.Table("by_global")
    nested = app.Table("nested")
    hidden = app.Table("hidden")
    globals()["by_global"] = by_global
    globals()["nested_table"] = nested
    try:

        @app.agent(src, name="uses_tables")
        async def uses_tables(stream):
            async for v in stream:
                by_closure[v] = 1
                by_global[v] = 2  # noqa: F821 - a module global set above
                _ = [nested_table[x] for x in v]  # noqa: F821
                app.tables["hidden"][v] = 3  # not seen: documented limit

        refs = referenced_objects(uses_tables.fun)
        assert by_closure in refs and by_global in refs and nested in refs
        assert hidden not in refs
        edges = build_topology(app).edges_of("agent:uses_tables")
        assert [(e.target, e.label) for e in edges if e.inferred] == [
            ("table:by_closure", "uses"),
            ("table:by_global", "uses"),
            ("table:nested", "uses"),
        ]
    finally:
        globals().pop("by_global", None)
        globals().pop("nested_table", None)


def test_dlq_channel_and_callable_sinks_and_agent_sinks():
    app = streamlog.App("kinds", broker="memory://", topic_partitions=1)
    channel = app.channel(name="fanout")
    seen: list[int] = []

    @app.agent(name="last")
    async def last(stream):
        async for _ in stream:
            pass

    @app.agent(channel, name="first", sink=[last, seen.append], on_error="dlq", concurrency=2)
    async def first(stream):
        async for v in stream:
            yield v

    assert build_topology(app).to_text() == (
        "Topology of app kinds\n"
        "Sources: fanout\n"
        "Sinks: list.append\n"
        "\n"
        "agent first (concurrency=2)\n"
        "  <- channel fanout\n"
        "  -> topic kinds-last  [sink]\n"
        "  -> function list.append  [sink]\n"
        "  -> dlq kinds-first-dlq  [dead letters]\n"
        "\n"
        "agent last\n"
        "  <- topic kinds-last\n"
        "\n"
        "Topics:\n"
        "  fanout           channel               source\n"
        "  kinds-first-dlq  dlq      1 partition\n"
        "  kinds-last       topic    1 partition\n"
    )


# ---------------------------------------------------------------------------- DSL nodes


def recent_seconds() -> int:
    """A multiple of 10 s, ten minutes ago: a record timestamp that the log's retention
    (7 days by default) does not delete while the test runs, as it would a fixed date."""
    return int(time.time()) // 10 * 10 - 600


def dsl_app(app_id: str, url: str) -> streamlog.App:
    return streamlog.App(
        app_id,
        broker=url,
        topic_partitions=2,
        broker_commit_interval=0.2,
        broker_session_timeout=6.0,
        store="memory://",
    )


def decoded(records, sort_key=lambda r: (r.key, r.offset)):
    return [(r.key, json.loads(r.value), r.timestamp) for r in sorted(records, key=sort_key)]


def test_map_then_filter_keep_keys_and_timestamps_end_to_end(broker_url, app_id):
    app = dsl_app(app_id, broker_url)
    orders = app.topic(f"{app_id}-orders", key_type=str, value_type=Order)

    @map_node(app, orders, to=f"{app_id}-amounts")
    async def amount(order):  # async map
        await asyncio.sleep(0)
        return None if order.amount == 0 else order.amount * 10  # None: dropped

    @filter_node(app, amount, to=f"{app_id}-big")  # a node as source: its one output
    def big(n):
        return n >= 100

    sent = [("ann", 5), ("bob", 0), ("ann", 20), ("cy", 10), ("bob", 7)]
    base = recent_seconds()

    async def main():
        async with app:
            for i, (user, n) in enumerate(sent):
                await orders.send(key=user, value=Order(i, user, n), timestamp=base + i)
            amounts = await read_topic(app, f"{app_id}-amounts", 4)
            bigs = await read_topic(app, f"{app_id}-big", 2)
        return amounts, bigs

    amounts, bigs = run(main())
    t0 = base * 1000
    assert decoded(amounts) == [
        (b"ann", 50, t0),
        (b"ann", 200, t0 + 2000),
        (b"bob", 70, t0 + 4000),
        (b"cy", 100, t0 + 3000),
    ]
    assert decoded(bigs) == [(b"ann", 200, t0 + 2000), (b"cy", 100, t0 + 3000)]
    # Keys keep their partition: the output is co-partitioned with the input.
    assert {(r.key, r.partition) for r in amounts} >= {(r.key, r.partition) for r in bigs}
    spec = node_spec(big)
    assert spec is not None and (spec.kind, [t.name for t in spec.outputs]) == (
        "filter",
        [f"{app_id}-big"],
    )


def test_map_with_key_re_keys_to_the_partition_of_the_new_key(broker_url, app_id):
    from streamlog.log.partitioner import partition_for_key

    app = dsl_app(app_id, broker_url)
    orders = app.topic(f"{app_id}-orders", key_type=str, value_type=Order)

    @map_node(app, orders, to=f"{app_id}-by-user", key=lambda out: out["user"])
    def by_user(order):  # orders keyed by order id, written keyed by user
        return None if order.amount == 0 else {"user": order.user, "amount": order.amount}

    sent = [("o1", "ann", 5), ("o2", "bob", 0), ("o3", "cy", 20), ("o4", "ann", 7)]
    base = recent_seconds()

    async def main():
        async with app:
            for i, (order_id, user, n) in enumerate(sent):
                await orders.send(key=order_id, value=Order(i, user, n), timestamp=base + i)
            return await read_topic(app, f"{app_id}-by-user", 3)

    out = run(main())
    t0 = base * 1000
    assert decoded(out, sort_key=lambda r: r.timestamp) == [
        (b"ann", {"user": "ann", "amount": 5}, t0),
        (b"cy", {"user": "cy", "amount": 20}, t0 + 2000),
        (b"ann", {"user": "ann", "amount": 7}, t0 + 3000),
    ]
    # each record is in its new key's partition: the two "ann" records share one
    assert all(r.partition == partition_for_key(r.key, 2) for r in out)
    with pytest.raises(ImproperlyConfigured, match="key= takes a function"):
        map_node(app, orders, to="x", key="user")(lambda v: v)


def test_aggregate_by_field_emits_key_and_running_total():
    app = dsl_app("agg-field", "memory://")
    # One partition, so the order of one user's updates is the order sent.
    orders = app.topic("orders", key_type=str, value_type=Order, partitions=1)

    @aggregate_node(app, orders, by=Order.user, into="spent", to="spent-by-user", default=int)
    def spent(acc, order):
        """Amount spent per user."""
        return acc + order.amount

    sent = [("o1", "ann", 5), ("o2", "bob", 3), ("o3", "ann", 7), ("o4", "ann", 1)]

    async def main():
        async with app:
            for order_id, user, n in sent:
                # keyed by order id: re-keyed by user through the repartition topic
                await orders.send(key=order_id, value=Order(int(order_id[1:]), user, n))
            out = await read_topic(app, "spent-by-user", 4)
            table = app.tables["spent"]
            return out, dict(table.items()), table.help, table.partitions

    out, contents, help_text, partitions = run(main())
    assert [(json.loads(r.key), json.loads(r.value)) for r in sorted(out, key=_offsets)] == [
        ("ann", 5),
        ("ann", 12),
        ("ann", 13),
        ("bob", 3),
    ]
    assert contents == {"ann": 13, "bob": 3}
    assert help_text == "Amount spent per user."
    assert partitions == 1  # the table is co-partitioned with the stream it reads


def _offsets(record):
    return (json.loads(record.key), record.offset)


def test_aggregate_by_record_key_into_a_given_table_yields_pairs():
    app = dsl_app("agg-key", "memory://")
    words = app.topic("words", key_type=str, value_type=str)
    lengths = app.Table("lengths", key_type=str, value_type=list)
    got: list[tuple[str, list[str]]] = []

    @aggregate_node(app, words, into=lengths, default=list)
    async def collect(acc, word):
        return acc + [word]

    collect.add_sink(got.append)

    async def main():
        async with app:
            for key, word in [("a", "x"), ("b", "y"), ("a", "z")]:
                await words.send(key=key, value=word)
            await wait_for(lambda: len(got) == 3)
            return dict(lengths.items())

    assert run(main()) == {"a": ["x", "z"], "b": ["y"]}
    assert sorted(got) == [("a", ["x"]), ("a", ["x", "z"]), ("b", ["y"])]


def test_map_and_filter_without_to_yield_to_sinks():
    app = dsl_app("yields", "memory://")
    numbers = app.topic("numbers", value_type=int)
    doubled: list[int] = []
    odd: list[int] = []

    @map_node(app, numbers)
    def double(n):
        return n * 2

    @filter_node(app, numbers)
    async def is_odd(n):
        return n % 2 == 1

    double.add_sink(doubled.append)
    is_odd.add_sink(odd.append)

    async def main():
        async with app:
            for n in range(6):
                await numbers.send(key=b"k", value=n)
            await wait_for(lambda: len(doubled) == 6 and len(odd) == 3)

    run(main())
    assert doubled == [0, 2, 4, 6, 8, 10]
    assert odd == [1, 3, 5]


def test_declaration_errors_are_clear():
    app = dsl_app("errors", "memory://")
    orders = app.topic("orders", value_type=Order)
    raw_keyed = app.Table("raw_keyed", key_serializer="raw")
    with pytest.raises(ImproperlyConfigured, match="key_serializer='json'"):
        aggregate_node(app, orders, by=Order.user, into=raw_keyed)(lambda acc, o: acc)
    with pytest.raises(ImproperlyConfigured, match="by="):
        aggregate_node(app, orders, by=Order)
    with pytest.raises(ImproperlyConfigured, match="exactly one output"):

        @map_node(app, orders, name="no_output")
        def no_output(order):
            return order

        map_node(app, no_output)(lambda v: v)
    with pytest.raises(ValueError, match="node kind"):
        NodeSpec("reduce", "r", len, ())
    with pytest.raises(ImproperlyConfigured, match="must be a plain \\(sync\\) function"):

        @aggregate_node(app, orders, by=Order.user, window=10, default=int)
        async def windowed_async(acc, order):
            return acc

    with pytest.raises(ImproperlyConfigured, match="needs default="):
        aggregate_node(app, orders, by=Order.user, window=10, into="no_default")(lambda a, o: a)
    with pytest.raises(ImproperlyConfigured, match="window= takes seconds"):
        aggregate_node(app, orders, window="10s", into="bad_window", default=int)(lambda a, o: a)


def test_windowed_aggregate_emits_final_results_when_windows_close():
    app = dsl_app("agg-window", "memory://")
    clicks = app.topic("clicks", key_type=str, value_type=int, partitions=1)

    @aggregate_node(app, clicks, window=10, to="final", default=int)
    def total(acc, n):
        return acc + n

    t0 = recent_seconds()  # a multiple of 10 s: windows start at t0, t0 + 10, ...

    async def main():
        async with app:
            for key, n, dt in [("ann", 5, 1), ("bob", 3, 2), ("ann", 7, 5), ("ann", 1, 12)]:
                await clicks.send(key=key, value=n, timestamp=t0 + dt)
            out = await read_topic(app, "final", 2)
            return out, sorted(app.tables["total"].items())

    out, windows = run(main())
    start, end = t0 * 1000, t0 * 1000 + 10_000
    # The event at t0 + 12 moved stream time past the first window: it closed, once.
    assert decoded(out) == [
        (b"ann", {"start": start, "end": end, "value": 12}, end - 1),
        (b"bob", {"start": start, "end": end, "value": 3}, end - 1),
    ]
    assert [(k, (w.start, w.end), v) for (k, w), v in windows] == [
        ("ann", (start, end), 12),
        ("ann", (end, end + 10_000), 1),
        ("bob", (start, end), 3),
    ]
    assert build_topology(app).to_text().splitlines()[4:8] == [
        f"aggregate {__name__}.test_windowed_aggregate_emits_final_results_when_windows_close"
        ".<locals>.total (window=tumbling 10s)",
        "  <- topic clicks",
        "  -> table total  [into]",
        "  -> topic final  [to]",
    ]


def test_join_node_enriches_a_stream_from_a_table_and_draws_one_node():
    app = dsl_app("join-node", "memory://")
    users = app.topic("users", key_type=str, value_type=str)
    orders = app.topic("orders", key_type=str, value_type=int)
    names = app.Table("names", key_type=str, value_type=str)

    @app.agent(users, name="load_users")
    async def load_users(stream):
        async for event in stream.events():
            names[event.key] = event.value

    @join_node(app, orders, names, to="enriched")
    def enrich(amount, name):
        return {"name": name, "amount": amount}

    assert build_topology(app).to_text() == (
        "Topology of app join-node\n"
        "Sources: orders, users\n"
        "Sinks: enriched\n"
        "\n"
        "join enrich (stream-table, inner)\n"
        "  <- topic orders  [left]\n"
        "  <- table names  [right]\n"
        "  -> topic enriched  [to]\n"
        "\n"
        "agent load_users\n"
        "  <- topic users\n"
        "  -> table names  [uses]\n"
        "\n"
        "table names (memory, 2 partitions)\n"
        "  <- agent load_users  [uses]\n"
        "  -> join enrich  [right]\n"
        "  -> changelog join-node-names-changelog  [writes]\n"
        "\n"
        "Topics:\n"
        "  enriched                   topic      2 partitions  sink\n"
        "  join-node-names-changelog  changelog  2 partitions\n"
        "  orders                     topic      2 partitions  source\n"
        "  users                      topic      2 partitions  source\n"
    )

    base = recent_seconds()

    async def main():
        async with app:
            for key, name in [("u1", "Ann"), ("u2", "Bob")]:
                await users.send(key=key, value=name)
            await wait_for(lambda: len(list(names.items())) == 2)
            for key, amount in [("u1", 5), ("u2", 7), ("u3", 1), ("u1", 2)]:
                await orders.send(key=key, value=amount, timestamp=base)
            return await read_topic(app, "enriched", 3)

    out = run(main())
    assert decoded(out, sort_key=lambda r: (r.key, json.loads(r.value)["amount"])) == [
        (b"u1", {"name": "Ann", "amount": 2}, base * 1000),
        (b"u1", {"name": "Ann", "amount": 5}, base * 1000),
        (b"u2", {"name": "Bob", "amount": 7}, base * 1000),
    ]  # u3 has no name: an inner join drops it


def test_aggregate_window_takes_a_window_spec_or_a_function_of_the_table():
    from streamlog.state.windows import TumblingWindow

    app = dsl_app("agg-window-forms", "memory://")
    clicks = app.topic("clicks", key_type=str, value_type=int, partitions=1)

    @aggregate_node(app, clicks, window=TumblingWindow(10_000), default=int)
    def by_spec(acc, n):
        return acc + n

    @aggregate_node(app, clicks, window=lambda t: t.hopping(60, 10), default=int)
    def by_function(acc, n):
        return acc + n

    labels = {
        name: table.windowed.window
        for name, table in app.tables.items()
        if name in ("by_spec", "by_function")
    }
    assert labels["by_spec"] == TumblingWindow(10_000)
    assert (labels["by_function"].size, labels["by_function"].step) == (60_000, 10_000)
