"""A table sink driven the way the app's commit sequence drives it, in its own process, so
a test can kill -9 it mid-batch: records ``offset -> (key, value)`` come from a
deterministic stream (``stream_record``), are written in batches, and after each ``flush``
the next offset is "committed" to a file (write + fsync + rename), as the app commits a
topic's offsets only after the sinks flushed. A restart starts at the committed offset:
whatever the dead process wrote after that comes again, as Kafka re-delivers it.

    python -m tests.connect.sinkdriver sqlite|postgres TARGET TABLE OFFSETS_FILE TOTAL

prints ``committed N`` after each commit (the test waits for a few before killing).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from streamlog.connect.base import Sink, SinkRecord

KEYS = 97
BATCH = 250
FLUSH_EVERY = 4  # batches per flush: a kill lands between writes and a flush, or inside one


def stream_record(offset: int) -> tuple[str, Any]:
    """Offset ``offset`` of the test topic: keys repeat (upserts), every 11th is a
    tombstone (deletes)."""
    key = f"k{offset % KEYS}"
    if offset % 11 == 5:
        return key, None
    return key, {"n": offset, "label": f"v{offset}", "tags": [offset % 3]}


def final_rows(total: int) -> dict[str, dict[str, Any]]:
    """The table the stream's first ``total`` records leave: each key's last value."""
    rows: dict[str, dict[str, Any]] = {}
    for offset in range(total):
        key, value = stream_record(offset)
        if value is None:
            rows.pop(key, None)
        else:
            rows[key] = value
    return rows


def committed(path: Path) -> int:
    return int(path.read_text()) if path.exists() else 0


def commit(path: Path, offset: int) -> None:
    temp = path.with_suffix(".tmp")
    with open(temp, "w") as f:
        f.write(str(offset))
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


def make_sink(kind: str, target: str, table: str) -> Sink:
    columns = ["n", "label", "tags"]
    if kind == "sqlite":
        from streamlog.connect.sqlite import SqliteSink

        return SqliteSink(target, table, columns=columns)
    from streamlog.connect.postgres import PostgresSink

    return PostgresSink(target, table, columns={"n": "bigint", "label": "text", "tags": "jsonb"})


async def run(kind: str, target: str, table: str, offsets: Path, total: int) -> None:
    sink = make_sink(kind, target, table)
    await sink.start()
    offset = committed(offsets)
    batches = 0
    while offset < total:
        end = min(offset + BATCH, total)
        records = []
        for o in range(offset, end):
            key, value = stream_record(o)
            records.append(SinkRecord("t", 0, o, 0, key, value))
        await sink.write(records)
        offset = end
        batches += 1
        if batches % FLUSH_EVERY == 0 or offset == total:
            await sink.flush()
            commit(offsets, offset)
            print(f"committed {offset}", flush=True)
    await sink.close()


if __name__ == "__main__":
    kind, target, table, offsets_file, total = sys.argv[1:6]
    asyncio.run(run(kind, target, table, Path(offsets_file), int(total)))
