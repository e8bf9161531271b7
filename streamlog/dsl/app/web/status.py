"""What the built-in routes answer: health, the app's counters as JSON (``/stats``), and
the status page a person opens at ``/`` (``/metrics`` is ``metrics.py``'s).

The status page is one self-contained HTML document (no external scripts, styles or
fonts: a worker often runs where nothing else is reachable). It is rendered with the
state of the moment (readable without scripts) and then redraws every section from
``/stats`` every ``REFRESH_SECONDS``: counters, the workers of the group and their
partitions (so a rebalance shows without a reload), lag per partition, recovery
progress bars, tables and their sizes, agents and their rates (events/s between two
reads). Every value that comes from the app is HTML-escaped here and set as text (never
as markup) by the script.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamlog.dsl.app.app import App
    from streamlog.dsl.app.lag import ConsumerLag
    from streamlog.dsl.app.web.directory import Directory

__all__ = [
    "state_of",
    "page_stats",
    "stats_body",
    "status_page",
    "REFRESH_SECONDS",
    "KEY_COUNT_LIMIT",
]

REFRESH_SECONDS = 2
KEY_COUNT_LIMIT = 100_000  # keys counted per table per read; more shows as "> 100000"


def state_of(app: App) -> str:
    """ "running", "starting" or "stopping": what ``/health`` and the page say."""
    if app.stopping:
        return "stopping"
    return "running" if app.started else "starting"


def page_stats(
    app: App, lag: ConsumerLag | None, own_url: str | None, directory: Directory
) -> dict[str, Any]:
    """``App.stats()`` with what the page shows beside it: ``state``, the consumer ``lag``
    (None when it could not be measured: no consumer yet, or the broker did not
    answer), each table's ``keys`` held here (counted up to ``KEY_COUNT_LIMIT`` + 1) and
    the ``workers`` of the group with their partitions (the leader-election topic's left
    out) as of the last rebalance."""
    stats = app.stats()
    for name, table_stats in stats["tables"].items():
        table_stats["keys"] = app.tables[name].count_keys(KEY_COUNT_LIMIT)
    leader = app.leader_topic_name
    stats["workers"] = [
        {
            "url": worker.url,
            "this": worker.url == own_url,
            "partitions": [
                f"{tp.topic}[{tp.partition}]"
                for tp in sorted(worker.partitions)
                if tp.topic != leader
            ],
            "standby": sorted({tp.partition for tp in worker.standby if tp.topic != leader}),
        }
        for worker in directory.workers
    ]
    stats["key_count_limit"] = KEY_COUNT_LIMIT
    stats["state"] = state_of(app)
    stats["lag"] = lag.as_json() if lag else None
    return stats


def stats_body(
    app: App, lag: ConsumerLag | None, own_url: str | None, directory: Directory
) -> bytes:
    """``/stats``: ``page_stats`` as indented JSON."""
    return json.dumps(page_stats(app, lag, own_url, directory), indent=2).encode()


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _keys(count: int) -> str:
    return f"> {KEY_COUNT_LIMIT}" if count > KEY_COUNT_LIMIT else str(count)


def _bars(recovery: dict[str, list[int]]) -> str:
    bars = []
    for number, (done, total) in recovery.items():
        value, top = (1, 1) if total == 0 else (done, total)
        bars.append(
            f'<span class="bar" data-partition="{_e(number)}">'
            f'<progress value="{_e(value)}" max="{_e(top)}"></progress> '
            f"{_e(number)}: {_e(done)}/{_e(total)}</span>"
        )
    return "".join(bars) or "-"


def status_page(
    app: App,
    own_url: str | None,
    directory: Directory,
    paths: list[str],
    lag: ConsumerLag | None = None,
) -> str:
    """The HTML status page (module docstring); ``lag``: the records not processed yet."""
    stats = page_stats(app, lag, own_url, directory)
    agents = (
        "".join(
            f'<tr data-agent="{_e(name)}"><td>{_e(name)}</td>'
            f'<td class="events">{_e(a["events_in"])}</td><td class="rate">-</td>'
            f'<td class="errors">{_e(a["errors"])}</td>'
            f'<td class="dead">{_e(a["dead_lettered"])}</td></tr>'
            for name, a in sorted(stats["agents"].items())
        )
        or '<tr><td colspan="5">no agents</td></tr>'
    )
    tables = (
        "".join(
            f'<tr data-table="{_e(name)}"><td>{_e(name)}</td>'
            f'<td class="partitions">{_e(", ".join(map(str, t["partitions"])) or "-")}</td>'
            f'<td class="keys">{_e(_keys(t["keys"]))}</td>'
            f'<td class="recovered">{_e(t["recovered_records"])}</td>'
            f'<td class="recovery">{_bars(t["recovery"])}</td></tr>'
            for name, t in sorted(stats["tables"].items())
        )
        or '<tr><td colspan="5">no tables</td></tr>'
    )
    rows = []
    for worker in stats["workers"]:
        mark = ' class="me"' if worker["this"] else ""
        note = " (this worker)" if worker["this"] else ""
        held = ", ".join(worker["partitions"]) or "-"
        standby = ", ".join(map(str, worker["standby"])) or "-"
        rows.append(
            f'<tr{mark}><td><a href="{_e(worker["url"])}/">{_e(worker["url"])}</a>{note}</td>'
            f'<td>{_e(held)}</td><td class="standby">{_e(standby)}</td></tr>'
        )
    workers = "".join(rows) or f'<tr><td colspan="3">{_NO_WORKERS}</td></tr>'
    lags = (
        "".join(
            f"<tr><td>{_e(p.topic)}</td><td>{_e(p.partition)}</td><td>{_e(p.end_offset)}</td>"
            f"<td>{_e(p.processed_offset)}</td><td>{_e(p.lag)}</td></tr>"
            for p in lag.partitions
        )
        if lag is not None and lag.partitions
        else '<tr><td colspan="5">not measured</td></tr>'
    )
    pages = (
        "".join(
            f'<li><a href="{_e(p)}">{_e(p)}</a></li>' if "{" not in p else f"<li>{_e(p)}</li>"
            for p in paths
        )
        or "<li>none</li>"
    )
    assignment = ", ".join(stats["assignment"]) or "-"
    state = stats["state"]
    connectors = _connector_rows(app.connectors.status())
    return _PAGE.format(
        app=_e(app.conf.id),
        state=_e(state),
        url=_e(own_url or "-"),
        broker=_e(app.conf.broker),
        records=_e(stats["records_fetched"]),
        commits=_e(stats["commits"]),
        rebalances=_e(stats["rebalances"]),
        lag=_e(lag.total if lag is not None else "-"),
        assignment=_e(assignment),
        agents=agents,
        tables=tables,
        workers=workers,
        lags=lags,
        pages=pages,
        connectors=connectors,
        refresh_ms=REFRESH_SECONDS * 1000,
        no_workers=_NO_WORKERS,
    )


_NO_WORKERS = "none has advertised a web server"


def _connector_rows(status: dict[str, Any]) -> str:
    """The rows of the connectors' table (``/connect/`` has the whole status)."""
    rows = []
    for kind in ("sources", "sinks"):
        for name, one in sorted(status[kind].items()):
            where = one.get("position") if kind == "sources" else one.get("unflushed")
            error = one.get("last_error") or one.get("runner_last_error") or "-"
            rows.append(
                f'<tr data-connector="{_e(name)}"><td>{_e(name)}</td><td>{_e(one.get("kind"))}'
                f"</td><td>{_e(one.get('topic'))}</td><td>{_e(one.get('records', '-'))}</td>"
                f"<td>{_e(one.get('errors', 0))}</td><td>{_e(where)}</td><td>{_e(error)}</td></tr>"
            )
    return "".join(rows) or '<tr><td colspan="7">no connectors</td></tr>'


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{app} · streamlog worker</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 64rem;
       padding: 0 1rem; color: #1d2330; }}
h1 {{ margin-bottom: .2rem; }}
h2 {{ font-size: 1.05rem; margin-top: 1.8rem; border-bottom: 1px solid #d8dce5; }}
.state {{ display: inline-block; padding: .1rem .6rem; border-radius: 1rem;
          font-size: .85rem; color: #fff; background: #8a93a6; vertical-align: middle; }}
.state.running {{ background: #1f8a4c; }}
.state.stopping, .state.unreachable {{ background: #b5442c; }}
dl {{ display: grid; grid-template-columns: max-content auto; gap: .2rem 1.2rem; }}
dt {{ color: #5b6478; }}
dd {{ margin: 0; font-variant-numeric: tabular-nums; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #eceef3;
          font-variant-numeric: tabular-nums; }}
th {{ color: #5b6478; font-weight: 600; }}
tr.me td {{ font-weight: 600; }}
.bar {{ display: inline-block; margin-right: .8rem; white-space: nowrap; font-size: .85rem; }}
progress {{ width: 4rem; vertical-align: middle; }}
footer {{ margin-top: 2rem; color: #5b6478; font-size: .85rem; }}
</style>
</head>
<body>
<h1>{app} <span id="state" class="state {state}">{state}</span></h1>
<div>streamlog worker at <span id="url">{url}</span> on {broker}</div>

<h2>Counters</h2>
<dl>
<dt>records fetched</dt><dd id="records-fetched">{records}</dd>
<dt>commits</dt><dd id="commits">{commits}</dd>
<dt>rebalances</dt><dd id="rebalances">{rebalances}</dd>
<dt>records behind</dt><dd id="lag">{lag}</dd>
<dt>partitions held</dt><dd id="assignment">{assignment}</dd>
</dl>

<h2>Workers of the app</h2>
<table id="workers"><thead><tr><th>worker</th><th>partitions</th>
<th>standby partitions</th></tr></thead>
<tbody>{workers}</tbody></table>

<h2>Agents</h2>
<table id="agents"><thead><tr><th>agent</th><th>events in</th><th>events/s</th>
<th>errors</th><th>dead-lettered</th></tr></thead>
<tbody>{agents}</tbody></table>

<h2>Tables</h2>
<table id="tables"><thead><tr><th>table</th><th>partitions here</th><th>keys here</th>
<th>records recovered</th><th>recovery (partition: offsets replayed/to replay)</th></tr>
</thead><tbody>{tables}</tbody></table>

<h2>Connectors</h2>
<table id="connectors"><thead><tr><th>connector</th><th>kind</th><th>topic</th>
<th>records</th><th>errors</th><th>position / unflushed</th><th>last error</th></tr>
</thead><tbody>{connectors}</tbody></table>

<h2>Lag by partition</h2>
<table id="lag-partitions"><thead><tr><th>topic</th><th>partition</th><th>end offset</th>
<th>processed up to</th><th>records behind</th></tr></thead><tbody>{lags}</tbody></table>

<h2>Pages</h2>
<ul id="pages">{pages}</ul>

<footer>
<a href="/stats">/stats</a> · <a href="/metrics">/metrics</a> · <a href="/health">/health</a>
· <a href="/router/">/router/</a> · updated <span id="updated">at load</span>
</footer>
<script>
"use strict";
let previous = null;  // the last read: agents' events and when, for the rates
function setText(id, value) {{ document.getElementById(id).textContent = String(value); }}
function setState(name) {{
  const badge = document.getElementById("state");
  badge.textContent = name;
  badge.className = "state " + name;
}}
function cell(row, text, cls) {{
  const td = document.createElement("td");
  td.textContent = String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}}
function fill(id, rows, empty, columns) {{
  const body = document.querySelector("#" + id + " tbody");
  const fresh = document.createElement("tbody");
  for (const row of rows) fresh.appendChild(row);
  if (!rows.length) {{
    const tr = document.createElement("tr");
    cell(tr, empty).colSpan = columns;
    fresh.appendChild(tr);
  }}
  body.replaceWith(fresh);
}}
function workerRows(stats) {{
  return stats.workers.map((worker) => {{
    const tr = document.createElement("tr");
    if (worker.this) tr.className = "me";
    const td = cell(tr, "");
    const link = document.createElement("a");
    link.href = worker.url + "/";
    link.textContent = worker.url;
    td.appendChild(link);
    if (worker.this) td.appendChild(document.createTextNode(" (this worker)"));
    cell(tr, worker.partitions.join(", ") || "-");
    cell(tr, worker.standby.join(", ") || "-", "standby");
    return tr;
  }});
}}
function agentRows(stats, now) {{
  return Object.keys(stats.agents).sort().map((name) => {{
    const agent = stats.agents[name];
    const tr = document.createElement("tr");
    tr.dataset.agent = name;
    cell(tr, name);
    cell(tr, agent.events_in, "events");
    let rate = "-";
    if (previous && previous.agents[name] !== undefined && now > previous.at) {{
      const per = (agent.events_in - previous.agents[name]) * 1000 / (now - previous.at);
      rate = per.toFixed(1);
    }}
    cell(tr, rate, "rate");
    cell(tr, agent.errors, "errors");
    cell(tr, agent.dead_lettered, "dead");
    return tr;
  }});
}}
function tableRows(stats) {{
  const limit = stats.key_count_limit;
  return Object.keys(stats.tables).sort().map((name) => {{
    const table = stats.tables[name];
    const tr = document.createElement("tr");
    tr.dataset.table = name;
    cell(tr, name);
    cell(tr, table.partitions.join(", ") || "-", "partitions");
    cell(tr, table.keys > limit ? "> " + limit : table.keys, "keys");
    cell(tr, table.recovered_records, "recovered");
    const bars = cell(tr, "", "recovery");
    const numbers = Object.keys(table.recovery);
    if (!numbers.length) bars.textContent = "-";
    for (const number of numbers) {{
      const [done, total] = table.recovery[number];
      const span = document.createElement("span");
      span.className = "bar";
      span.dataset.partition = number;
      const bar = document.createElement("progress");
      bar.max = total === 0 ? 1 : total;
      bar.value = total === 0 ? 1 : done;
      span.appendChild(bar);
      span.appendChild(document.createTextNode(" " + number + ": " + done + "/" + total));
      bars.appendChild(span);
    }}
    return tr;
  }});
}}
function lagRows(stats) {{
  if (!stats.lag) return [];
  return stats.lag.partitions.map((p) => {{
    const tr = document.createElement("tr");
    for (const value of [p.topic, p.partition, p.end_offset, p.processed_offset, p.lag]) {{
      cell(tr, value);
    }}
    return tr;
  }});
}}
async function refresh() {{
  try {{
    const answer = await fetch("/stats", {{cache: "no-store"}});
    if (!answer.ok) throw new Error(String(answer.status));
    const stats = await answer.json();
    const now = Date.now();
    setText("records-fetched", stats.records_fetched);
    setText("commits", stats.commits);
    setText("rebalances", stats.rebalances);
    setText("lag", stats.lag ? stats.lag.total : "-");
    setText("assignment", stats.assignment.join(", ") || "-");
    fill("workers", workerRows(stats), "{no_workers}", 3);
    fill("agents", agentRows(stats, now), "no agents", 5);
    fill("tables", tableRows(stats), "no tables", 5);
    fill("lag-partitions", lagRows(stats), "not measured", 5);
    const counts = {{}};
    for (const name of Object.keys(stats.agents)) counts[name] = stats.agents[name].events_in;
    previous = {{at: now, agents: counts}};
    setState(stats.state);
    setText("updated", new Date().toLocaleTimeString());
  }} catch (error) {{
    setState("unreachable");
  }}
}}
setInterval(refresh, {refresh_ms});
</script>
</body>
</html>
"""
