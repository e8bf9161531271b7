"""``streamlog mirror`` as a user runs it: logins on either side (the usual ``--sasl-*``
options are the target's, ``--from-sasl-*`` the source's) against a real ``streamlog
broker`` that requires SASL, option errors, and the progress display."""

from __future__ import annotations

import io

import pytest

from streamlog.mirror import MirrorProgress
from streamlog.mirror.progress import ProgressDisplay
from streamlog.transport.types import TopicPartition
from tests.broker.brokerproc import BrokerProcess
from tests.broker.secure_brokers import USERS, sasl_broker
from tests.cli.test_tools_harness import streamlog
from tests.tlscerts import HAVE_OPENSSL

__all__ = ["sasl_broker"]  # the fixture, re-exported for pytest

pytestmark = pytest.mark.timeout(120)


def _ok(out):  # type: ignore[no-untyped-def]
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout.splitlines()


@pytest.mark.skipif(not HAVE_OPENSSL, reason="openssl is not installed")
def test_mirror_logs_in_to_the_target_and_to_the_source(sasl_broker: BrokerProcess, tmp_path):
    local = f"file://{tmp_path / 'local'}"
    back = f"file://{tmp_path / 'back'}"
    remote = f"kafka://{sasl_broker.bootstrap}"
    _ok(streamlog("topics", "create", "logins", "--partitions", "2", broker=local))
    _ok(streamlog("produce", "logins", "-k", ":", broker=local, input="a:1\nb:2\nc:3\nd:4\n"))
    target_login = ["--sasl-mechanism", "SCRAM-SHA-256", "--sasl-username", "alice"]
    target_login += ["--sasl-password", USERS["alice"]]

    lines = _ok(streamlog("mirror", "--from", local, "--to", remote, "--once", *target_login))
    assert lines[0].startswith(f"mirrored 4 records (0.00 MB) from {local} to {remote} in ")

    # the source's login is apart: the --sasl-* options do not reach it
    refused = streamlog("mirror", "--from", remote, "--to", back, "--once", *target_login)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("Error: ") and refused.stderr.count("\n") == 1
    source_login = ["--from-sasl-mechanism", "PLAIN", "--from-sasl-username", "bob"]
    out = streamlog(
        "mirror", "--from", remote, "--to", back, "--once", *source_login,
        env={"STREAMLOG_FROM_SASL_PASSWORD": USERS["bob"]},
    )  # fmt: skip
    assert _ok(out)[0].startswith(f"mirrored 4 records (0.00 MB) from {remote} to {back} in ")
    copied = _ok(streamlog("consume", "logins", "--from-beginning", "--timeout-ms", "500",
                           "-k", ":", broker=back))  # fmt: skip
    assert sorted(copied) == ["a:1", "b:2", "c:3", "d:4"]


def test_options_are_checked_before_anything_is_opened(tmp_path):
    missing = f"file://{tmp_path / 'nothing-here'}"
    out = streamlog("mirror", "--from", missing, "--to", "memory://", "--topics", "(")
    assert out.returncode == 2 and "--topics" in out.stderr and "regular expression" in out.stderr
    out = streamlog("mirror", "--from", missing, "--to", "memory://", "--once")
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"Error: {missing}: directory {tmp_path / 'nothing-here'} does not exist (tools create "
        "a data directory only when told to create something: topics create, --create)"
    )
    assert not (tmp_path / "nothing-here").exists()


def _progress(records: int, elapsed: float, lags: dict[TopicPartition, int]) -> MirrorProgress:
    return MirrorProgress(records=records, bytes=records * 100, elapsed_s=elapsed, lags=lags)


def test_the_terminal_block_is_redrawn_in_place_with_the_partitions_most_behind():
    screen = io.StringIO()
    show = ProgressDisplay(screen, interactive=True)
    lags = {TopicPartition("t", p): lag for p, lag in enumerate([5, 0, 900, 30])}
    show(_progress(10_000, 2.0, lags))
    first = screen.getvalue()
    assert first.splitlines() == [
        "10,000 records copied  5,000 records/s  0.50 MB/s  lag 935 in 4 partitions",
        "  t[2]  lag 900",
        "  t[3]  lag 30",
        "  t[0]  lag 5",
    ]
    show(_progress(16_000, 3.0, {tp: 0 for tp in lags}))
    redraw = screen.getvalue()[len(first) :]
    # cursor up over the 4 lines drawn, clear, then the new block (rates since the last)
    assert redraw == (
        "\x1b[4F\x1b[J16,000 records copied  6,000 records/s  0.60 MB/s  lag 0 in 4 partitions\n"
    )


def test_into_a_file_one_line_per_interval():
    now = [0.0]
    log = io.StringIO()
    show = ProgressDisplay(log, interactive=False, quiet_interval_s=10.0, clock=lambda: now[0])
    for second in range(25):
        now[0] = float(second)
        show(_progress(1000 * second, float(second), {TopicPartition("t", 0): 25 - second}))
    assert log.getvalue().splitlines() == [
        "mirror: 0 records copied  0 records/s  0.00 MB/s  lag 25 in 1 partition",
        "mirror: 10,000 records copied  1,000 records/s  0.10 MB/s  lag 15 in 1 partition",
        "mirror: 20,000 records copied  1,000 records/s  0.10 MB/s  lag 5 in 1 partition",
    ]
