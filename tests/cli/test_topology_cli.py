"""``streamlog topology APP [--dot FILE] [--png FILE]`` (the click command, run in-process)."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
from click.testing import CliRunner

from streamlog.cli.app_loader import load_app
from streamlog.cli.topology import topology
from streamlog.dsl.topology.graph import build_topology

APP = """\
import streamlog
from streamlog.dsl.topology.nodes import filter_node, map_node

app = streamlog.App({app_id!r}, broker="memory://", topic_partitions=3, store="memory://")
clicks = app.topic("clicks", value_type=dict)
visits = app.Table("visits", default=int)


@app.agent(clicks, name="count_pages")
async def count_pages(stream):
    async for click in stream.group_by(lambda c: c["page"], name="page"):
        visits[click["page"]] += 1


@filter_node(app, clicks, to="mobile", name="mobile_only")
def mobile_only(click):
    return click.get("device") == "mobile"


@map_node(app, "mobile", to="pages", name="page_of")
async def page_of(click):
    return click["page"]
"""


def expected_text(app_id: str) -> str:
    assert len(app_id) == 10  # the column widths below assume it
    return f"""\
Topology of app {app_id}
Sources: clicks
Sinks: pages

agent count_pages
  <- topic clicks
  -> repartition {app_id}-count_pages-page-repartition  [group_by(page)]
  <- repartition {app_id}-count_pages-page-repartition
  -> table visits  [uses]

filter mobile_only
  <- topic clicks
  -> topic mobile  [to]

map page_of
  <- topic mobile
  -> topic pages  [to]

table visits (memory, 3 partitions)
  <- agent count_pages  [uses]
  -> changelog {app_id}-visits-changelog  [writes]

Topics:
  clicks                                   topic        3 partitions  source
  mobile                                   topic        3 partitions
  pages                                    topic        3 partitions  sink
  {app_id}-count_pages-page-repartition  repartition  3 partitions
  {app_id}-visits-changelog              changelog    3 partitions
"""


@pytest.fixture
def app_file(tmp_path) -> tuple[str, str]:
    app_id = f"topo{uuid.uuid4().hex[:6]}"
    path = tmp_path / f"{app_id}.py"
    path.write_text(APP.format(app_id=app_id))
    return str(path), app_id


def invoke(*args: str, env: dict[str, str] | None = None):
    result = CliRunner().invoke(topology, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_prints_the_text(app_file):
    spec, app_id = app_file
    result = invoke(spec)
    assert (result.exit_code, result.stdout, result.stderr) == (0, expected_text(app_id), "")


def test_writes_dot_to_a_file_or_to_stdout(app_file, tmp_path):
    spec, app_id = app_file
    dot_path = tmp_path / "graph.dot"
    result = invoke(spec, "--dot", str(dot_path))
    assert (result.exit_code, result.stdout) == (0, expected_text(app_id))
    assert result.stderr == f"wrote DOT to {dot_path}\n"
    dot = dot_path.read_text()
    assert dot == build_topology(load_app(spec)).to_dot()
    assert dot.splitlines()[:6] == [
        f'digraph "{app_id}" {{',
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
        '  "agent:count_pages" [label="agent\\ncount_pages", shape=ellipse];',
        '  "agent:page_of" [label="map\\npage_of", shape=parallelogram];',
    ]
    to_stdout = invoke(spec, "--dot", "-")
    assert (to_stdout.exit_code, to_stdout.stdout) == (0, dot)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_renders_a_png_with_graphviz(app_file, tmp_path):
    spec, _ = app_file
    png = tmp_path / "graph.png"
    result = invoke(spec, "--png", str(png))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"wrote PNG to {png}\n"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The DOT itself is valid Graphviz input.
    canon = subprocess.run(
        ["dot", "-Tcanon"],
        input=build_topology(load_app(spec)).to_dot().encode(),
        capture_output=True,
        timeout=60,
    )
    assert canon.returncode == 0, canon.stderr.decode()


def test_png_without_graphviz_says_so(app_file, tmp_path):
    spec, app_id = app_file
    result = invoke(spec, "--png", str(tmp_path / "x.png"), env={"PATH": str(tmp_path)})
    assert result.exit_code == 1
    assert result.stdout == expected_text(app_id)  # the text still comes first
    assert result.stderr.startswith("Error: PNG output needs Graphviz's 'dot' program")
    assert not (tmp_path / "x.png").exists()


def test_errors_are_one_line(app_file, tmp_path):
    missing = invoke(str(tmp_path / "nope.py"))
    assert (missing.exit_code, missing.stderr) == (1, f"Error: no such file: {tmp_path}/nope.py\n")
    bad = tmp_path / f"bad{uuid.uuid4().hex[:6]}.py"
    bad.write_text("import streamlog\napp = streamlog.App('x')\nraise RuntimeError('boom')\n")
    broken = invoke(str(bad))
    assert broken.exit_code == 1
    assert broken.stderr == (f"Error: cannot import {bad}: RuntimeError: boom (at {bad}:3)\n")
    target = tmp_path / "no" / "g.dot"
    unwritable = invoke(app_file[0], "--dot", str(target))
    assert unwritable.exit_code == 1
    assert unwritable.stderr == f"Error: cannot write {target}: No such file or directory\n"


HELPERS_APP = """\
import streamlog
import {app_id}_notify as notify

app = streamlog.App({app_id!r}, broker="memory://", topic_partitions=2, store="memory://")
orders = app.topic("orders", value_type=dict)
alerts = app.topic("alerts", value_type=dict)
totals = app.Table("totals", default=int)
audit = notify.Auditor(app.topic("audit", value_type=dict))


async def raise_alert(order):
    await alerts.send(value=order)


@app.agent(orders, name="check")
async def check(stream):
    async for order in stream:
        notify.add(totals, order)
        await raise_alert(order)
        await audit.record(order)
"""

HELPERS_MODULE = """\
def add(table, order):
    table[order["user"]] += order["amount"]


class Auditor:
    def __init__(self, topic):
        self.topic = topic

    async def record(self, order):
        await self.topic.send(value=order)
"""


def test_sends_in_helper_functions_and_methods_are_edges(tmp_path):
    app_id = f"help{uuid.uuid4().hex[:6]}"  # 10 characters: the columns below assume it
    (tmp_path / f"{app_id}_notify.py").write_text(HELPERS_MODULE)
    spec = tmp_path / f"{app_id}.py"
    spec.write_text(HELPERS_APP.format(app_id=app_id))
    result = invoke(str(spec))
    assert (result.exit_code, result.stderr) == (0, "")
    assert (
        result.stdout
        == f"""\
Topology of app {app_id}
Sources: orders
Sinks: alerts, audit

agent check
  <- topic orders
  -> table totals  [uses]
  -> topic alerts  [uses]
  -> topic audit  [uses]

table totals (memory, 2 partitions)
  <- agent check  [uses]
  -> changelog {app_id}-totals-changelog  [writes]

Topics:
  {"alerts":27}  topic      2 partitions  sink
  {"audit":27}  topic      2 partitions  sink
  {app_id}-totals-changelog  changelog  2 partitions
  {"orders":27}  topic      2 partitions  source
"""
    )
    dot = invoke(str(spec), "--dot", "-").stdout
    uses = [line.strip() for line in dot.splitlines() if "uses" in line]
    assert uses == [
        '"agent:check" -> "table:totals" [label="uses", style=dashed];',
        '"agent:check" -> "topic:alerts" [label="uses", style=dashed];',
        '"agent:check" -> "topic:audit" [label="uses", style=dashed];',
    ]
