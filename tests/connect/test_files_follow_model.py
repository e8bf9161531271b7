"""A followed file against a model (Hypothesis): any mix of appends (a line may be written
in two parts), rename rotations (several between two looks at the file), polls and
restarts at the last position handed over gives every line once, in order. A writer never
rotates mid-line, and a source that has handed nothing over yet (no position: it starts
at the path's file) has caught up before a rotation."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlog.connect.files import FileSource

operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 30), st.booleans()),
        st.tuples(st.just("rotate")),
        st.tuples(st.just("poll"), st.integers(1, 3)),
        st.tuples(st.just("restart")),
    ),
    max_size=25,
)


class Model:
    """The writer's side: lines written (complete ones count), files rotated."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "app.log"
        self.directory = directory
        self.written = 0  # complete lines
        self.half = b""  # the second part of a line written in two
        self.rotations = 0

    def append(self, count: int, split: bool) -> None:
        with open(self.path, "ab") as out:
            out.write(self.half)
            if self.half:
                self.written += 1
            self.half = b""
            for _ in range(count):
                line = json.dumps({"n": self.written, "pad": "x" * (self.written % 7)}).encode()
                out.write(line + b"\n")
                self.written += 1
            if split:
                line = json.dumps({"n": self.written, "pad": ""}).encode() + b"\n"
                out.write(line[:5])
                self.half = line[5:]

    def rotate(self) -> None:
        if self.path.exists():
            self.rotations += 1
            os.rename(self.path, self.directory / f"app.log.{self.rotations}")


async def scenario(directory: Path, ops: list[tuple[Any, ...]]) -> None:
    model = Model(directory)
    got: list[int] = []
    position: Any = None

    async def start() -> FileSource:
        source = FileSource(model.path, follow=True, poll_interval=0.001, batch_size=7)
        await source.start(position)
        return source

    async def poll(source: FileSource, times: int) -> None:
        nonlocal position
        for _ in range(times):
            records = await source.poll()
            got.extend(r.value["n"] for r in records)
            if records:
                position = records[-1].position

    async def catch_up(source: FileSource) -> None:
        for _ in range(500):
            if len(got) >= model.written:
                break
            await poll(source, 1)
        await poll(source, 3)  # and nothing more comes

    source = await start()
    try:
        for op in ops:
            if op[0] == "append":
                model.append(op[1], op[2])
            elif op[0] == "rotate" and not model.half:
                if position is None:  # nothing saved: a restart would start at the path
                    await catch_up(source)
                model.rotate()
            elif op[0] == "poll":
                await poll(source, op[1])
            elif op[0] == "restart":
                await source.close()
                source = await start()
        model.append(0, False)  # the last half line completed
        await catch_up(source)
    finally:
        await source.close()
    assert got == list(range(model.written))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_following_through_rotations_and_restarts_gives_every_line_once(ops):
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(scenario(Path(directory), ops))
