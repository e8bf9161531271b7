"""docs/connect.md, run top to bottom in a fresh directory: the page's own connectors in
``streamlog connect``, stopped and started again, resuming after the source's checkpoint
(``tests.docs.runner``)."""

from __future__ import annotations

import json

import pytest

from tests.docs.pages import page_blocks, run_page


@pytest.mark.timeout(180)
def test_connect_page_runs_top_to_bottom(tmp_path):
    ran = run_page("docs/connect.md", tmp_path)
    runnable = [b for b in page_blocks("docs/connect.md") if b.not_run is None]
    assert [b.line for b in ran] == [b.line for b in runnable]
    assert sum(len(b.commands) for b in ran) == 2
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert latest == {
        "alice": {"customer": "alice", "item": "lamp"},
        "bob": {"customer": "bob", "item": "ink"},
    }
