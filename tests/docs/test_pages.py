"""The docs pages without a test module of their own, each run top to bottom in a fresh
directory as its own test (``tests.docs.runner``): every block not marked
``<!-- not run: REASON -->`` runs and prints what the page shows. README.md, cli.md,
tables.md, models.md, worker.md and mirror.md have their own modules (test_readme.py, ...).
docs/architecture.md has no code blocks."""

from __future__ import annotations

import glob
import os

import pytest

from tests.docs.pages import ROOT, page_blocks, run_page

PAGES = [
    "docs/streams.md",
    "docs/state.md",
    "docs/joins.md",
    "docs/topology.md",
    "docs/web.md",
    "docs/broker.md",
    "docs/broker-auth.md",
    "docs/deploy.md",
    "docs/client.md",
    "docs/from-faust.md",
    "docs/apps.md",
    "docs/apps-spam.md",
]
OWN_MODULE = [
    "docs/cli.md",
    "docs/tables.md",
    "docs/models.md",
    "docs/worker.md",
    "docs/mirror.md",
    "docs/connect.md",  # test_connect_page.py
    "docs/connect-http.md",  # test_connect_http_page.py
    "docs/connect-databases.md",  # test_connect_databases_page.py
    "docs/connect-files.md",  # test_connect_files_page.py
]


def test_every_page_with_blocks_is_covered():
    pages = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs/*.md")))
    with_blocks = [p for p in pages if page_blocks(p)]
    assert sorted(PAGES + OWN_MODULE) == with_blocks


@pytest.mark.parametrize("page", PAGES)
def test_a_block_not_run_says_why(page):
    for block in page_blocks(page):
        assert block.not_run is None or len(block.not_run) > 15, block.where


@pytest.mark.timeout(120)
@pytest.mark.parametrize("page", PAGES)
def test_page_runs_top_to_bottom(page, tmp_path):
    ran = run_page(page, tmp_path)
    runnable = [b for b in page_blocks(page) if b.not_run is None]
    assert [b.line for b in ran] == [b.line for b in runnable]
