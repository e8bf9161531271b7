"""Quix Streams, windowed-emit pipeline: ``tumbling_window(...).count().current()``.

The issue-11 pipeline: the input has 10,000 keys (the harness's data), and every update's
current count goes to the output keyed by the message key, ``{"user", "start",
"count"}``. That is what ``quix_windowed.py`` does already, so this program is it under
the pipeline's name. Run by ``benchmarks/bench_streams.py`` with ``.venv-peers/bin/python``.
"""

from __future__ import annotations

from quix_windowed import main

if __name__ == "__main__":
    main()
