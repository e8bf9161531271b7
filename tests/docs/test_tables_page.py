"""docs/tables.md, run top to bottom in a fresh directory: the shop app loads, the
library app of "Global tables and set tables" runs as a worker and its tables print what
the page shows (``tests.docs.runner``); the windowed snippets are fragments, marked."""

from __future__ import annotations

import pytest

from tests.docs.pages import page_blocks, run_page


def test_the_page_marks_what_it_does_not_run():
    skipped = [b for b in page_blocks("docs/tables.md") if b.not_run is not None]
    assert len(skipped) == 5
    assert all(b.not_run.startswith("a fragment") for b in skipped)  # type: ignore[union-attr]


@pytest.mark.timeout(240)
def test_tables_page_runs_top_to_bottom(tmp_path):
    ran = run_page("docs/tables.md", tmp_path)
    runnable = [b for b in page_blocks("docs/tables.md") if b.not_run is None]
    assert [b.line for b in ran] == [b.line for b in runnable]
    assert [b.file for b in ran if b.file] == ["library.py"]
    assert sum(len(b.commands) for b in ran) == 11
