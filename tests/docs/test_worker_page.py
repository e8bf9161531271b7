"""docs/worker.md, run top to bottom in a fresh directory: its wordcount.py as the page
writes it, the worker's log (the lines the page shows, in order), the listener example,
``send`` and ``agents`` (``tests.docs.runner``). The blocks not run say why."""

from __future__ import annotations

import pytest

from tests.docs.pages import page_blocks, run_page


def test_the_page_marks_what_it_does_not_run():
    skipped = [b for b in page_blocks("docs/worker.md") if b.not_run is not None]
    assert len(skipped) == 5
    assert all(len(b.not_run or "") > 20 for b in skipped)


@pytest.mark.timeout(240)
def test_worker_page_runs_top_to_bottom(tmp_path):
    ran = run_page("docs/worker.md", tmp_path)
    runnable = [b for b in page_blocks("docs/worker.md") if b.not_run is None]
    assert [b.line for b in ran] == [b.line for b in runnable]
    assert [b.file for b in ran if b.file] == ["wordcount.py", "shouter.py"]
