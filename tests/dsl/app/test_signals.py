"""Faust's app signals and hooks, as Faust programs use them: receivers take the app first
and ``**kwargs``; class receivers hear every app, app receivers only theirs."""

from __future__ import annotations

from typing import Any

import streamlog
from streamlog.dsl.app.worker import run_worker
from tests.dsl.helpers import read_topic, run, wait_for


def test_partition_signals_and_rebalancing(app_id):
    app = streamlog.App(app_id, broker="memory://", topic_partitions=2)
    topic = app.topic(f"{app_id}-in")
    heard: list[tuple[str, Any]] = []

    @app.agent(topic)
    async def idle(stream):
        async for _ in stream:
            pass

    @app.on_partitions_assigned.connect
    async def assigned(sender, assigned, **kwargs):
        heard.append(
            (
                "assigned",
                (sender is app, sorted(tp.partition for tp in assigned if tp.topic == topic.name)),
            )
        )

    @app.on_partitions_revoked.connect
    async def revoked(sender, revoked, **kwargs):
        heard.append(("revoked", sorted(tp.partition for tp in revoked if tp.topic == topic.name)))

    @app.on_rebalance_complete.connect
    async def complete(sender, **kwargs):
        heard.append(("complete", sender.rebalancing))

    async def main() -> bool:
        async with app:
            await wait_for(lambda: ("complete", False) in heard)
            return app.rebalancing

    assert run(main()) is False
    assert heard[:2] == [("assigned", (True, [0, 1])), ("complete", False)]
    assert ("revoked", [0, 1]) in heard[2:]  # the stop gives them up


def test_class_receivers_hear_every_app(app_id):
    heard: list[str] = []

    def on_init(sender, **kwargs):
        heard.append(sender.conf.id)

    streamlog.App.on_worker_init.connect(on_init)
    try:
        one = streamlog.App(app_id + "-one", broker="memory://")
        two = streamlog.App(app_id + "-two", broker="memory://")
        one.on_worker_init.send()
        two.on_worker_init.send()
    finally:
        streamlog.App.on_worker_init.disconnect(on_init)
    streamlog.App(app_id + "-three", broker="memory://").on_worker_init.send()
    assert heard == [app_id + "-one", app_id + "-two"]


def test_on_configured_can_change_settings_before_the_start(app_id):
    app = streamlog.App(app_id, broker="memory://")
    order: list[str] = []

    @app.on_before_configured.connect
    def before(sender, **kwargs):
        order.append("before")

    @app.on_configured.connect
    def configure(sender, conf, **kwargs):
        order.append("configured")
        conf.topic_partitions = 3

    @app.on_after_configured.connect
    def after(sender, **kwargs):
        order.append("after")

    topic = app.topic(f"{app_id}-in")

    async def main() -> int:
        async with app:
            info = await app.admin().describe_topic(topic.name)
            return len(info.partitions)

    assert run(main()) == 3
    assert order == ["before", "configured", "after"]


def test_the_worker_runs_worker_init_and_startup_finished(app_id):
    app = streamlog.App(app_id, broker="memory://")
    order: list[str] = []

    @app.on_worker_init.connect
    def init(sender, **kwargs):
        order.append(f"init started={sender.started}")

    async def finished() -> None:
        order.append(f"startup finished started={app.started}")
        app.request_stop()

    app.on_startup_finished = finished

    async def main() -> int:
        return await run_worker(app, lag_interval=0)

    assert run(main()) == 0
    # the app counts as started once on_startup_finished has run
    assert order == ["init started=False", "startup finished started=True"]


def test_on_produce_message_sees_each_record_and_may_add_headers(app_id):
    app = streamlog.App(app_id, broker="memory://", topic_partitions=1)
    topic = app.topic(f"{app_id}-out", value_serializer="raw")
    seen: list[tuple[Any, Any]] = []

    @app.on_produce_message.connect
    def stamp(sender, key=None, value=None, headers=None, **kwargs):
        seen.append((key, value))
        headers.append(("traced", b"yes"))

    async def main() -> list[Any]:
        async with app:
            await (await topic.send(key="k", value=b"v"))
            return await read_topic(app, topic.name, 1)

    records = run(main())
    assert seen == [(b"k", b"v")]
    assert list(records[0].headers) == [("traced", b"yes")]
