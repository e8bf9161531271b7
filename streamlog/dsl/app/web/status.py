"""What the built-in routes answer: health, the app's counters as JSON (``/stats``), and
the status page a person opens at ``/`` (``/metrics`` is ``metrics.py``'s).

The status page is one self-contained HTML document (no external scripts, styles or
fonts: a worker often runs where nothing else is reachable). It is rendered with the
counters of the moment and then keeps them current by reading ``/stats`` every
``REFRESH_SECONDS``; every value that comes from the app is HTML-escaped.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamlog.dsl.app.app import App
    from streamlog.dsl.app.lag import ConsumerLag
    from streamlog.dsl.app.web.directory import Directory

__all__ = ["state_of", "stats_body", "status_page", "REFRESH_SECONDS"]

REFRESH_SECONDS = 2


def state_of(app: App) -> str:
    """ "running", "starting" or "stopping": what ``/health`` and the page say."""
    if app.stopping:
        return "stopping"
    return "running" if app.started else "starting"


def stats_body(app: App, lag: ConsumerLag | None) -> bytes:
    """``/stats``: ``App.stats()``, the app's ``state`` and its consumer ``lag`` (null
    when it could not be measured: no consumer yet, or the broker did not answer) as
    indented JSON."""
    body = {**app.stats(), "state": state_of(app), "lag": lag.as_json() if lag else None}
    return json.dumps(body, indent=2).encode()


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def status_page(
    app: App,
    own_url: str | None,
    directory: Directory,
    paths: list[str],
    lag: ConsumerLag | None = None,
) -> str:
    """The HTML status page (module docstring); ``lag``: the records not processed yet."""
    stats = app.stats()
    state = state_of(app)
    agents = (
        "".join(
            f'<tr data-agent="{_e(name)}"><td>{_e(name)}</td>'
            f'<td class="errors">{_e(a["errors"])}</td>'
            f'<td class="dead">{_e(a["dead_lettered"])}</td></tr>'
            for name, a in sorted(stats["agents"].items())
        )
        or '<tr><td colspan="3">no agents</td></tr>'
    )
    tables = (
        "".join(
            f'<tr data-table="{_e(name)}"><td>{_e(name)}</td>'
            f'<td class="partitions">{_e(", ".join(map(str, t["partitions"])) or "-")}</td>'
            f'<td class="recovered">{_e(t["recovered_records"])}</td></tr>'
            for name, t in sorted(stats["tables"].items())
        )
        or '<tr><td colspan="3">no tables</td></tr>'
    )
    leader = app.leader_topic_name
    rows = []
    for worker in directory.workers:
        me = worker.url == own_url
        held = ", ".join(
            f"{tp.topic}[{tp.partition}]" for tp in sorted(worker.partitions) if tp.topic != leader
        )
        mark = ' class="me"' if me else ""
        note = " (this worker)" if me else ""
        rows.append(
            f'<tr{mark}><td><a href="{_e(worker.url)}/">{_e(worker.url)}</a>{note}</td>'
            f"<td>{_e(held or '-')}</td></tr>"
        )
    workers = "".join(rows) or '<tr><td colspan="2">none has advertised a web server</td></tr>'
    pages = (
        "".join(
            f'<li><a href="{_e(p)}">{_e(p)}</a></li>' if "{" not in p else f"<li>{_e(p)}</li>"
            for p in paths
        )
        or "<li>none</li>"
    )
    assignment = ", ".join(stats["assignment"]) or "-"
    return _PAGE.format(
        app=_e(app.conf.id),
        state=_e(state),
        url=_e(own_url or "-"),
        broker=_e(app.conf.broker),
        records=_e(stats["records_fetched"]),
        commits=_e(stats["commits"]),
        lag=_e(lag.total if lag is not None else "-"),
        assignment=_e(assignment),
        agents=agents,
        tables=tables,
        workers=workers,
        pages=pages,
        refresh_ms=REFRESH_SECONDS * 1000,
    )


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{app} · streamlog worker</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem;
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
th, td {{ text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #eceef3; }}
th {{ color: #5b6478; font-weight: 600; }}
tr.me td {{ font-weight: 600; }}
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
<dt>records behind</dt><dd id="lag">{lag}</dd>
<dt>partitions held</dt><dd id="assignment">{assignment}</dd>
</dl>

<h2>Agents</h2>
<table id="agents"><thead><tr><th>agent</th><th>errors</th><th>dead-lettered</th></tr></thead>
<tbody>{agents}</tbody></table>

<h2>Tables</h2>
<table id="tables"><thead><tr><th>table</th><th>partitions here</th>
<th>records recovered</th></tr></thead><tbody>{tables}</tbody></table>

<h2>Workers of the app</h2>
<table id="workers"><thead><tr><th>worker</th><th>partitions</th></tr></thead>
<tbody>{workers}</tbody></table>

<h2>Pages</h2>
<ul id="pages">{pages}</ul>

<footer>
<a href="/stats">/stats</a> · <a href="/metrics">/metrics</a> · <a href="/health">/health</a>
· <a href="/router/">/router/</a> · updated <span id="updated">at load</span>
</footer>
<script>
"use strict";
function setText(id, value) {{ document.getElementById(id).textContent = String(value); }}
function setState(name) {{
  const badge = document.getElementById("state");
  badge.textContent = name;
  badge.className = "state " + name;
}}
async function refresh() {{
  try {{
    const answer = await fetch("/stats", {{cache: "no-store"}});
    if (!answer.ok) throw new Error(String(answer.status));
    const stats = await answer.json();
    setText("records-fetched", stats.records_fetched);
    setText("commits", stats.commits);
    setText("lag", stats.lag ? stats.lag.total : "-");
    setText("assignment", stats.assignment.join(", ") || "-");
    for (const row of document.querySelectorAll("#agents tr[data-agent]")) {{
      const agent = stats.agents[row.dataset.agent];
      if (agent) {{
        row.querySelector(".errors").textContent = String(agent.errors);
        row.querySelector(".dead").textContent = String(agent.dead_lettered);
      }}
    }}
    for (const row of document.querySelectorAll("#tables tr[data-table]")) {{
      const table = stats.tables[row.dataset.table];
      if (table) {{
        row.querySelector(".partitions").textContent = table.partitions.join(", ") || "-";
        row.querySelector(".recovered").textContent = String(table.recovered_records);
      }}
    }}
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
