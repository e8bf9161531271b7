"""docs/connect-databases.md, run top to bottom in a fresh directory: the SQLite sink
example writes the table the page shows (``tests.docs.runner``). Its PostgreSQL blocks
are illustrations (tests/connect/test_postgres_*.py run the same against a server)."""

from __future__ import annotations

import sqlite3

import pytest

from tests.docs.pages import page_blocks, run_page

PAGE = "docs/connect-databases.md"


def test_a_block_not_run_says_why():
    for block in page_blocks(PAGE):
        assert block.not_run is None or len(block.not_run) > 15, block.where


@pytest.mark.timeout(120)
def test_connect_databases_page_runs_top_to_bottom(tmp_path):
    ran = run_page(PAGE, tmp_path)
    runnable = [b for b in page_blocks(PAGE) if b.not_run is None]
    assert [b.line for b in ran] == [b.line for b in runnable]
    assert any(b.lang == "python" and b.file is None for b in ran)  # the sink example ran
    with sqlite3.connect(tmp_path / "shop.db") as db:
        assert db.execute("SELECT * FROM orders ORDER BY key").fetchall() == [
            ("o-1", 2, "pen"),
            ("o-3", 9, None),
        ]
