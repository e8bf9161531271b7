"""``streamlog produce`` and ``streamlog consume`` against a real broker and ``file://``."""

from __future__ import annotations

import io
import os
import pty
import select
import signal
import subprocess
import time

from streamlog.cli.console import Progress
from tests.cli import test_tools_harness as harness
from tests.cli.test_tools_harness import STREAMLOG, ok, streamlog
from tests.waiting import until_sync

# The harness's fixtures: one broker per module, each test over kafka:// and file://.
kafka_broker = harness.kafka_broker
broker_url = harness.broker_url
topic = harness.topic

LINES = ["k1:v1", "k2:v2:with:colons", "k3:", ":no key", "k1:again"]


def test_produce_with_key_separator_then_consume_from_beginning(
    broker_url: str, topic: str
) -> None:
    ok("topics", "create", topic, broker=broker_url)
    assert ok("produce", topic, "-k", ":", broker=broker_url, input="\n".join(LINES) + "\n") == []
    consumed = ok("consume", topic, "--from-beginning", "--max", "5", "-k", ":", broker=broker_url)
    assert consumed == LINES
    values = ok("consume", topic, "--from-beginning", "--max", "5", broker=broker_url)
    assert values == ["v1", "v2:with:colons", "", "no key", "again"]
    # --max stops early; another separator prints the same keys and values.
    assert ok(
        "consume", topic, "--from-beginning", "--max", "2", "-k", " => ", broker=broker_url
    ) == ["k1 => v1", "k2 => v2:with:colons"]


def test_records_without_key_print_null_key(broker_url: str, topic: str) -> None:
    ok(
        "produce", topic, "--create", broker=broker_url,
        input="first\r\nsecond\nlast without newline",
    )  # fmt: skip
    assert ok(
        "consume", topic, "--from-beginning", "--max", "3", "-k", "\t", broker=broker_url
    ) == ["null\tfirst", "null\tsecond", "null\tlast without newline"]


def test_offset_timestamp_and_partition_start_where_they_should(
    broker_url: str, topic: str
) -> None:
    ok("topics", "create", topic, broker=broker_url)
    ok("produce", topic, broker=broker_url, input="a0\na1\na2\n")
    # A millisecond after every a-record's timestamp; the b-records are produced once the
    # clock has reached it, so they are stamped at or after it.
    between = int(time.time() * 1000) + 1
    until_sync(lambda: int(time.time() * 1000) >= between, "the clock reaches `between`")
    ok("produce", topic, broker=broker_url, input="b0\nb1\n")

    def consume(*args: str) -> list[str]:
        return ok("consume", topic, "--timeout-ms", "1000", *args, broker=broker_url)

    assert consume("--offset", "2") == ["a2", "b0", "b1"]
    assert consume("--offset", "4", "--max", "1") == ["b1"]
    assert consume("--timestamp", str(between)) == ["b0", "b1"]
    assert consume("--timestamp", "0", "--max", "1") == ["a0"]
    assert consume("--timestamp", str(int(time.time() * 1000) + 60_000)) == []
    stamped = consume("--timestamp", str(between), "--print-timestamp")
    assert [line.split("\t")[1] for line in stamped] == ["b0", "b1"]
    assert all(between <= int(line.split("\t")[0]) <= time.time() * 1000 for line in stamped)
    assert consume("--partition", "0", "--from-beginning") == ["a0", "a1", "a2", "b0", "b1"]
    # Without a starting point, consume reads only what arrives from now on.
    assert consume() == []


def test_partition_picks_one_partition(broker_url: str, topic: str) -> None:
    ok("topics", "create", topic, "--partitions", "2", broker=broker_url)
    lines = [f"key{i}:value{i}" for i in range(20)]
    ok("produce", topic, "-k", ":", broker=broker_url, input="\n".join(lines) + "\n")
    parts = [
        ok(
            "consume", topic, "--from-beginning", "--partition", str(p), "-k", ":",
            "--timeout-ms", "1000", broker=broker_url,
        )
        for p in (0, 1)
    ]  # fmt: skip
    assert parts[0] and parts[1]
    assert sorted(parts[0] + parts[1]) == sorted(lines)
    everything = ok(
        "consume", topic, "--from-beginning", "--max", "20", "-k", ":", broker=broker_url
    )
    assert sorted(everything) == sorted(lines)
    out = streamlog("consume", topic, "--partition", "2", broker=broker_url)
    assert out.returncode == 1
    assert out.stderr == f"Error: topic '{topic}' has 2 partition(s), no partition 2\n"


def test_line_without_separator_stops_produce_after_the_lines_before(
    broker_url: str, topic: str
) -> None:
    out = streamlog(
        "produce", topic, "--create", "-k", ":", broker=broker_url, input="a:1\nb2\nc:3\n"
    )
    assert out.returncode == 1
    assert out.stderr == "Error: line 2 has no key separator ':'\n"
    assert ok("consume", topic, "--from-beginning", "--timeout-ms", "1000", broker=broker_url) == [
        "1"
    ]


def test_conflicting_start_options_are_usage_errors(tmp_path) -> None:
    url = f"file://{tmp_path}"
    for args, message in (
        (("--from-beginning", "--offset", "1"), "--from-beginning and --offset cannot"),
        (("--offset", "1", "--timestamp", "5"), "--offset and --timestamp cannot"),
        (("--group", "g", "--partition", "0"), "--partition cannot be used with --group"),
        (("--group", "g", "--offset", "0"), "--offset cannot be used with --group"),
    ):
        out = streamlog("consume", "t", *args, broker=url)
        assert out.returncode == 2, args
        assert message in out.stderr


def _read_lines(proc: subprocess.Popen[bytes], count: int, timeout: float) -> list[bytes]:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(b"\n") < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only {data!r} after {timeout} s"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"stdout closed after {data!r}"
            data += chunk
    return data.splitlines()


def test_ctrl_c_stops_a_group_consumer_cleanly_and_commits(broker_url: str, topic: str) -> None:
    ok("topics", "create", topic, broker=broker_url)
    ok("produce", topic, broker=broker_url, input="".join(f"r{i}\n" for i in range(4)))
    proc = subprocess.Popen(
        [STREAMLOG, "consume", topic, "--group", "interrupted", "--from-beginning"]
        + ["--broker", broker_url],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert _read_lines(proc, 4, 30) == [b"r0", b"r1", b"r2", b"r3"]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, err
    assert err == b""
    described = ok("groups", "describe", "interrupted", broker=broker_url)
    assert described[-1].split()[:5] == [topic, "0", "4", "4", "0"]


def test_ctrl_c_ends_produce_cleanly_with_stdin_still_open(kafka_broker, topic: str) -> None:
    url = f"kafka://{kafka_broker.bootstrap}"
    ok("topics", "create", topic, broker=url)
    proc = subprocess.Popen(
        [STREAMLOG, "produce", topic, "--broker", url],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    try:
        proc.stdin.write(b"typed\nat a terminal\n")
        proc.stdin.flush()
        # Both lines arrive while the producer waits for a third one...
        assert ok(
            "consume", topic, "--from-beginning", "--max", "2", "--timeout-ms", "20000",
            broker=url,
        ) == ["typed", "at a terminal"]  # fmt: skip
        # ...and Ctrl-C ends it, though its input is not closed.
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert (proc.returncode, err) == (0, b"")


def test_progress_on_a_terminal_only(broker_url: str, topic: str) -> None:
    # stderr a pipe (the other tests): nothing. stderr a terminal: a line rewritten
    # every 0.5 s with the count and rate, then the total.
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [STREAMLOG, "produce", topic, "--create", "--broker", broker_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    assert proc.stdin is not None
    output = b""

    def read_until(marker: bytes, timeout: float = 10) -> None:
        nonlocal output
        deadline = time.monotonic() + timeout
        while marker not in output:
            left = deadline - time.monotonic()
            assert left > 0, f"no {marker!r} in {output!r}"
            if select.select([master], [], [], left)[0]:
                output += os.read(master, 4096)

    try:
        for i in range(3):
            proc.stdin.write(b"".join(b"%d-%d\n" % (i, j) for j in range(100)))
            proc.stdin.flush()
            # The next chunk goes once the progress line has counted this one.
            read_until(b"\r\x1b[K%d records sent, " % ((i + 1) * 100))
        proc.stdin.close()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    while select.select([master], [], [], 1)[0]:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal's other side is closed
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    text = output.decode()
    updates = [u for u in text.split("\r\x1b[K") if u]
    assert len(updates) >= 3, text
    assert all(u.endswith(" records/s") for u in updates[:-1]), updates
    counts = [int(u.split()[0]) for u in updates]
    assert counts == sorted(counts) and set(counts) <= {0, 100, 200, 300}, updates
    assert updates[-1].startswith("300 records sent in ") and updates[-1].endswith("records/s\r\n")
    assert len(ok("consume", topic, "--from-beginning", "--max", "300", broker=broker_url)) == 300


def test_progress_line_counts_and_rates() -> None:
    now = [100.0]
    stream = io.StringIO()
    progress = Progress(stream, clock=lambda: now[0])
    progress.count = 500
    now[0] += 0.5
    progress.update()
    progress.count = 800
    now[0] += 0.5
    progress.update()
    now[0] += 1.0
    progress.finish()
    assert stream.getvalue().split("\r\x1b[K")[1:] == [
        "500 records sent, 1000 records/s",
        "800 records sent, 600 records/s",
        "800 records sent in 2.0 s, 400 records/s\n",
    ]


def test_isolation_read_committed_prints_committed_transactions_only(
    broker_url: str, topic: str
) -> None:
    """A committed and an aborted transaction, then one left open: read_committed prints
    the committed one and stops at the open one (the last stable offset);
    read_uncommitted prints everything."""
    import asyncio

    from streamlog.transport import open_transport

    async def write() -> None:
        transport = open_transport(broker_url)
        await transport.start()
        try:
            await transport.admin().create_topic(topic, 1)
            producer = transport.producer(transactional_id=f"{topic}-writer")
            await producer.init_transactions()
            for values, end in (([b"c1", b"c2"], "commit"), ([b"a1"], "abort"), ([b"o1"], "")):
                producer.begin_transaction()
                for value in values:
                    await producer.send(topic, value, partition=0)
                await producer.flush()  # written, so that an abort leaves them behind a marker
                if end == "commit":
                    await producer.commit_transaction()
                elif end == "abort":
                    await producer.abort_transaction()
            await producer.close()  # the last transaction left open
        finally:
            await transport.close()

    asyncio.run(asyncio.wait_for(write(), 30))
    committed = ok(
        "consume", topic, "--from-beginning", "--isolation", "read_committed",
        "--timeout-ms", "500", broker=broker_url,
    )  # fmt: skip
    assert committed == ["c1", "c2"]
    everything = ok("consume", topic, "--from-beginning", "--timeout-ms", "500", broker=broker_url)
    assert everything == ["c1", "c2", "a1", "o1"]
