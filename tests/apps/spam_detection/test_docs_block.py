"""docs/apps-spam.md's "run it" commands, run as written in a directory holding apps/.

Changed only as a test must: a free web port instead of 6066 and 20 s of traffic instead
of 60. The worker the block starts must then serve, on that port, the spammers the
generator wrote to its ground truth (precision >= 0.95, recall >= 0.9).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.docs.pages import page_blocks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_block() -> str:
    blocks = [b for b in page_blocks("docs/apps-spam.md") if "--truth spam-truth.json" in b.code]
    assert len(blocks) == 1, "docs/apps-spam.md: the run block moved or was split"
    return blocks[0].code


@pytest.mark.timeout(180)
def test_the_run_commands_flag_the_generated_spammers(tmp_path):
    port = free_port()
    code = run_block().replace("--web-port 6066", f"--web-port {port}")
    code = code.replace("--duration 60", "--duration 20")
    assert str(port) in code and "--duration 20" in code
    (tmp_path / "apps").symlink_to(os.path.join(ROOT, "apps"))
    url = f"http://127.0.0.1:{port}/spam/flagged.json"
    # the block leaves the worker running (as a reader's terminal would): the script
    # waits for its answer on the page, then stops it
    check = (
        f"{sys.executable} -c 'import json,sys,time,urllib.request\n"
        'truth=set(json.load(open("spam-truth.json"))["spammers"])\n'
        "for _ in range(240):\n"
        "    try:\n"
        f'        got=json.load(urllib.request.urlopen("{url}",timeout=5))["flagged"]\n'
        "    except OSError:\n"
        "        got=[]\n"
        '    if len(truth & {f["user_id"] for f in got}) >= 0.9*len(truth): break\n'
        "    time.sleep(0.25)\n"
        'print("FLAGGED", json.dumps(sorted(f["user_id"] for f in got)))\'\n'
    )
    script = f"trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\nset -e\n{code}{check}"
    env = {
        **os.environ,
        "PYTHONPATH": ROOT,
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
    }
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=170
    )
    assert done.returncode == 0, done.stdout + done.stderr
    truth = set(json.loads((tmp_path / "spam-truth.json").read_text())["spammers"])
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("FLAGGED ")]
    assert line, done.stdout + done.stderr
    flagged = set(json.loads(line[-1].split(" ", 1)[1]))
    assert len(truth) >= 6
    assert len(flagged & truth) >= 0.9 * len(truth), (flagged, truth)
    assert len(flagged & truth) >= 0.95 * len(flagged), (flagged, truth)
    # the block's worker used the bundled log in this directory, as the docs say
    assert (tmp_path / ".streamlog").is_dir()
