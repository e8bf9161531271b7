"""Web views through real worker processes: two ``streamlog worker`` processes of
``apps/webviews.py`` on a real ``streamlog broker``, each with its web server on its own
loopback port, asked over HTTP (urllib). A table key is answered by the worker holding it,
forwarded from the other; pages with path parameters, a class-based View, a route added
through ``app.router``, 404s, the built-in endpoints, and a forwarding target that is down
(killed) answering a clear 503."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamlog.cli.app_loader import load_app
from streamlog.transport import open_transport
from tests.broker.brokerproc import BrokerProcess

from .workerproc import APPS, WorkerProcess, wait_until

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

WEBVIEWS = os.path.join(APPS, "webviews.py")
WORDS = [f"word{i}" for i in range(12)] * 3 + ["word0", "word5"]


def http(
    method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(url: str) -> Any:
    status, _, body = http("GET", url)
    assert status == 200, (url, status, body)
    return json.loads(body)


def web_url(worker: WorkerProcess) -> str:
    match = worker.wait_for_log(r"web endpoint on (http://127\.0\.0\.1:\d+)")
    return match.split(" on ", 1)[1]


def send_posts(bootstrap: str, words: list[str]) -> None:
    """Each word keyed by itself, encoded with the app's own serializers (so the record's
    partition is the one its table key has)."""
    schema = load_app(WEBVIEWS).topics["posts"].schema

    async def send() -> None:
        transport = open_transport(f"kafka://{bootstrap}")
        await transport.start()
        try:
            producer = transport.producer(client_id="web-tests")
            pending = [
                await producer.send("posts", schema.dumps_value(word), key=schema.dumps_key(word))
                for word in words
            ]
            await producer.flush()
            for result in pending:
                await result
            await producer.close()
        finally:
            await transport.close()

    asyncio.run(asyncio.wait_for(send(), 60))


@pytest.fixture
def broker(tmp_path):
    proc = BrokerProcess(
        str(tmp_path / "broker"), ("--group-initial-rebalance-delay-ms", "0")
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def test_two_workers_answer_each_others_keys(broker, tmp_path):
    url = f"kafka://{broker.bootstrap}"
    env = {"WEBVIEWS_SESSION_TIMEOUT": "45"}  # the killed worker stays in the group
    workers = []
    for name in ("a", "b"):
        workdir = tmp_path / name
        workdir.mkdir()
        workers.append(
            WorkerProcess(WEBVIEWS, url, str(workdir), extra_args=("--web-port", "0"), env=env)
        )
    a, b = workers
    try:
        a.start()
        url_a = web_url(a)
        b.start()
        url_b = web_url(b)

        def settled() -> dict[str, Any] | None:
            """The partition map both workers agree on, once each holds (recovered) what
            the map gives it."""
            maps = [get_json(f"{u}/router/") for u in (url_a, url_b)]
            if maps[0] != maps[1] or set(maps[0]) != {url_a, url_b}:
                return None
            for u in (url_a, url_b):
                [held] = maps[0][u].values()
                if (
                    not held
                    or get_json(f"{u}/stats")["tables"]["word_counts"]["partitions"] != held
                ):
                    return None
            return maps[0]

        mapping = wait_until(settled, 60, "both workers holding their share of the table")
        [changelog] = mapping[url_a]
        assert changelog == "webviews-word_counts-changelog"
        assert sorted(mapping[url_a][changelog] + mapping[url_b][changelog]) == [0, 1, 2, 3]

        send_posts(broker.bootstrap, WORDS)
        expected = Counter(WORDS)

        def counted() -> bool:
            return all(
                get_json(f"{url_a}/count/{word}/")["count"] == n for word, n in expected.items()
            )

        wait_until(counted, 60, "every word counted", interval=0.2)

        # every key, asked of either worker, is answered by the worker holding it
        owner = {}
        for word, n in expected.items():
            for asked in (url_a, url_b):
                status, headers, body = http("GET", f"{asked}/count/{word}/")
                answer = json.loads(body)
                assert status == 200
                assert (answer["word"], answer["count"]) == (word, n)
                owner.setdefault(word, answer["worker"])
                assert answer["worker"] == owner[word]
                served = headers.get("X-Streamlog-Served-By")
                assert served == (None if owner[word] == asked else owner[word])
            assert get_json(f"{url_b}/router/word_counts/{word}/") == owner[word]
        assert set(owner.values()) == {url_a, url_b}  # both workers hold some keys

        # the built-in interactive query: either worker gives the holder's answer
        for word, n in expected.items():
            answers = []
            for asked in (url_a, url_b):
                status, headers, body = http("GET", f"{asked}/tables/word_counts/{word}")
                assert status == 200, body
                answers.append(json.loads(body))
                served = headers.get("X-Streamlog-Served-By")
                assert served == (None if owner[word] == asked else owner[word])
            assert answers[0] == answers[1]
            answer = answers[0]
            assert answer["partition"] in mapping[owner[word]][changelog]
            assert {k: v for k, v in answer.items() if k != "partition"} == {
                "table": "word_counts",
                "key": word,
                "value": n,
                "owner": owner[word],
            }
        for asked in (url_a, url_b):
            status, _, body = http("GET", f"{asked}/tables/word_counts/never-posted")
            assert status == 404, body
            assert "holds no key 'never-posted'" in json.loads(body)["error"]
            status, _, body = http("GET", f"{asked}/tables/nope/word0")
            assert (status, json.loads(body)["error"]) == (
                404,
                "no table named 'nope' (tables: word_counts)",
            )

        # /metrics of both workers: every event taken once, by the one agent
        events_in = 0
        for u in (url_a, url_b):
            status, _, body = http("GET", f"{u}/metrics")
            for family in text_string_to_metric_families(body.decode()):
                for sample in family.samples:
                    if sample.name == "streamlog_events_in_total":
                        assert sample.labels["topic"] == "posts"
                        assert sample.labels["agent"] == "webviews.count_words"
                        events_in += int(sample.value)
        assert events_in == len(WORDS)

        # topic_route: the partition of "posts" a key goes to is held by the same worker
        for word in expected:
            assert get_json(f"{url_b}/partition/{word}/")["worker"] == owner[word]

        # a page with a path parameter; a class-based View with GET and POST
        assert http("GET", f"{url_a}/greet/ada/")[::2] == (200, b"hello, ada")
        assert http("POST", f"{url_a}/counter/?n=2")[0] == 200
        assert get_json(f"{url_a}/counter/") == {"count": 2, "worker": url_a}
        status, _, body = http("POST", f"{url_b}/counter/")
        assert (status, json.loads(body)) == (200, {"count": 1, "worker": url_b})
        assert http("PUT", f"{url_a}/counter/")[0] == 405

        # a route added through app.router
        assert get_json(f"{url_a}/version") == {"app": "webviews", "pid": a.process.pid}

        # 404s
        status, _, body = http("GET", f"{url_a}/nope")
        assert status == 404 and body.startswith(b"404 not found: /nope\nroutes: ")
        assert http("GET", f"{url_a}/count/")[0] == 404

        # the endpoints from before
        status, headers, body = http("GET", f"{url_b}/health")
        assert (status, headers["Content-Type"], body) == (200, "text/plain", b"ok\n")
        stats = get_json(f"{url_b}/stats")
        assert stats["app"] == "webviews" and stats["state"] == "running"
        assert sum(get_json(f"{u}/stats")["records_fetched"] for u in (url_a, url_b)) == len(WORDS)
        status, headers, body = http("GET", f"{url_a}/metrics")
        assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert re.search(rb'^streamlog_records_fetched_total\{app="webviews"\} \d+\.0$', body, re.M)

        # the worker holding a key is killed: the request forwarded to it gets a clear 503
        b_word = next(word for word, u in owner.items() if u == url_b)
        assert b.process is not None
        b.process.send_signal(signal.SIGKILL)
        b.wait(10)
        status, headers, body = http("GET", f"{url_a}/count/{b_word}/")
        assert status == 503, body
        assert headers["Content-Type"] == "application/json; charset=utf-8"
        error = json.loads(body)["error"]
        assert f"is held by the worker at {url_b}, which cannot be reached" in error, error
        a_word = next(word for word, u in owner.items() if u == url_a)
        assert get_json(f"{url_a}/count/{a_word}/")["count"] == expected[a_word]

        assert a.stop() == 0, a.logs()
    finally:
        for worker in workers:
            worker.kill()
    assert "Traceback" not in a.logs()
