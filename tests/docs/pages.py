"""Reading a page of this checkout and running it with ``PageRunner``. No tests here."""

from __future__ import annotations

import os

from tests.docs.blocks import Block, extract
from tests.docs.runner import PageRunner

__all__ = ["ROOT", "page_blocks", "run_page"]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def page_blocks(page: str) -> list[Block]:
    """The runnable blocks of ``page`` (a path relative to the checkout)."""
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        return extract(f.read())


def run_page(page: str, workdir: str | os.PathLike[str]) -> list[Block]:
    """Run ``page``'s blocks in order in ``workdir``; every process started is stopped.
    Returns the blocks that ran."""
    runner = PageRunner(str(workdir))
    try:
        for block in page_blocks(page):
            runner.run(block)
    finally:
        runner.stop_background()
    return runner.ran
