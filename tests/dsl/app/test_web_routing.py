"""Two workers of one app in one process, on a real ``streamlog broker``, each with its web
server on loopback: a request for a key is answered by the worker holding it, forwarded
from the other (method, path, query and body kept), and the ways it cannot be: a request
already forwarded once, and a holder whose server is down (503 naming it)."""

from __future__ import annotations

from collections import Counter

import aiohttp
import pytest

import streamlog
from streamlog.dsl.app.web import View, WebServer
from streamlog.dsl.app.web.forwarding import ROUTED_HEADER, SERVED_HEADER
from streamlog.transport import partition_for_key
from tests.dsl.helpers import run, wait_for

pytestmark = pytest.mark.timeout(120)

WORDS = [f"w{i}" for i in range(16)] * 2 + ["w0", "w1", "w2"]


def make(app_id: str, url: str, datadir: str, seen: list[str]) -> streamlog.App:
    app = streamlog.App(
        app_id,
        broker=url,
        topic_partitions=4,
        store="memory://",
        datadir=datadir,
        broker_commit_interval=0.2,
        broker_session_timeout=6.0,
    )
    words = app.topic(f"{app_id}-words", key_type=str, value_type=str)
    counts = app.Table("counts", default=int, key_type=str, value_type=int)

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            counts[word] += 1
            seen.append(word)

    @app.page("/count/{word}/")
    @app.table_route(table=counts, match_info="word")
    async def get_count(web, request, word):
        return web.json({"word": word, "count": counts[word], "worker": web.web.url})

    @app.page("/echo/{word}/")
    class Echo(View):
        @app.table_route(table=counts, match_info="word")
        async def post(self, request, word):
            return self.json(
                {"body": await request.json(), "q": request.query.get("q"), "worker": self.web.url},
                status=202,
                headers={"X-Echo": word},
            )

    @app.page("/partition/{word}/")
    @app.topic_route(topic=words, match_info="word")
    async def partition(web, request, word):
        return web.json({"word": word, "worker": web.web.url})

    return app


def holders(app: streamlog.App) -> dict[int, str]:
    """Table partition -> the URL of the worker the app's directory says holds it."""
    leader = app.leader_topic_name
    return {
        n: worker.url
        for worker in app.router.directory().workers
        for n in worker.table_partitions(leader)
    }


def test_a_key_is_answered_by_the_worker_holding_it(dsl_broker, app_id, tmp_path):
    url = f"kafka://{dsl_broker.bootstrap}"
    seen: list[str] = []
    a = make(app_id, url, str(tmp_path / "a"), seen)
    b = make(app_id, url, str(tmp_path / "b"), seen)
    server_a, server_b = WebServer(a, "127.0.0.1", 0), WebServer(b, "127.0.0.1", 0)

    def settled() -> bool:
        """Both directories agree, every table partition has a holder, and each worker
        holds (recovered) what the directory gives it."""
        view_a, view_b = holders(a), holders(b)
        if view_a != view_b or sorted(view_a) != [0, 1, 2, 3]:
            return False
        if set(view_a.values()) != {server_a.url, server_b.url}:
            return False
        for app, server in ((a, server_a), (b, server_b)):
            mine = sorted(n for n, u in view_a.items() if u == server.url)
            if app.tables["counts"].active_partitions != mine:
                return False
        return True

    async def body() -> None:
        await server_a.start()
        await a.start()
        await server_b.start()
        await b.start()
        try:
            await wait_for(settled, timeout=60)
            words = a.topics[f"{app_id}-words"]
            for word in WORDS:
                await words.send(key=word, value=word)
            await wait_for(lambda: len(seen) == len(WORDS), timeout=30)
            expected = Counter(WORDS)
            owners = holders(a)
            table = a.tables["counts"]
            forwarded = 0
            async with aiohttp.ClientSession() as client:
                for word, count in sorted(expected.items()):
                    holder = owners[_partition(a, word)]
                    for asked in (server_a, server_b):
                        async with client.get(f"{asked.url}/count/{word}/") as r:
                            assert r.status == 200, await r.text()
                            assert await r.json() == {
                                "word": word,
                                "count": count,
                                "worker": holder,
                            }
                            if holder == asked.url:
                                assert SERVED_HEADER not in r.headers
                            else:
                                assert r.headers[SERVED_HEADER] == holder
                                forwarded += 1
                assert forwarded == len(expected)  # each word is held by one of the two

                # a POST with a body and a query string, forwarded whole
                b_word = next(w for w in expected if holders(a)[_partition(a, w)] == server_b.url)
                async with client.post(
                    f"{server_a.url}/echo/{b_word}/?q=yes", json={"n": [1, 2]}
                ) as r:
                    assert r.status == 202
                    echoed = {"body": {"n": [1, 2]}, "q": "yes", "worker": server_b.url}
                    assert await r.json() == echoed
                    assert r.headers["X-Echo"] == b_word
                    assert r.headers[SERVED_HEADER] == server_b.url

                # topic_route: the worker holding the words topic's partition of the key
                for word in expected:
                    async with client.get(f"{server_a.url}/partition/{word}/") as r:
                        assert (await r.json())["worker"] == owners[_partition(a, word)]

                # the router's pages: which worker holds which changelog partitions
                changelog = table.changelog_topic.name
                async with client.get(f"{server_b.url}/router/") as r:
                    mapping = await r.json()
                assert mapping == {
                    server.url: {changelog: sorted(n for n, u in owners.items() if u == server.url)}
                    for server in (server_a, server_b)
                }
                async with client.get(f"{server_a.url}/router/counts/{b_word}/") as r:
                    assert await r.json() == server_b.url

                # a request already forwarded once is not forwarded again
                async with client.get(
                    f"{server_a.url}/count/{b_word}/", headers={ROUTED_HEADER: "http://x:1"}
                ) as r:
                    assert r.status == 503
                    error = (await r.json())["error"]
                    assert "the worker at http://x:1 sent this request here" in error

                # the holder's web server is down: a clear 503 naming it
                await server_b.stop()
                async with client.get(f"{server_a.url}/count/{b_word}/") as r:
                    assert r.status == 503
                    error = (await r.json())["error"]
                    assert error.startswith(
                        f"key '{b_word}' (partition {_partition(a, b_word)} of table 'counts') "
                        f"is held by the worker at {server_b.url}, which cannot be reached: "
                    ), error
                # ...while the keys held here are still answered
                a_word = next(w for w in expected if owners[_partition(a, w)] == server_a.url)
                async with client.get(f"{server_a.url}/count/{a_word}/") as r:
                    assert (await r.json())["count"] == expected[a_word]
        finally:
            await server_a.stop()
            await server_b.stop()
            await b.stop()
            await a.stop()

    run(body(), timeout=100)


def _partition(app: streamlog.App, word: str) -> int:
    """The partition that holds ``word``'s count: a table declared the Faust way keeps a
    key in the partition of the events that wrote it, the word's partition of the topic
    (its own key bytes, not the table's json)."""
    words = app.topics[f"{app.conf.name}-words"]
    return partition_for_key(words.schema.dumps_key(word), 4)
