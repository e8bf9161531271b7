"""``streamlog topology`` on each sample app prints every topic, table and agent edge the
app has, and exactly the block its docs page shows (docs/apps.md, docs/apps-spam.md), so
the pages cannot drift from the code. After changing an app's topology, paste the
command's new output into its page and update the edges below."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.docs.pages import ROOT, page_blocks

STREAMLOG = os.path.join(os.path.dirname(sys.executable), "streamlog")

ETA_EDGES = {
    ("forward_completion", "<-", "trips_completed", "reads"),
    ("forward_completion", "->", "eta-matching-eta-driver-events", "to"),
    ("forward_location", "<-", "driver_locations", "reads"),
    ("forward_location", "->", "eta-matching-eta-driver-events", "to"),
    ("route_request", "<-", "ride_requests", "reads"),
    ("route_request", "->", "eta-matching-eta-region-events", "to"),
    ("route_drivers", "<-", "eta-matching-eta-driver-events", "reads"),
    ("route_drivers", "->", "eta-matching-eta-region-events", "uses"),
    ("route_drivers", "->", "eta-driver-owners", "uses"),  # through the router
    ("match_in_region", "<-", "eta-matching-eta-region-events", "reads"),
    ("match_in_region", "->", "matches", "uses"),
    # a driver handed to the region it moved into
    ("match_in_region", "->", "eta-matching-eta-region-events", "uses"),
    # through the dispatcher and its fleets
    ("match_in_region", "->", "eta-fleet-drivers", "uses"),
    ("match_in_region", "->", "eta-fleet-cells", "uses"),
    ("match_in_region", "->", "eta-fleet-regions", "uses"),
    ("match_in_region", "->", "eta-fleet-waiting", "uses"),
    ("match_in_region", "->", "eta-answers", "uses"),
}

SPAM_EDGES = {
    ("register", "<-", "users", "reads"),
    ("register", "->", "accounts", "uses"),
    ("register", "->", "waiting-links", "uses"),
    ("register", "->", "spam-domain-links", "uses"),  # in the helper link_domain
    ("watch_pins", "<-", "pin_events", "reads"),
    ("watch_pins", "->", "spam-reports", "uses"),
    ("watch_pins", "->", "accounts", "uses"),
    ("watch_pins", "->", "waiting-links", "uses"),
    ("watch_pins", "->", "burst-creates", "uses"),
    ("watch_pins", "->", "burst-episodes", "uses"),
    ("watch_pins", "->", "duplicate-texts", "uses"),
    ("watch_pins", "->", "duplicate-episodes", "uses"),
    ("watch_pins", "->", "spam_flags", "uses"),  # in the helper send_flag
    ("watch_pins", "->", "spam-domain-links", "uses"),  # in the helper link_domain
    ("watch_domains", "<-", "spam-domain-links", "reads"),
    ("watch_domains", "->", "ring-linkers", "uses"),
    ("watch_domains", "->", "ring-episodes", "uses"),
    ("watch_domains", "->", "spam_flags", "uses"),  # send_flag
    ("watch_reports", "<-", "spam-reports", "reads"),
    ("watch_reports", "->", "report-reporters", "uses"),
    ("watch_reports", "->", "report-episodes", "uses"),
    ("watch_reports", "->", "spam_flags", "uses"),  # send_flag
    ("keep_flagged", "<-", "spam_flags", "reads"),
    ("keep_flagged", "->", "flagged", "uses"),
}


def documented(page: str, command: str) -> str:
    """The output ``page`` shows under ``$ command`` (one such command on the page)."""
    shown = [c.output for b in page_blocks(page) for c in b.commands if c.text == command]
    assert len(shown) == 1, f"{page} should show '$ {command}' once, not {len(shown)} times"
    return shown[0]


def run_topology(app: str, tmp_path) -> str:
    """``streamlog topology APP`` from the checkout's root with the apps' default settings
    (a temporary log in case anything opened one: nothing should)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ETA_", "SPAM_")) and k != "STREAMLOG_BROKER"
    }
    env["STREAMLOG_BROKER"] = env["ETA_BROKER"] = f"file://{tmp_path}/log"
    done = subprocess.run(
        [STREAMLOG, "topology", app],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert not os.path.exists(tmp_path / "log")
    return done.stdout


def edges(text: str) -> set[tuple[str, str, str, str]]:
    """(agent's or node's short name, direction, topic or table, label) for each of its
    edges."""
    found: set[tuple[str, str, str, str]] = set()
    agent = None
    for line in text.splitlines():
        if line.startswith(("agent ", "map ", "filter ", "aggregate ", "join ")):
            agent = line.split()[1].rsplit(".", 1)[-1]
        elif not line.startswith("  "):
            agent = None
        elif agent is not None:
            arrow, _kind, name, *label = line.split()
            found.add((agent, arrow, name, label[0].strip("[]") if label else "reads"))
    return found


@pytest.mark.parametrize(
    ("page", "app", "expected", "sources", "sinks"),
    [
        (
            "docs/apps.md",
            "apps/eta_matching/app.py",
            ETA_EDGES,
            "driver_locations, ride_requests, trips_completed",
            "matches",
        ),
        ("docs/apps-spam.md", "apps/spam_detection/app.py", SPAM_EDGES, "pin_events, users", "-"),
    ],
    ids=["eta_matching", "spam_detection"],
)
def test_topology_of_each_app_is_what_its_page_shows(page, app, expected, sources, sinks, tmp_path):
    text = run_topology(app, tmp_path)
    assert edges(text) == expected
    lines = text.splitlines()
    assert lines[1:3] == [f"Sources: {sources}", f"Sinks: {sinks}"]
    assert "Notes:" not in text  # every agent's probe reached its first read
    assert documented(page, f"streamlog topology {app}") == text, (
        f"{page} shows an old topology: paste the output of 'streamlog topology {app}'"
    )
