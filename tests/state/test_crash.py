"""SIGKILL a worker mid-stream: the store reopens consistent with its own offset, and
recovery brings it to at least everything whose source offset was committed."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamlog.state.recovery import recover_partition
from streamlog.state.rocksdb_store import RocksDBStorePartition

from .conftest import run, started_transport
from .crashchild import CHANGELOG, GROUP, SOURCE, model, records_through

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 60.0


def run_child_until_killed(broker_dir: Path, state_dir: Path, kill_after: int) -> int:
    """Start the child, SIGKILL it once it printed commit ``kill_after``; the last commit
    number it printed."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.state.crashchild", str(broker_dir), str(state_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    fd = child.stdout.fileno()
    buffered = b""
    last = -1
    deadline = time.monotonic() + WAIT_S
    try:
        while last < kill_after:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"the child printed only up to commit {last}"
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                errors = child.stderr.read() if child.stderr is not None else b""
                raise AssertionError(f"the child exited with {child.wait(5)}: {errors!r}")
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            if lines:
                last = int(lines[-1])
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    return last


@pytest.mark.parametrize("kill_after", [3, 40])
def test_sigkill_loses_nothing_committed(tmp_path: Path, kill_after: int) -> None:
    broker_dir, state_dir = tmp_path / "log", tmp_path / "state"
    printed = run_child_until_killed(broker_dir, state_dir, kill_after)

    # the store alone: contents and offset agree (one atomic write per commit)
    store = RocksDBStorePartition(str(state_dir / "0"))
    assert store.wipe_reason is None
    counter = store.get(b"counter")
    assert counter is not None
    flushed = int(counter)
    assert list(store.items()) == model(flushed)
    assert store.changelog_offset() == records_through(flushed) - 1

    async def recover() -> int | None:
        async with started_transport(f"file://{broker_dir}") as transport:
            group = transport.consumer(group_id=GROUP)
            committed = await group.committed(SOURCE)
            await recover_partition(transport.consumer(), store, CHANGELOG)
            return committed

    committed = run(recover())
    assert committed is not None
    last_committed = committed - 1  # commit k commits source offset k + 1
    assert last_committed >= printed
    # stores are flushed before offsets are committed, and a commit starts only after
    # the previous one's offsets are committed
    assert flushed in (last_committed, last_committed + 1)

    # after recovery: everything committed, plus at most the commit in flight
    counter = store.get(b"counter")
    assert counter is not None
    recovered = int(counter)
    assert recovered in (last_committed, last_committed + 1)
    assert recovered >= flushed
    assert list(store.items()) == model(recovered)
    assert store.changelog_offset() == records_through(recovered) - 1
    store.close()
