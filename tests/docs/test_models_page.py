"""docs/models.md, run top to bottom in a fresh directory: ``models.py`` as the page
writes it, the codec of your own round-tripping a Ride, and the pickle codec's refusal of
a Record defined in ``__main__`` printed word for word (``tests.docs.runner``)."""

from __future__ import annotations

import pytest

from tests.docs.pages import page_blocks, run_page


def test_the_page_marks_what_it_does_not_run():
    skipped = [b for b in page_blocks("docs/models.md") if b.not_run is not None]
    assert [b.section for b in skipped] == ["Serializers on topics"]


@pytest.mark.timeout(120)
def test_models_page_runs_top_to_bottom(tmp_path):
    ran = run_page("docs/models.md", tmp_path)
    assert [b.file for b in ran if b.file] == ["models.py", "demo.py"]
    assert [b.lang for b in ran if not b.file] == ["python", "sh"]
    assert all(b.expect for b in ran if not b.file)
