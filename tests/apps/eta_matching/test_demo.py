"""``bash scripts/demo.sh`` as a newcomer runs it (shortened by DEMO_SECONDS): exits 0 and
prints a summary whose numbers agree with each other and with what the generator sent."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.mark.timeout(180)
def test_demo_prints_a_consistent_summary_and_exits_0():
    env = {**os.environ, "DEMO_SECONDS": "6"}
    done = subprocess.run(
        ["bash", os.path.join(ROOT, "scripts", "demo.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=170,
        stdin=subprocess.DEVNULL,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    sent = json.loads(re.search(r"^generated: (.*)$", out, re.M).group(1))["sent"]
    requests, answered = map(
        int, re.search(r"^requests: (\d+)  answered: (\d+)", out, re.M).groups()
    )
    matched, unmatched = map(
        int, re.search(r"^matched: (\d+)  unmatched: (\d+)", out, re.M).groups()
    )
    assert requests == sent["ride_requests"] > 0
    assert answered == requests == matched + unmatched
    eta = re.search(r"^median pickup ETA: ([0-9.]+) s", out, re.M)
    # within 5 km at 3..150 km/h
    assert matched == 0 or (eta and 0 <= float(eta.group(1)) <= 5 / 3 * 3600)
    surges = [float(v) for v in re.findall(r"^  [0-9a-f]{15}  ([0-9.]+)$", out, re.M)]
    assert surges and all(1.0 <= s <= 3.0 for s in surges)
    assert re.search(r"^live page: http://127\.0\.0\.1:\d+/", out, re.M)
