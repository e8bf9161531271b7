"""docs/connect-http.md, run top to bottom in a fresh directory: a worker takes orders as
webhooks (answers, a refusal), the topic holds them and the HTTP sink has handed them to
the app's own page (``tests.docs.runner``)."""

from __future__ import annotations

import json

import pytest

import streamlog
from tests.docs.pages import page_blocks, run_page

PAGE = "docs/connect-http.md"


def test_the_page_marks_what_it_does_not_run():
    skipped = [b for b in page_blocks(PAGE) if b.not_run is not None]
    assert [b.not_run for b in skipped] == ["the signature, with every setting's default"] * 2


@pytest.mark.skipif(
    not hasattr(streamlog.App, "source"),
    reason="needs app.source/app.sink (issue 18's connect runner, merged with it)",
)
@pytest.mark.timeout(120)
def test_connect_http_page_runs_top_to_bottom(tmp_path):
    ran = run_page(PAGE, tmp_path)
    runnable = [b for b in page_blocks(PAGE) if b.not_run is None]
    assert [b.line for b in ran] == [b.line for b in runnable]
    assert [b.file for b in ran if b.file] == ["hooks.py"]
    delivered = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert sorted(key for key, _ in delivered) == ["o-1", "o-2", "o-3"]
