"""``app.source`` and ``app.sink`` through a real app and log (file://, and a
``streamlog broker`` process for the kafka:// case): records from a source reach the
topic once, a restart resumes at the checkpoint, records acknowledged after the last
checkpoint are matched instead of produced again, sinks are flushed before offsets are
committed, refused records reach the dead-letter topic, an outage is ridden out."""

from __future__ import annotations

import asyncio
import json

import pytest

import streamlog
from streamlog.connect.offsets import OffsetStore, offsets_topic_name
from streamlog.connect.source_runner import SourceRunner, SourceTarget
from streamlog.serde import Schema
from streamlog.transport import open_transport
from streamlog.transport.types import TopicPartition
from tests.connect.listconnectors import ListSink, ListSource
from tests.dsl.helpers import committed, read_topic, run, wait_for


async def until_committed(app, topic: str, total: int) -> dict[int, int | None]:
    """The group's committed offsets of ``topic`` once they add up to ``total`` (a sink's
    flush comes before the offsets of the same commit: durable first, committed next)."""
    offsets: dict[int, int | None] = {}

    async def reached() -> bool:
        nonlocal offsets
        offsets = await committed(app, topic)
        return sum(o or 0 for o in offsets.values()) == total

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not await reached():
        if loop.time() > deadline:
            raise AssertionError(f"{topic}: committed {offsets}, not {total} in all")
        await asyncio.sleep(0.02)
    return offsets


def make_app(url: str, app_id: str, **settings) -> streamlog.App:
    settings.setdefault("broker_commit_interval", 0.1)
    return streamlog.App(app_id, broker=url, topic_partitions=3, **settings)


def items(n: int, start: int = 0) -> list[dict]:
    return [{"id": i, "n": i * 10} for i in range(start, start + n)]


def test_a_source_feeds_a_sink_through_a_topic_with_every_record_once(tmp_path):
    url = f"file://{tmp_path}/log"
    app = make_app(url, "pipe")
    source = ListSource("orders-in", items(250), chunk=7)
    sink = ListSink("orders-out")
    app.source(source, topic="orders")
    app.sink("orders", sink)

    async def main():
        async with app:
            await wait_for(lambda: len(sink.durable) == 250)
            records = await read_topic(app, "orders", 250)
            offsets = await until_committed(app, "orders", 250)
        return records, offsets

    records, offsets = run(main())
    assert sorted(json.loads(r.value)["id"] for r in records) == list(range(250))
    assert sink.durable == {i: {"id": i, "n": i * 10} for i in range(250)}
    assert sum(o or 0 for o in offsets.values()) == 250  # every record committed, once
    assert source.started_at == [None]
    assert sink.started and sink.closed


def test_a_restarted_source_resumes_after_its_checkpoint(tmp_path):
    url = f"file://{tmp_path}/log"
    first = ListSource("in", items(100), chunk=9)
    app = make_app(url, "resume")
    app.source(first, topic="t")

    async def once(app, source, total):
        async with app:
            await wait_for(lambda: app.connectors.sources[source.name].runner.finished)
            return await read_topic(app, "t", total)

    run(once(app, first, 100))
    second = ListSource("in", items(160), chunk=9)  # the system holds 60 more now
    app2 = make_app(url, "resume")
    app2.source(second, topic="t")
    records = run(once(app2, second, 160))
    assert second.started_at == [100]
    assert second.read == 60
    assert sorted(json.loads(r.value)["id"] for r in records) == list(range(160))


def test_records_acknowledged_after_the_checkpoint_are_matched_not_produced_again(tmp_path):
    """A run killed between the acknowledgement of its records and its next checkpoint
    (the task is cancelled: nothing after the acknowledgement runs): the next run reads
    the same records again and produces none of them twice."""
    url = f"file://{tmp_path}/log"

    async def main():
        transport = open_transport(url)
        await transport.start()
        try:
            admin = transport.admin()
            await admin.create_topic("t", 4, {})
            await admin.create_topic("offs", 1, {"cleanup.policy": "compact"})
            await admin.close()
            schema = Schema(value_serializer="json", key_serializer="raw")
            target = SourceTarget("t", schema.dumps_key, schema.dumps_value)
            offsets = OffsetStore(transport, "offs")
            data = items(500)

            def runner(source):
                return SourceRunner(
                    source, target, transport=transport, offsets=offsets, checkpoint_interval=3600
                )

            keyed = lambda item: str(item["id"] % 7)  # noqa: E731 - half keyed, half not
            first = ListSource("s", data[:300], chunk=50, follow=True, key_of=keyed)
            run1 = runner(first)
            task = asyncio.ensure_future(run1.run())
            await wait_for(lambda: run1.records == 300)
            consumer = transport.consumer()
            tps = [TopicPartition("t", p) for p in range(4)]
            ends = await consumer.end_offsets(tps)
            while sum(ends.values()) < 300:  # acknowledged by the log
                await asyncio.sleep(0.01)
                ends = await consumer.end_offsets(tps)
            await consumer.close()
            task.cancel()  # "kill -9": no checkpoint after the first one
            with pytest.raises(asyncio.CancelledError):
                await task
            second = ListSource("s", data, chunk=50, key_of=keyed)
            run2 = runner(second)
            await run2.run()
            assert second.started_at == [None]  # the first checkpoint had no position
            assert run2.matched == 300 and run2.records == 200
            saved = await offsets.load("s")
            assert saved is not None and saved.position == 500
            third = ListSource("s", data + items(10, 500), chunk=50, key_of=keyed)
            run3 = runner(third)
            await run3.run()
            assert third.started_at == [500] and run3.matched == 0 and run3.records == 10
            reader = transport.consumer()
            try:
                return await read_all(reader, tps)
            finally:
                await reader.close()
        finally:
            await transport.close()

    records = run(main())
    ids = [json.loads(r.value)["id"] for r in records]
    assert sorted(ids) == list(range(510))  # every record once
    for record in records:  # keyed records by key, the others by position: same each run
        item = json.loads(record.value)
        if record.key is not None:
            assert record.key == str(item["id"] % 7).encode()


async def read_all(consumer, tps):
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    ends = await consumer.end_offsets(tps)
    out = []
    while any([await consumer.position(tp) < ends[tp] for tp in tps]):
        for batch in (await consumer.getmany(timeout_ms=200)).values():
            out.extend(batch)
    return out


def test_a_refused_record_goes_to_the_dead_letter_topic_and_the_others_are_written(tmp_path):
    url = f"file://{tmp_path}/log"
    app = make_app(url, "dlq")
    data = items(40)
    data[13] = {"id": 13, "bad": True}
    data[27] = {"id": 27, "bad": True}
    sink = ListSink("db")
    app.source(ListSource("in", data, chunk=40, key_of=lambda item: "k"), topic="t")
    app.sink("t", sink)

    async def main():
        async with app:
            await wait_for(lambda: len(sink.durable) == 38)
            dead = await read_topic(app, "dlq-db-dlq", 2)
            offsets = await until_committed(app, "t", 40)
        return dead, offsets

    dead, offsets = run(main())
    assert sorted(json.loads(r.value)["id"] for r in dead) == [13, 27]
    headers = dict(dead[0].headers)
    assert headers["streamlog-sink"] == b"db"
    assert headers["streamlog-source-topic"] == b"t"
    assert b"BadRecordError" in headers["streamlog-error-type"]
    assert set(sink.durable) == set(range(40)) - {13, 27}
    assert sum(o or 0 for o in offsets.values()) == 40


def test_a_sink_that_goes_away_and_comes_back_loses_nothing(tmp_path):
    url = f"file://{tmp_path}/log"
    app = make_app(url, "outage")
    sink = ListSink("db")
    data = items(300)
    source = ListSource("in", data[:100], chunk=10, follow=True)
    app.source(source, topic="t")
    app.sink("t", sink)

    async def main():
        async with app:
            await wait_for(lambda: len(sink.durable) == 100)
            await until_committed(app, "t", 100)
            sink.down = True
            source.items.extend(data[100:])
            runner = app.connectors.sinks["db"].runner
            await wait_for(lambda: runner.retries >= 3)
            before = await committed(app, "t")
            sink.down = False
            await wait_for(lambda: len(sink.durable) == 300)
            await until_committed(app, "t", 300)
            return before, runner.retries

    before, retries = run(main())
    assert sum(o or 0 for o in before.values()) == 100  # nothing committed while away
    assert retries >= 3 and sink.discards >= 1
    assert sink.durable == {item["id"]: item for item in data}


def test_a_sink_away_longer_than_retry_for_stops_the_app_with_its_offsets_uncommitted(tmp_path):
    url = f"file://{tmp_path}/log"
    app = make_app(url, "gone")
    sink = ListSink("db")
    source = ListSource("in", items(50), chunk=10, follow=True)
    app.source(source, topic="t")
    app.sink("t", sink, retry_for=0.5)

    async def main():
        async with app:
            await wait_for(lambda: len(sink.durable) == 50)
            await until_committed(app, "t", 50)
            sink.down = True
            source.items.extend(items(10, 50))
            await asyncio.wait_for(app.wait_until_stop_requested(), 20)
            reason = app.crash_reason
            offsets = await committed(app, "t")
        return reason, offsets

    reason, offsets = run(main())
    assert "unavailable" in str(reason)
    assert sum(o or 0 for o in offsets.values()) == 50
    assert len(sink.durable) == 50


def test_status_names_every_connector(tmp_path):
    app = make_app(f"file://{tmp_path}/log", "status")
    app.source(ListSource("in", items(5)), topic="t")
    app.sink("t", ListSink("db"))

    async def main():
        async with app:
            await wait_for(lambda: len(app.connectors.sinks["db"].sink.durable) == 5)
            return app.connectors.status()

    status = run(main())
    assert status["sources"]["in"]["kind"] == "source"
    assert status["sources"]["in"]["produced"] == 5
    assert status["sources"]["in"]["position"] == 5
    assert status["sinks"]["db"]["flushed"] == 5
    assert status["sinks"]["db"]["topic"] == "t"
    assert offsets_topic_name("status") == "status-connect-offsets"


def test_a_record_that_does_not_decode_goes_to_the_sinks_dead_letter_topic(tmp_path):
    url = f"file://{tmp_path}/log"
    app = make_app(url, "undecodable")
    sink = ListSink("db")
    app.sink("t", sink)

    async def main():
        async with app:
            producer = app.producer
            for value in (b'{"id": 1}', b"not json {", b'{"id": 2}'):
                await (await producer.send("t", value, key=b"k"))
            await wait_for(lambda: len(sink.durable) == 2)
            dead = await read_topic(app, "undecodable-db-dlq", 1)
            offsets = await until_committed(app, "t", 3)
        return dead, offsets

    dead, offsets = run(main())
    assert [r.value for r in dead] == [b"not json {"]
    assert sink.durable == {1: {"id": 1}, 2: {"id": 2}}
    assert sum(o or 0 for o in offsets.values()) == 3


class AckedListSource(ListSource):
    """Told by the runner when its records are durable in the log."""

    async def acknowledged(self, position):
        self.acknowledged_at.append(position)


def test_a_source_with_acknowledged_is_told_after_each_poll_once_durable(tmp_path):
    url = f"file://{tmp_path}/log"
    app = make_app(url, "acked", broker_commit_interval=3600)
    source = AckedListSource("hook", items(30), chunk=10)
    app.source(source, topic="t")

    async def main():
        async with app:
            await wait_for(lambda: len(source.acknowledged_at) == 3)
            records = await read_topic(app, "t", 30)
        return records

    records = run(main())
    assert source.acknowledged_at == [10, 20, 30]
    assert len(records) == 30


def test_sources_and_sinks_run_in_an_exactly_once_app(tmp_path):
    url = f"file://{tmp_path}/log"
    app = make_app(url, "eos", processing_guarantee="exactly_once")
    data = items(60)
    data[5] = {"id": 5, "bad": True}
    sink = ListSink("db")
    app.source(ListSource("in", data, chunk=25), topic="t")
    app.sink("t", sink)

    async def main():
        async with app:
            await wait_for(lambda: len(sink.durable) == 59)
            dead = await read_topic(app, "eos-db-dlq", 1)
            offsets = await until_committed(app, "t", 60)
        return dead, offsets

    dead, offsets = run(main())
    assert [json.loads(r.value)["id"] for r in dead] == [5]
    assert sum(o or 0 for o in offsets.values()) == 60


def test_bad_declarations_are_refused(tmp_path):
    app = make_app("memory://", "bad")
    with pytest.raises(streamlog.ImproperlyConfigured, match="letters, digits"):
        app.source(ListSource("no spaces", []), topic="t")
    with pytest.raises(streamlog.ImproperlyConfigured, match="not a streamlog Sink"):
        app.sink("t", object())
    app.sink("t", ListSink("db"))
    with pytest.raises(streamlog.ImproperlyConfigured, match="two sinks named 'db'"):
        app.sink("t", ListSink("db"))
    with pytest.raises(streamlog.ImproperlyConfigured, match="retry_for"):
        app.sink("t", ListSink("db2"), retry_for=-1)


class FlakySource(ListSource):
    """Fails once, on its ``fail_at``-th poll (its system went away): records produced
    before it and not checkpointed yet are in the log already."""

    def __init__(self, *args, fail_at: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fail_at = fail_at
        self.polls = 0

    async def poll(self):
        self.polls += 1
        if self.polls == self.fail_at:
            from streamlog.connect import SourceError

            raise SourceError("the system went away")
        return await super().poll()


def test_a_failed_source_starts_again_from_its_checkpoint_without_duplicates(tmp_path):
    url = f"file://{tmp_path}/log"
    app = make_app(url, "flaky")
    source = FlakySource("in", items(200), chunk=20, fail_at=6)
    app.source(source, topic="t", checkpoint_interval=3600)

    async def main():
        async with app:
            runner = app.connectors.sources["in"].runner
            await wait_for(lambda: runner.finished, timeout=30)
            records = await read_topic(app, "t", 200)
            return records, app.connectors.status()["sources"]["in"]

    records, status = run(main())
    assert sorted(json.loads(r.value)["id"] for r in records) == list(range(200))
    assert source.started_at == [None, None]  # no checkpoint but the first before the failure
    assert status["runner_errors"] == 1
    assert "the system went away" in status["runner_last_error"]
    assert status["matched_after_restart"] == 100  # 5 polls of 20 acknowledged, not redone


class OnceOnlySource(ListSource):
    """Hands each record over once, whatever its position says (a webhook)."""

    rereads = False


def test_a_source_that_never_rereads_is_not_matched_after_a_restart(tmp_path, caplog):
    """The first run is killed after its records were acknowledged (only the first
    checkpoint exists); the second hands over new records only: they are produced, none
    is taken for one of the first run's (no matching, no warning)."""
    url = f"file://{tmp_path}/log"

    async def main():
        transport = open_transport(url)
        await transport.start()
        try:
            admin = transport.admin()
            await admin.create_topic("t", 2, {})
            await admin.create_topic("offs", 1, {"cleanup.policy": "compact"})
            await admin.close()
            schema = Schema(value_serializer="json", key_serializer="raw")
            target = SourceTarget("t", schema.dumps_key, schema.dumps_value)
            offsets = OffsetStore(transport, "offs")
            first = OnceOnlySource("hook", items(30), chunk=10, follow=True)
            run1 = SourceRunner(
                first, target, transport=transport, offsets=offsets, checkpoint_interval=3600
            )
            task = asyncio.ensure_future(run1.run())
            await wait_for(lambda: run1.records == 30)
            consumer = transport.consumer()
            tps = [TopicPartition("t", p) for p in range(2)]
            while sum((await consumer.end_offsets(tps)).values()) < 30:  # acknowledged
                await asyncio.sleep(0.01)
            await consumer.close()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            second = OnceOnlySource("hook", items(20, 30), chunk=10)
            run2 = SourceRunner(
                second, target, transport=transport, offsets=offsets, checkpoint_interval=3600
            )
            await run2.run()
            reader = transport.consumer()
            try:
                return run2, await read_all(reader, tps)
            finally:
                await reader.close()
        finally:
            await transport.close()

    run2, records = run(main())
    assert run2.matched == 0 and run2.records == 20
    assert sorted(json.loads(r.value)["id"] for r in records) == list(range(50))
    assert "matching stops" not in caplog.text
