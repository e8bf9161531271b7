"""docs/connect-files.md, run top to bottom in a fresh directory: the file source reads a
file with a bad line, the file sink rotates and skips a redelivered record
(``tests.docs.runner``)."""

from __future__ import annotations

import pytest

from tests.docs.pages import page_blocks, run_page


@pytest.mark.timeout(120)
def test_connect_files_page_runs_top_to_bottom(tmp_path):
    ran = run_page("docs/connect-files.md", tmp_path)
    runnable = [b for b in page_blocks("docs/connect-files.md") if b.not_run is None]
    assert [b.line for b in ran] == [b.line for b in runnable]
    assert len(ran) == 3  # app.py written; the two programs run
    assert (tmp_path / "archive" / "orders.000001.csv").read_text().startswith("id,amount\n")
