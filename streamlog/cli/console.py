"""``streamlog produce`` and ``streamlog consume``: records from stdin, records to stdout.

As kafka-console-producer and kafka-console-consumer: one record per line; with a key
separator, a line is ``KEY SEP VALUE`` (split at the first SEP). Keys and values are
bytes: lines are read and written undecoded, a null key or value prints as ``null``.

``produce`` reads stdin in chunks on a daemon thread (a terminal gives a chunk per line,
a file 64 KiB at a time) and keeps at most ``ACK_WINDOW`` unacknowledged records; the
first failed record stops it with that error. On a terminal, stderr shows the count and
rate, rewritten every ``PROGRESS_INTERVAL`` seconds.

``consume`` without ``--group`` assigns every partition (or ``--partition``) and starts at
the end unless told otherwise; with ``--group`` it subscribes, starts at the committed
offsets (else the end, or the beginning with ``--from-beginning``) and commits what it
printed every ``COMMIT_INTERVAL`` seconds and when it stops. Ctrl-C stops either tool
cleanly (exit code 0): ``produce`` sends what it read, ``consume`` commits what it printed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TextIO

import click

from streamlog.cli.common import broker_option, require_topic, run_with_transport

if TYPE_CHECKING:
    from streamlog.transport.base import Consumer, Transport
    from streamlog.transport.types import ConsumerRecord, RecordMetadata, TopicPartition

__all__ = ["produce", "consume", "Progress", "format_record", "split_line"]

STDIN_FD = 0
CHUNK_SIZE = 1 << 16
ACK_WINDOW = 10_000
PROGRESS_INTERVAL = 0.5  # seconds
COMMIT_INTERVAL = 1.0  # seconds
POLL_INTERVAL = 1.0  # seconds, without --timeout-ms
JOIN_GRACE = 30.0  # seconds --timeout-ms waits extra for a group's first assignment
NULL = b"null"


# ---------------------------------------------------------------------------- produce


class Progress:
    """Records sent and the rate since the last update, on one terminal line.

    ``update`` rewrites the line; ``finish`` writes the total and the average rate and
    ends the line. The clock is passed in (``time.monotonic`` by default).
    """

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.clock = clock
        self.count = 0
        self._start = self._last_time = clock()
        self._last_count = 0

    def update(self) -> None:
        now = self.clock()
        elapsed = now - self._last_time
        rate = (self.count - self._last_count) / elapsed if elapsed > 0 else 0.0
        self._last_time, self._last_count = now, self.count
        self.stream.write(f"\r\x1b[K{self.count} records sent, {rate:.0f} records/s")
        self.stream.flush()

    def finish(self) -> None:
        elapsed = self.clock() - self._start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        self.stream.write(
            f"\r\x1b[K{self.count} records sent in {elapsed:.1f} s, {rate:.0f} records/s\n"
        )
        self.stream.flush()


def split_line(line: bytes, separator: bytes | None, number: int) -> tuple[bytes | None, bytes]:
    """(key, value) of one input line (without its line ending)."""
    if separator is None:
        return None, line
    key, found, value = line.partition(separator)
    if not found:
        raise click.ClickException(
            f"line {number} has no key separator {separator.decode(errors='replace')!r}"
        )
    return key, value


async def _chunks(fd: int) -> AsyncIterator[bytes]:
    """Chunks read from file descriptor ``fd`` on a daemon thread, so that Ctrl-C never
    waits for input. ``os.read``, not ``sys.stdin.buffer``: a thread blocked inside a
    buffered reader holds its lock, which interpreter shutdown then cannot take."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | OSError | None] = asyncio.Queue()
    room = threading.BoundedSemaphore(16)  # chunks read ahead of the loop at most

    def put(item: bytes | OSError | None) -> None:
        # a plain callback, not a coroutine: if the loop stops first (an error in the
        # input), nothing is left un-awaited; call_soon_threadsafe then raises and the
        # thread ends
        room.acquire()
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def read() -> None:
        try:
            while True:
                try:
                    chunk = os.read(fd, CHUNK_SIZE)
                except OSError as exc:
                    put(exc)
                    return
                put(chunk or None)
                if not chunk:
                    return
        except BaseException:  # the loop closed under us: nobody is reading any more
            return

    threading.Thread(target=read, name="streamlog-stdin", daemon=True).start()
    while True:
        item = await queue.get()
        room.release()
        if item is None:
            return
        if isinstance(item, OSError):
            raise click.ClickException(f"cannot read stdin: {item}")
        yield item


async def _lines(fd: int) -> AsyncIterator[bytes]:
    """Lines read from ``fd`` without their ``\\n`` or ``\\r\\n``; a last unended one too."""
    parts: list[bytes] = []
    async for chunk in _chunks(fd):
        parts.append(chunk)
        if b"\n" not in chunk:
            continue
        lines = b"".join(parts).split(b"\n")
        parts = [lines.pop()]
        for line in lines:
            yield line[:-1] if line.endswith(b"\r") else line
    rest = b"".join(parts)
    if rest:
        yield rest[:-1] if rest.endswith(b"\r") else rest


async def _tick(progress: Progress) -> None:
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL)
        progress.update()


@click.command("produce")
@click.argument("topic")
@click.option(
    "-k",
    "--key-separator",
    metavar="SEP",
    help="Split each line at the first SEP into key and value.",
)
@click.option(
    "--create",
    is_flag=True,
    help="Create TOPIC (one partition) if it does not exist; without it an unknown topic "
    "is an error.",
)
@broker_option
def produce(topic: str, key_separator: str | None, create: bool, broker_url: str | None) -> None:
    """Send each line of stdin to TOPIC as one record.

    TOPIC must exist, or --create creates it. Stops at the end of input, or on Ctrl-C
    after sending what it read.
    """
    separator = key_separator.encode() if key_separator else None
    stderr = sys.stderr
    progress = Progress(stderr) if stderr is not None and stderr.isatty() else None

    async def run(transport: Transport) -> None:
        await require_topic(transport.admin(), topic, create=create)
        producer = transport.producer(client_id="streamlog-console-producer")
        acks: deque[Awaitable[RecordMetadata]] = deque()
        ticker = asyncio.create_task(_tick(progress)) if progress is not None else None
        try:
            try:
                number = 0
                async for line in _lines(STDIN_FD):
                    number += 1
                    key, value = split_line(line, separator, number)
                    acks.append(await producer.send(topic, value, key=key))
                    if progress is not None:
                        progress.count += 1
                    while len(acks) > ACK_WINDOW:  # bounds memory, surfaces failures early
                        await acks.popleft()
            except asyncio.CancelledError:
                _uncancel()  # Ctrl-C: send what was read
            await producer.flush()
            while acks:
                await acks.popleft()
        finally:
            if ticker is not None:
                ticker.cancel()
            if progress is not None:
                progress.finish()

    run_with_transport(broker_url, run, interruptible=True, create=create)


def _uncancel() -> None:
    """Take back a handled Ctrl-C, so that later timeouts in this task work as usual."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


# ---------------------------------------------------------------------------- consume


def format_record(record: ConsumerRecord, separator: bytes | None, print_timestamp: bool) -> bytes:
    """One output line: ``[TIMESTAMP<TAB>][KEY SEP ]VALUE`` and a newline."""
    value = NULL if record.value is None else record.value
    if separator is not None:
        value = (NULL if record.key is None else record.key) + separator + value
    if print_timestamp:
        value = b"%d\t" % record.timestamp + value
    return value + b"\n"


async def _position(
    transport: Transport,
    consumer: Consumer,
    topic: str,
    partition: int | None,
    from_beginning: bool,
    offset: int | None,
    timestamp_ms: int | None,
) -> None:
    """Assign the partitions of ``topic`` (or just ``partition``) and seek as asked."""
    from streamlog.transport.types import TopicPartition

    await require_topic(transport.admin(), topic, hint="")
    info = await transport.admin().describe_topic(topic)
    partitions = [TopicPartition(topic, p.partition) for p in info.partitions]
    if partition is not None:
        if partition >= len(partitions):
            raise click.ClickException(
                f"topic {topic!r} has {len(partitions)} partition(s), no partition {partition}"
            )
        partitions = [TopicPartition(topic, partition)]
    consumer.assign(partitions)
    if from_beginning:
        await consumer.seek_to_beginning(*partitions)
    elif offset is not None:
        for tp in partitions:
            consumer.seek(tp, offset)
    elif timestamp_ms is not None:
        await consumer.seek_to_timestamp(timestamp_ms, *partitions)
    else:
        await consumer.seek_to_end(*partitions)


def _silence_stdout() -> None:
    """The reader went away (``| head``): drop further output instead of failing at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@click.command("consume")
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Start at the earliest record.")
@click.option(
    "--offset",
    type=click.IntRange(min=0),
    metavar="N",
    help="Start at offset N of each partition read (not with --group).",
)
@click.option(
    "--timestamp",
    "timestamp_ms",
    type=click.IntRange(min=0),
    metavar="MS",
    help="Start at the first record at or after epoch milliseconds MS (not with --group).",
)
@click.option(
    "-g",
    "--group",
    metavar="GROUP",
    help="Join consumer group GROUP: read from its committed offsets, commit what is printed.",
)
@click.option(
    "-n",
    "--max",
    "max_records",
    type=click.IntRange(min=1),
    metavar="N",
    help="Stop after N records.",
)
@click.option(
    "-k", "--key-separator", metavar="SEP", help="Print KEY SEP VALUE instead of the value."
)
@click.option("--print-timestamp", is_flag=True, help="Prefix each line with its timestamp.")
@click.option(
    "-p",
    "--partition",
    type=click.IntRange(min=0),
    metavar="P",
    help="Read only partition P (not with --group).",
)
@click.option(
    "--timeout-ms",
    type=click.IntRange(min=1),
    metavar="MS",
    help="Stop when no record arrives for MS milliseconds.",
)
@click.option(
    "--isolation",
    "isolation_level",
    type=click.Choice(["read_uncommitted", "read_committed"]),
    default="read_uncommitted",
    show_default=True,
    help="read_committed: only records of committed transactions (an exactly-once "
    "app's outputs as its next stage sees them), up to the last stable offset.",
)
@broker_option
def consume(
    topic: str,
    from_beginning: bool,
    offset: int | None,
    timestamp_ms: int | None,
    group: str | None,
    max_records: int | None,
    key_separator: str | None,
    print_timestamp: bool,
    partition: int | None,
    timeout_ms: int | None,
    isolation_level: str,
    broker_url: str | None,
) -> None:
    """Print the records of TOPIC, one per line.

    Starts at the end (only new records) unless --from-beginning, --offset or
    --timestamp says otherwise; stops after --max records, after --timeout-ms without a
    record, or on Ctrl-C.
    """
    starts = [
        name
        for name, given in (
            ("--from-beginning", from_beginning),
            ("--offset", offset is not None),
            ("--timestamp", timestamp_ms is not None),
        )
        if given
    ]
    if len(starts) > 1:
        raise click.UsageError(f"{' and '.join(starts)} cannot be used together")
    if group is not None:
        for name, given in (
            ("--offset", offset is not None),
            ("--timestamp", timestamp_ms is not None),
            ("--partition", partition is not None),
        ):
            if given:
                raise click.UsageError(
                    f"{name} cannot be used with --group (a group starts at its commits)"
                )
    separator = key_separator.encode() if key_separator is not None else None
    stderr = sys.stderr
    tty = stderr is not None and stderr.isatty()

    async def run(transport: Transport) -> int:
        loop = asyncio.get_running_loop()
        out = sys.stdout.buffer
        consumer = transport.consumer(
            group_id=group,
            client_id="streamlog-console-consumer",
            auto_offset_reset="earliest" if from_beginning else "latest",
            isolation_level=isolation_level,
        )
        count = 0
        printed: dict[TopicPartition, int] = {}  # next offset after the last printed record
        committed: dict[TopicPartition, int] = {}
        if group is not None:
            # Subscribing to a missing topic would create it on the bundled log.
            await require_topic(transport.admin(), topic, hint="")
            await consumer.subscribe([topic])
        else:
            await _position(
                transport, consumer, topic, partition, from_beginning, offset, timestamp_ms
            )
        assigned = bool(consumer.assignment())
        idle_since = last_commit = loop.time()
        try:
            while max_records is None or count < max_records:
                now = loop.time()
                poll = POLL_INTERVAL
                if timeout_ms is not None:
                    if not assigned and consumer.assignment():
                        assigned, idle_since = True, now
                    # A group member waits for its first assignment before it idles.
                    limit = timeout_ms / 1000 + (0 if assigned else JOIN_GRACE)
                    poll = min(poll, idle_since + limit - now)
                    if poll <= 0:
                        break
                batches = await consumer.getmany(
                    timeout_ms=max(1, int(poll * 1000)),
                    max_records=None if max_records is None else max_records - count,
                )
                if batches:
                    idle_since = loop.time()
                    lines = []
                    for tp, records in batches.items():
                        lines += [format_record(r, separator, print_timestamp) for r in records]
                        printed[tp] = records[-1].offset + 1
                    count += len(lines)
                    try:
                        out.write(b"".join(lines))
                        out.flush()
                    except BrokenPipeError:
                        _silence_stdout()
                        break
                if group is not None and loop.time() - last_commit >= COMMIT_INTERVAL:
                    await _commit(consumer, printed, committed, final=False)
                    last_commit = loop.time()
        except asyncio.CancelledError:
            _uncancel()  # Ctrl-C: commit what was printed, then stop
        if group is not None:
            await _commit(consumer, printed, committed, final=True)
        return count

    count = run_with_transport(broker_url, run, interruptible=True)
    if tty and count is not None:
        click.echo(f"Processed a total of {count} records", err=True)


async def _commit(
    consumer: Consumer,
    printed: dict[TopicPartition, int],
    committed: dict[TopicPartition, int],
    *,
    final: bool,
) -> None:
    """Commit, for each assigned partition, the offset after the last record printed (or
    the position, where nothing was printed yet), as Kafka's auto-commit does. A periodic
    commit may fail quietly (a rebalance: the next one retries); the last one may not."""
    from streamlog.transport.errors import GroupError

    try:
        offsets = {}
        for tp in consumer.assignment():  # a partition revoked since is not ours to commit
            offsets[tp] = printed[tp] if tp in printed else await consumer.position(tp)
        new = {tp: offset for tp, offset in offsets.items() if committed.get(tp) != offset}
        if new:
            await consumer.commit(new)
            committed.update(new)
    except GroupError:
        if final:
            raise
