"""A process that feeds a FileSink the offsets START..TOTAL-1 of one partition, a batch at
a time, flushing after each and printing ``flushed OFFSET`` once the flush returned (what a
runner would then commit). Tests kill it with SIGKILL and run it again. No tests here.

    python -m tests.connect.filesinkdriver PATH FORMAT START TOTAL BATCH MAX_BYTES [DIE_AFTER]

DIE_AFTER: the process kills itself (SIGKILL) right after taking that many batches, before
their flush: a crash with lines in the buffer (and, with a small MAX_BYTES, after a
rotation that flushed part of the last batch).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from streamlog.connect import SinkRecord
from streamlog.connect.files import FileSink


async def main(
    path: str, fmt: str, start: int, total: int, batch: int, max_bytes: int, die_after: int
) -> None:
    sink = FileSink(path, format=fmt, max_bytes=max_bytes, buffer_bytes=4096)
    await sink.start()
    for taken, first in enumerate(range(start, total, batch), 1):
        offsets = range(first, min(first + batch, total))
        await sink.write(
            [SinkRecord("t", 0, o, 0, None, {"offset": o, "pad": "x" * 40}) for o in offsets]
        )
        if taken == die_after:
            os.kill(os.getpid(), signal.SIGKILL)
        await sink.flush()
        print(f"flushed {offsets[-1]}", flush=True)
    await sink.close()
    print("done", flush=True)


if __name__ == "__main__":
    path, fmt, *numbers = sys.argv[1:]
    start, total, batch, max_bytes, *die = map(int, numbers)
    asyncio.run(main(path, fmt, start, total, batch, max_bytes, die[0] if die else 0))
