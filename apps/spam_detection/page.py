"""The live page's HTML: plain HTML and JavaScript, nothing fetched from outside the
worker (the machine may have no route to the internet)."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>streamlog spam detection</title>
<style>
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-top:1em;min-width:40em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#eee} .score{font-weight:bold}
.reason{display:inline-block;background:#fde2e2;border-radius:.3em;padding:0 .4em;margin:0 .2em}
</style></head><body>
<h1>Flagged users</h1>
<p><label>Search user or reason: <input id="search" type="search" autofocus></label>
<span id="count"></span></p>
<table><thead><tr><th>user</th><th>score</th><th>reasons</th><th>flags</th>
<th>last flagged (UTC)</th></tr></thead><tbody id="rows"></tbody></table>
<script>
let rows = [];
function cell(tr, text, cls) {
  const td = document.createElement('td'); td.textContent = text;
  if (cls) td.className = cls; tr.appendChild(td); return td;
}
function render() {
  const q = document.getElementById('search').value.trim().toLowerCase();
  const shown = rows.filter(r => !q || r.user_id.toLowerCase().includes(q)
    || r.reasons.some(x => x.includes(q)));
  const body = document.getElementById('rows'); body.replaceChildren();
  for (const r of shown) {
    const tr = document.createElement('tr'); tr.dataset.user = r.user_id;
    cell(tr, r.user_id); cell(tr, r.score.toFixed(2), 'score');
    const reasons = cell(tr, '');
    for (const x of r.reasons) {
      const s = document.createElement('span'); s.className = 'reason';
      s.textContent = x; reasons.appendChild(s);
    }
    cell(tr, r.flags); cell(tr, new Date(r.last_ts * 1000).toISOString());
    body.appendChild(tr);
  }
  document.getElementById('count').textContent =
    shown.length + ' of ' + rows.length + ' flagged user(s)';
}
async function refresh() {
  try {
    const answer = await fetch('flagged.json');
    rows = (await answer.json()).flagged; render();
  } catch (e) { document.getElementById('count').textContent = 'offline: ' + e; }
}
document.getElementById('search').addEventListener('input', render);
refresh(); setInterval(refresh, 2000);
</script></body></html>
"""
