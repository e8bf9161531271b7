"""README.md, followed top to bottom in a fresh clone of this checkout: every block runs,
in order, and prints what the README shows (``tests.docs.runner``); the blocks marked
``<!-- not run: ... -->`` are the only ones skipped, each with its reason."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.docs.blocks import extract
from tests.docs.runner import PageRunner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README = os.path.join(ROOT, "README.md")


def readme_blocks():
    with open(README, encoding="utf-8") as f:
        return extract(f.read())


def test_the_readme_marks_what_it_does_not_run():
    skipped = {b.section: b.not_run for b in readme_blocks() if b.not_run is not None}
    assert set(skipped) == {"Try it, test it", "Benchmarks"}
    assert all(len(reason) > 20 for reason in skipped.values())


@pytest.mark.timeout(240)
def test_the_readme_runs_top_to_bottom(tmp_path):
    # a fresh clone (committed files only, nothing a previous run left in the checkout);
    # the README read is this checkout's, so an edit is tested before it is committed
    if shutil.which("git") is None or not os.path.exists(os.path.join(ROOT, ".git")):
        pytest.skip("needs git and a git checkout to clone")
    clone = tmp_path / "streamlog"
    subprocess.run(["git", "clone", "-q", "--shared", ROOT, str(clone)], check=True, timeout=60)
    assert not (clone / ".streamlog").exists()
    tmp_path = clone
    runner = PageRunner(str(tmp_path))
    blocks = readme_blocks()
    try:
        for block in blocks:
            runner.run(block)
    finally:
        runner.stop_background()
    ran = [b for b in runner.ran if b.file is None]
    # the word count's worker and its commands, the broker, the tools, the log engine
    assert len(ran) == 6, [b.where for b in ran]
    assert sum(b.expect is not None for b in ran) == 4
    assert os.path.exists(tmp_path / "wordcount.py")
    assert os.path.isdir(tmp_path / "log-demo" / "rides-0")
