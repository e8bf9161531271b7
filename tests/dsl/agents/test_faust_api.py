"""The rest of Faust's agent and topic API as Faust programs use it: agents declared with
their own topic's types, ``join``/``map``/``kvjoin``, ``send_soon``, ``maybe_declare``,
``current_event()`` and ``Event.forward``, timers on a ``functools.partial``."""

from __future__ import annotations

import asyncio
import functools

import streamlog
from streamlog.dsl.runtime.clock import ManualAsyncClock
from tests.dsl.helpers import read_topic, run, wait_for


def test_an_agent_declares_its_own_topic_with_types(app_id):
    app = streamlog.App(app_id, broker="memory://", topic_partitions=1)
    got: list[object] = []

    @app.agent(value_type=int, key_type=str)
    async def numbers(stream):
        async for key, n in stream.items():
            got.append((key, n))

    async def main() -> None:
        async with app:
            await numbers.send(key="k", value=3)
            await wait_for(lambda: got == [("k", 3)])

    run(main())
    assert numbers.channel.value_type is int


def test_join_map_and_kvjoin_ask_the_agent_about_many_values(app_id):
    app = streamlog.App(app_id, broker="memory://", topic_partitions=2)

    @app.agent(value_type=int)
    async def double(stream):
        async for n in stream:
            yield n * 2

    async def main() -> tuple[list[int], list[int], list[int]]:
        async with app:
            joined = await double.join([1, 2, 3])
            kv = await double.kvjoin([("a", 10), ("b", 20)])
            mapped = [reply async for reply in double.map(n for n in (4, 5))]
            return joined, kv, mapped

    joined, kv, mapped = run(main())
    assert joined == [2, 4, 6]  # in the values' order
    assert kv == [20, 40]
    assert sorted(mapped) == [8, 10]  # as they arrive


def test_send_soon_from_sync_code_is_committed_only_once_queued(app_id):
    app = streamlog.App(app_id, broker="memory://", topic_partitions=1, broker_commit_interval=0.05)
    source = app.topic(f"{app_id}-in", value_type=int)
    sink = app.topic(f"{app_id}-out", value_type=int)

    def record(n: int) -> None:  # plain code, as Faust programs call send_soon
        sink.send_soon(value=n + 100)

    @app.agent(source)
    async def forward(stream):
        async for n in stream:
            record(n)

    async def main() -> list[int]:
        async with app:
            for n in range(3):
                await source.send(value=n)
            out = await read_topic(app, sink.name, 3)
            return sorted(int(r.value) for r in out)

    assert run(main()) == [100, 101, 102]


def test_maybe_declare_creates_the_topic(app_id):
    app = streamlog.App(app_id, broker="memory://")
    topic = app.topic(f"{app_id}-late", partitions=3)

    async def main() -> int:
        async with app:
            await topic.maybe_declare()
            return len((await app.admin().describe_topic(topic.name)).partitions)

    assert run(main()) == 3


def test_current_event_and_forward(app_id):
    app = streamlog.App(app_id, broker="memory://", topic_partitions=1)
    source = app.topic(f"{app_id}-in", key_type=str, value_type=str)
    seen: list[str] = []

    @app.agent(source)
    async def router(stream):
        async for value in stream:
            event = streamlog.current_event()
            seen.append(f"{event.key}:{value}@{event.message.offset}")
            await event.forward(f"{app_id}-copy")

    async def main() -> list[tuple[bytes | None, bytes | None]]:
        async with app:
            await source.send(key="k1", value="hello", headers={"h": b"1"})
            # the copy topic is made by the forward itself (declared at run time)
            while f"{app_id}-copy" not in await app.admin().list_topics():
                await asyncio.sleep(0.01)
            out = await read_topic(app, f"{app_id}-copy", 1)
            return [(r.key, r.value, list(r.headers)) for r in out]

    copies = run(main())
    assert seen == ["k1:hello@0"]
    assert copies == [(b"k1", b'"hello"', [("h", b"1")])]


def test_a_timer_may_be_a_functools_partial(app_id):
    clock = ManualAsyncClock()
    app = streamlog.App(app_id, broker="memory://", clock=clock)
    calls: list[str] = []

    def tick(label: str) -> None:
        calls.append(label)

    app.timer(1.0)(functools.partial(tick, "partial"))

    async def main() -> None:
        async with app:
            await clock.advance(3)

    run(main())
    assert calls == ["partial"] * 3
    assert app.timers[-1].name.endswith(".tick")
