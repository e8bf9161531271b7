"""docs/cli.md, run top to bottom in a fresh directory against the `streamlog broker`
its first block starts: every command prints what the page shows
(``tests.docs.runner``)."""

from __future__ import annotations

import pytest

from tests.docs.pages import page_blocks, run_page


def test_the_page_marks_what_it_does_not_run():
    skipped = [b for b in page_blocks("docs/cli.md") if b.not_run is not None]
    assert [b.section for b in skipped] == [
        "Which log: `--broker URL`",
        "Producing: `streamlog produce TOPIC`",
        "Consumer groups: offsets and lag",
    ]


@pytest.mark.timeout(240)
def test_cli_page_runs_top_to_bottom(tmp_path):
    ran = run_page("docs/cli.md", tmp_path)
    runnable = [b for b in page_blocks("docs/cli.md") if b.not_run is None]
    assert [b.line for b in ran] == [b.line for b in runnable]
    assert sum(len(b.commands) for b in ran) == 26
    assert (tmp_path / "data" / "orders-copy-0").is_dir()
