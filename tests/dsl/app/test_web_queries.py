"""Interactive queries (``GET /tables/{table}/{key}``) and ``/metrics`` in one process: an
app on ``memory://`` with its web server on a free loopback port, asked over real HTTP.
A known workload goes in (100 events), then the answers are checked: values, partitions,
owner, windows, the 400/404 answers, and the Prometheus exposition parsed with
``prometheus_client``'s own parser. Two worker processes answering each other's keys are
in ``tests/worker/test_web.py``."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any
from urllib.parse import quote

from prometheus_client.parser import text_string_to_metric_families

import streamlog
from streamlog.transport.types import TopicPartition
from tests.dsl.app.test_web_views import serving
from tests.dsl.helpers import run, wait_for

HOUR_MS = 3600 * 1000
WORDS = [f"w{i % 7}" for i in range(100)]


def declare(app_id: str) -> tuple[streamlog.App, dict[str, Any]]:
    app = streamlog.App(
        app_id,
        broker="memory://",
        topic_partitions=4,
        store="memory://",
        datadir="unused",
        broker_commit_interval=0.05,
    )
    words = app.topic(f"{app_id}-words", key_type=str, value_type=str)
    echoed = app.topic(f"{app_id}-echoed", key_type=str, value_type=str)
    counts = app.Table("counts", default=int, key_type=str, value_type=int)
    numbers = app.Table("numbers", default=int, key_type=int, value_type=int)
    untyped = app.Table("untyped", default=int)
    hourly = app.Table("hourly", default=int, key_type=str, value_type=int).tumbling(
        3600, expires=3600
    )
    seen: list[str] = []

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            counts[word] += 1
            hourly[word] += 1
            untyped[word] += 1
            numbers[int(word[1:])] += 1  # "w3" -> 3: in the partition of its events
            if word == "w0":
                await echoed.send(key=word, value=word)
            seen.append(word)

    return app, {"words": words, "seen": seen}


def metrics_of(text: str) -> dict[str, Any]:
    """Every sample of the exposition: (name, sorted labels without app) -> value."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "app"))
            samples[(sample.name, labels)] = sample.value
    return samples


def test_table_queries_and_metrics(app_id, monkeypatch):
    from streamlog.dsl.runtime import conductor as conductor_module

    app, parts = declare(app_id)
    now_ms = int(time.time() * 1000)
    old_ms = now_ms - 5 * HOUR_MS  # stamped in a window expired once the others arrive
    # the batches handed to the agent (its only reader), counted where the conductor
    # makes them: the processing-latency histogram has one observation per batch
    handed: list[object] = []

    class CountedBatch(conductor_module.Batch):  # type: ignore[misc, name-defined]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            handed.append(self)

    monkeypatch.setattr(conductor_module, "Batch", CountedBatch)

    async def body() -> None:
        async with serving(app) as (server, client):
            for word in WORDS:
                await parts["words"].send(key=word, value=word, timestamp=now_ms / 1000)
            await wait_for(lambda: len(parts["seen"]) == 100)
            await parts["words"].send(key="w99", value="w99", timestamp=old_ms / 1000)
            await wait_for(lambda: len(parts["seen"]) == 101)
            await wait_for(lambda: app.conductor.commits >= 1)
            expected = Counter(WORDS)

            # a plain table, string keys as they are
            for word, n in expected.items():
                async with client.get(f"/tables/counts/{word}") as r:
                    assert r.status == 200, await r.text()
                    answer = await r.json()
                partition = answer.pop("partition")
                assert partition in app.tables["counts"].active_partitions
                assert answer == {"table": "counts", "key": word, "value": n, "owner": server.url}
            # int keys: the number; untyped (JSON) keys: the JSON text, or a bare string
            async with client.get("/tables/numbers/2") as r:
                assert (await r.json())["value"] == expected["w2"]
            async with client.get(f"/tables/untyped/{quote(chr(34) + 'w3' + chr(34))}") as r:
                assert (await r.json())["value"] == expected["w3"]
            async with client.get("/tables/untyped/w3") as r:
                assert (await r.json())["value"] == expected["w3"]

            # a windowed table: the current window (the app clock's now), or ?window=
            async with client.get(f"/tables/hourly/w1?window={now_ms}") as r:
                answer = await r.json()
            start = now_ms - now_ms % HOUR_MS
            assert answer["value"] == expected["w1"]
            assert answer["window"] == {"start": start, "end": start + HOUR_MS}
            assert answer["time"] == now_ms
            iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now_ms / 1000))
            async with client.get(f"/tables/hourly/w1?window={iso}") as r:
                assert (await r.json())["window"] == {"start": start, "end": start + HOUR_MS}
            async with client.get("/tables/hourly/w1") as r:
                answer = await r.json()
            # now is the events' window unless the hour turned since they were sent
            if answer["time"] - answer["time"] % HOUR_MS == start:
                assert (r.status, answer["value"]) == (200, expected["w1"])
            else:
                assert r.status == 404

            # what cannot be answered
            async with client.get("/tables/nope/w1") as r:
                assert r.status == 404
                assert (await r.json())["error"].startswith("no table named 'nope' (tables: ")
            async with client.get("/tables/counts/never-seen") as r:
                assert r.status == 404
                assert "holds no key 'never-seen'" in (await r.json())["error"]
            async with client.get("/tables/numbers/two") as r:
                assert r.status == 400
                assert "cannot be decoded for table 'numbers'" in (await r.json())["error"]
            async with client.get(f"/tables/hourly/w1?window={now_ms - 10 * HOUR_MS}") as r:
                assert r.status == 404
            async with client.get("/tables/hourly/w1?window=yesterday") as r:
                assert r.status == 400
            async with client.get("/tables/counts/w1?window=1") as r:
                assert r.status == 400

            # /metrics: prometheus_client's parser reads it; the values are the workload's
            async with client.get("/metrics") as r:
                assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
                samples = metrics_of(await r.text())
            agent = next(iter(app.agents))
            words_topic = f"{app_id}-words"
            assert samples[("streamlog_records_fetched_total", ())] == 101
            assert (
                samples[("streamlog_events_in_total", (("agent", agent), ("topic", words_topic)))]
                == 101
            )
            assert (
                samples[
                    (
                        "streamlog_events_out_total",
                        (("agent", agent), ("topic", f"{app_id}-echoed")),
                    )
                ]
                == expected["w0"]
            )
            assert samples[("streamlog_agent_errors_total", (("agent", agent),))] == 0
            assert samples[("streamlog_late_events_total", (("table", "hourly"),))] == 1
            assert samples[("streamlog_rebalances_total", ())] >= 1
            assert samples[("streamlog_commits_total", ())] >= 1
            assert samples[("streamlog_commit_latency_seconds_count", ())] >= 1
            batches = samples[("streamlog_processing_latency_seconds_count", (("agent", agent),))]
            assert batches == len(handed) >= 2  # at least the 100, then the late one
            inf = (("agent", agent), ("le", "+Inf"))
            assert samples[("streamlog_processing_latency_seconds_bucket", inf)] == batches
            assert samples[("streamlog_table_partitions", (("table", "counts"),))] == 4
            for number in range(4):
                labels = (("partition", str(number)), ("table", "counts"))
                # a new table: nothing to replay, recovery complete at 0 of 0
                assert samples[("streamlog_recovery_replayed_records", labels)] == 0
                assert samples[("streamlog_recovery_target_records", labels)] == 0
            lag_labels = (("partition", "0"), ("topic", words_topic))
            assert ("streamlog_consumer_lag", lag_labels) in samples

    run(body())


def test_recovery_progress_after_a_restart(app_id, tmp_path):
    """An app on a ``file://`` log with in-memory stores counts words and stops; the same
    app started again rebuilds its table from the changelog: the recovery gauges say how
    many offsets each partition replayed, out of how many, and ``/tables/`` answers the
    recovered values."""
    broker = f"file://{tmp_path / 'log'}"

    def make() -> tuple[streamlog.App, Any, list[str]]:
        app = streamlog.App(
            app_id, broker=broker, topic_partitions=2, store="memory://", datadir="unused"
        )
        words = app.topic(f"{app_id}-words", key_type=str, value_type=str)
        counts = app.Table("counts", default=int, key_type=str, value_type=int)
        seen: list[str] = []

        @app.agent(words)
        async def count(stream):
            async for word in stream:
                counts[word] += 1
                seen.append(word)

        return app, words, seen

    async def first() -> None:
        app, words, seen = make()
        async with app:
            for word in WORDS:
                await words.send(key=word, value=word)
            await wait_for(lambda: len(seen) == 100)

    ends: dict[TopicPartition, int] = {}

    async def second() -> None:
        app, _, _ = make()
        async with serving(app) as (_, client):
            changelog = app.tables["counts"].changelog_topic.name
            consumer = app.transport.consumer()
            try:
                tps = [TopicPartition(changelog, p) for p in (0, 1)]
                ends.update(await consumer.end_offsets(tps))
            finally:
                await consumer.close()
            async with client.get("/metrics") as r:
                samples = metrics_of(await r.text())
            for word, n in Counter(WORDS).items():
                async with client.get(f"/tables/counts/{word}") as r:
                    assert (await r.json())["value"] == n
        replayed = {
            labels: value
            for (name, labels), value in samples.items()
            if name == "streamlog_recovery_replayed_records"
        }
        target = {
            labels: value
            for (name, labels), value in samples.items()
            if name == "streamlog_recovery_target_records"
        }
        assert set(replayed) == {(("partition", p), ("table", "counts")) for p in ("0", "1")}
        assert replayed == target  # every partition replayed to its end
        # the target is each changelog partition's end (written since offset 0)
        assert {labels[0][1]: value for labels, value in target.items()} == {
            str(tp.partition): end for tp, end in ends.items()
        }
        assert sum(ends.values()) >= len(set(WORDS))  # every key written at least once
        recovered = samples[("streamlog_recovered_records_total", (("table", "counts"),))]
        assert recovered == sum(ends.values())

    run(first())
    run(second())
