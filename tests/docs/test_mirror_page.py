"""docs/mirror.md, run top to bottom in a fresh directory against the `streamlog broker`
its first block starts: the mirror copies a topic out of a bundled log and the group
resumes on the broker (``tests.docs.runner``)."""

from __future__ import annotations

import pytest

from tests.docs.pages import page_blocks, run_page


@pytest.mark.timeout(120)
def test_mirror_page_runs_top_to_bottom(tmp_path):
    ran = run_page("docs/mirror.md", tmp_path)
    runnable = [b for b in page_blocks("docs/mirror.md") if b.not_run is None]
    assert [b.line for b in ran] == [b.line for b in runnable]
    assert sum(len(b.commands) for b in ran) == 6 + 15  # mirror, then migrate
    assert (tmp_path / "local" / "orders-0").is_dir()
    # the app migrated to the broker and back keeps its store in the new log's directory
    assert (tmp_path / "back" / "state" / "visits" / "tables" / "views" / "0").is_dir()
