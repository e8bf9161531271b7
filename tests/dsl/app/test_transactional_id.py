"""A worker's transactional id under exactly-once: the same after a restart on the same
data directory (so its predecessor's open transaction is aborted at once), never the
same for two live workers (they would fence each other)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streamlog.dsl.app.transactional_id import claim_transactional_id
from streamlog.dsl.errors import TransactionalIdsInUseError


def test_a_released_slot_gives_the_same_id_again_and_a_held_one_another(tmp_path):
    first = claim_transactional_id("app", str(tmp_path))
    second = claim_transactional_id("app", str(tmp_path))
    assert first.transactional_id.startswith("app-")
    assert len(first.transactional_id) == len("app-") + 32
    assert second.transactional_id != first.transactional_id
    held = first.transactional_id
    first.release()
    first.release()  # twice: no error
    again = claim_transactional_id("app", str(tmp_path))
    assert again.transactional_id == held  # the lowest free slot: the first one
    again.release()
    second.release()
    # another data directory with the same app id: another id
    other = claim_transactional_id("app", str(tmp_path / "elsewhere"))
    assert other.transactional_id != held
    other.release()


def test_a_killed_process_leaves_its_slot_to_the_next_start(tmp_path):
    script = (
        "import sys, time\n"
        "from streamlog.dsl.app.transactional_id import claim_transactional_id\n"
        "claim = claim_transactional_id('app', sys.argv[1])\n"
        "print(claim.transactional_id, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )
    try:
        assert child.stdout is not None
        child_id = child.stdout.readline().strip()
        assert child_id.startswith("app-")
        while_alive = claim_transactional_id("app", str(tmp_path))
        assert while_alive.transactional_id != child_id
        while_alive.release()
        child.kill()
        child.wait(10)
        after = claim_transactional_id("app", str(tmp_path))
        assert after.transactional_id == child_id
        after.release()
    finally:
        child.kill()
        child.wait(10)


def test_a_corrupt_slot_file_gets_a_new_id_and_a_full_directory_is_a_clear_error(
    tmp_path, monkeypatch
):
    directory = tmp_path / "transactional-ids"
    directory.mkdir()
    (directory / "slot-0").write_text("not hex\n")
    claim = claim_transactional_id("app", str(tmp_path))
    suffix = claim.transactional_id.removeprefix("app-")
    assert len(suffix) == 32 and suffix != "not hex"
    assert (directory / "slot-0").read_text().strip() == suffix
    monkeypatch.setattr("streamlog.dsl.app.transactional_id._MAX_SLOTS", 1)
    with pytest.raises(TransactionalIdsInUseError, match="all 1 transactional id slots"):
        claim_transactional_id("app", str(tmp_path))
    claim.release()
