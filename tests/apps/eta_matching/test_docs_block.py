"""docs/apps.md's "Several workers" commands, run as written against a test broker.

The page runner cannot (it has no broker at localhost:9092), so this test takes the block
from the page and changes only what a test must: the broker address, the web ports (free
ones) and the generator's duration. Two workers answer every request; the summary says so.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.apps.eta_matching.test_app_runs import ROOT
from tests.broker.brokerproc import BrokerProcess
from tests.docs.pages import page_blocks


def several_workers_block() -> str:
    blocks = [b for b in page_blocks("docs/apps.md") if "--data-dir w2" in b.code]
    assert len(blocks) == 1, "docs/apps.md: the several-workers block moved or was split"
    return blocks[0].code


@pytest.mark.timeout(180)
def test_the_several_workers_commands_answer_every_request(tmp_path):
    broker = BrokerProcess(
        str(tmp_path / "broker"), ["--group-initial-rebalance-delay-ms", "0"]
    ).start()
    code = several_workers_block()
    code = code.replace("localhost:9092", broker.bootstrap)
    code = re.sub(r"--web-port \d+", "--web-port 0", code)
    code = code.replace("--duration 60", "--duration 8")
    assert code.count(broker.bootstrap) == 4 and code.count(" &\n") == 2
    # the commands' paths are relative to a checkout: a directory holding apps/
    (tmp_path / "apps").symlink_to(os.path.join(ROOT, "apps"))
    script = f"trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\nset -e\n{code}"
    env = {
        **os.environ,
        "PYTHONPATH": ROOT,
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
    }
    try:
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
        )
    finally:
        assert broker.stop() == 0
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"requests: (\d+)  answered: (\d+)", done.stdout)
    assert found, done.stdout + done.stderr
    requests, answered = int(found[1]), int(found[2])
    assert requests > 10 and answered == requests, done.stdout
    # both workers ran with their own data directories, as the block says
    assert (tmp_path / "w1").is_dir() and (tmp_path / "w2").is_dir()
