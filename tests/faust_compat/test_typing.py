"""Faust's typing names (item 8): subscriptable where Faust's are, and structural: the
objects of a running app are instances of them."""

from __future__ import annotations

import asyncio
from typing import Any

import streamlog
import streamlog.faust as faust
from streamlog.faust import types
from tests.dsl.helpers import run, wait_for


class Order(faust.Record):
    item: str
    qty: int


def test_typing_names_subscript_as_faust_s_do():
    # annotations written for Faust evaluate: StreamT[T], Stream[T], EventT[T], TableT[K, V]
    assert faust.StreamT[Order] is not None
    assert types.StreamT[int] == faust.StreamT[int]
    assert streamlog.Stream[Order].__origin__ is streamlog.Stream
    assert faust.Stream is streamlog.Stream
    assert faust.EventT[str] is not None
    assert types.TableT[str, int] == types.CollectionT[str, int]
    assert faust.AgentT is types.AgentT and faust.TopicT is types.TopicT


def test_a_running_app_s_objects_are_instances_of_the_typing_names():
    app = faust.App("typing-names", broker="memory://", store="memory://")
    orders = app.topic("orders", value_type=Order, partitions=1)
    channel = app.channel()
    totals = app.Table("totals", default=int, partitions=1)
    seen: dict[str, Any] = {}

    @app.agent(orders)
    async def tally(stream: faust.StreamT[Order]) -> None:
        seen["stream"] = isinstance(stream, faust.StreamT)
        async for event in stream.events():
            seen["event"] = isinstance(event, faust.EventT)
            seen["model"] = isinstance(event.value, faust.ModelT)
            totals[event.value.item] += event.value.qty
            seen["total"] = totals[event.value.item]

    async def main() -> None:
        async with app:
            await orders.send(value=Order(item="pen", qty=3))
            await wait_for(lambda: "total" in seen)

    run(main())
    assert seen == {"stream": True, "event": True, "model": True, "total": 3}
    assert isinstance(app, faust.AppT)
    assert isinstance(tally, faust.AgentT)
    assert isinstance(totals, faust.TableT)
    assert isinstance(orders, faust.TopicT) and isinstance(orders, faust.ChannelT)
    # a channel is something to send to, not a topic of the log
    assert isinstance(channel, faust.ChannelT) and not isinstance(channel, faust.TopicT)
    assert not isinstance(asyncio.Event(), faust.ChannelT)
