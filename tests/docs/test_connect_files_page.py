"""docs/connect-files.md, run top to bottom in a fresh directory: a worker follows a file
into a topic and archives it as CSV; the file source reads a file with a bad line, the
file sink rotates and skips a redelivered record (``tests.docs.runner``)."""

from __future__ import annotations

import pytest

import streamlog
from tests.docs.pages import page_blocks, run_page


@pytest.mark.skipif(
    not hasattr(streamlog.App, "source"),
    reason="the page's worker needs app.source/app.sink (the connect runner, issue 18's core)",
)
@pytest.mark.timeout(120)
def test_connect_files_page_runs_top_to_bottom(tmp_path):
    ran = run_page("docs/connect-files.md", tmp_path)
    runnable = [b for b in page_blocks("docs/connect-files.md") if b.not_run is None]
    assert [b.line for b in ran] == [b.line for b in runnable]
    assert len(ran) == 7  # app.py; the input file; the worker, its output, its stop; 2 programs
    assert (tmp_path / "export" / "orders.000001.csv").read_text().startswith("id,amount\n")
