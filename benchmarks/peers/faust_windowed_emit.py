"""faust-streaming, windowed-emit pipeline: a 10 s tumbling count, every update sent.

The issue-11 pipeline: the input has 10,000 keys (the harness's data), and every update's
``counts[user].current()`` goes to the output keyed by the user, ``{"user", "start",
"count"}``. That is what ``faust_windowed.py`` does already, so this program is it under
the pipeline's name. Run by ``benchmarks/bench_streams.py`` with ``.venv-peers/bin/python``.
"""

from __future__ import annotations

from faust_windowed import main

if __name__ == "__main__":
    main()
