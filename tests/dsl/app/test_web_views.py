"""Web views in one process: an app on ``memory://`` with its web server on a free loopback
port, asked over real HTTP (aiohttp's client). Pages with path parameters, class-based
views, plain routes, errors as JSON, the built-in routes, and ``table_route`` answered
here when this worker holds the key. Forwarding between workers is in
``test_web_routing.py`` (two apps on a real broker) and ``tests/worker/test_web.py``
(worker processes)."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

import streamlog
from streamlog.dsl.app.web import View, WebServer, gives_model, takes_model
from streamlog.dsl.app.web.server import MAX_REQUEST_BODY
from streamlog.dsl.errors import FeatureUnavailableError, ImproperlyConfigured
from tests.dsl.helpers import run, wait_for


class Order(streamlog.Record):
    item: str
    quantity: int


def declare(app_id: str, **settings: Any) -> tuple[streamlog.App, dict[str, Any]]:
    """An app with one of each kind of page; ``seen`` gathers what the agent counted."""
    app = streamlog.App(
        app_id,
        broker="memory://",
        topic_partitions=4,
        store="memory://",
        datadir="unused",
        **settings,
    )
    words = app.topic(f"{app_id}-words", key_type=str, value_type=str)
    counts = app.Table("counts", default=int, key_type=str, value_type=int)
    seen: list[str] = []

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            counts[word] += 1
            seen.append(word)

    @app.page("/hello/{name}/")
    async def hello(web, request, name):
        return web.text(f"hello {name}, {request.query.get('greeting', 'hi')}")

    @app.page("/count/{word}/")
    @app.table_route(table=counts, match_info="word")
    async def get_count(web, request, word):
        return web.json({word: counts[word], "worker": web.web.url})

    @app.page("/counter/", name="counter")
    class Counter(View):
        def __post_init__(self) -> None:
            self.count = 0

        async def get(self, request):
            return self.json({"count": self.count})

        async def post(self, request):
            body = await request.json()
            if not isinstance(body.get("by"), int):
                raise self.ValidationError("by must be an integer", field="by")
            self.count += body["by"]
            return self.json({"count": self.count}, status=201)

        async def delete(self, request):
            self.count = 0
            return self.text("", status=204)

    @app.page("/orders/")
    class Orders(View):
        @takes_model(Order)
        @gives_model(Order)
        async def post(self, request, order):
            return order.derive(quantity=order.quantity * 2)

    @app.page("/missing/{what}/")
    async def missing(web, request, what):
        raise web.NotFound(f"no {what} here", what=what)

    @app.page("/boom/")
    async def boom(web, request):
        raise RuntimeError("the view broke")

    @app.page("/nothing/")
    async def nothing(web, request):
        return {"not": "a response"}

    async def custom(request):
        return aiohttp.web.Response(text=f"custom {request.method} {request.path}")

    app.router.add_get("/custom/path", custom)
    app.router.add_post("/custom/path", custom)
    return app, {"words": words, "counts": counts, "seen": seen, "Counter": Counter}


@asynccontextmanager
async def serving(app: streamlog.App) -> AsyncIterator[tuple[WebServer, aiohttp.ClientSession]]:
    server = WebServer(app, "127.0.0.1", 0)
    await server.start()  # before the app joins its group, as the worker does
    try:
        async with app:
            async with aiohttp.ClientSession(server.url) as client:
                yield server, client
    finally:
        await server.stop()


def test_pages_views_routes_and_errors_over_http(app_id, caplog):
    app, parts = declare(app_id)

    async def body() -> None:
        async with serving(app) as (server, client):
            # a page with a path parameter (and a query string)
            async with client.get("/hello/ada/?greeting=welcome") as r:
                assert (r.status, await r.text()) == (200, "hello ada, welcome")
                assert r.content_type == "text/plain"

            # a class-based view keeps its state across requests; POST, GET, DELETE
            async with client.post("/counter/", json={"by": 3}) as r:
                assert (r.status, await r.json()) == (201, {"count": 3})
            async with client.post("/counter/", json={"by": 4}) as r:
                assert await r.json() == {"count": 7}
            async with client.get("/counter/") as r:
                assert (r.status, await r.json()) == (200, {"count": 7})
                assert r.headers["Content-Type"] == "application/json; charset=utf-8"
            async with client.head("/counter/") as r:
                assert r.status == 200 and await r.read() == b""
            async with client.put("/counter/") as r:  # not defined by the class
                assert r.status == 405
            async with client.post("/counter/", json={"by": "x"}) as r:
                assert r.status == 400
                assert await r.json() == {"error": "by must be an integer", "field": "by"}
            async with client.delete("/counter/") as r:
                assert r.status == 204
            async with client.get("/counter/") as r:
                assert await r.json() == {"count": 0}
            assert app.web.url_for("counter") == "/counter/"

            # a body read into a Record, a Record answered as JSON
            async with client.post("/orders/", json={"item": "tea", "quantity": 2}) as r:
                # Faust's json of a Record: its fields and the __faust type tag
                tag = {"ns": f"{__name__}.Order"}
                assert (r.status, await r.json()) == (
                    200,
                    {"item": "tea", "quantity": 4, "__faust": tag},
                )
            async with client.post("/orders/", data=b'{"item": 1}') as r:
                assert r.status == 400
                assert "Order" in (await r.json())["error"]

            # app.router: plain aiohttp handlers
            async with client.get("/custom/path") as r:
                assert (r.status, await r.text()) == (200, "custom GET /custom/path")
            async with client.post("/custom/path") as r:
                assert await r.text() == "custom POST /custom/path"

            # errors: a view's NotFound, an unknown path, a view that breaks
            async with client.get("/missing/cat/") as r:
                assert (r.status, await r.json()) == (404, {"error": "no cat here", "what": "cat"})
            async with client.get("/nope") as r:
                text = await r.text()
                assert r.status == 404
                assert text.startswith("404 not found: /nope\nroutes: /hello/{name}/ ")
                assert "/health" in text
            with caplog.at_level(logging.ERROR, logger="streamlog.dsl.app.web.server"):
                async with client.get("/boom/") as r:
                    assert (r.status, await r.json()) == (500, {"error": "Internal server error."})
                async with client.get("/nothing/") as r:
                    assert r.status == 500
            messages = [rec.getMessage() for rec in caplog.records]
            assert any("GET /boom/ failed" in m for m in messages), messages
            assert any("returned dict, not a response" in m for m in messages), messages
            boom = next(rec for rec in caplog.records if "GET /boom/" in rec.getMessage())
            assert boom.exc_info is not None and "the view broke" in str(boom.exc_info[1])

            # a body larger than the bound is refused before any view reads it
            async with client.post("/counter/", data=b"x" * (MAX_REQUEST_BODY + 1)) as r:
                assert r.status == 413

    run(body())


def test_table_route_answers_here_when_this_worker_holds_the_key(app_id):
    app, parts = declare(app_id)

    async def body() -> None:
        async with serving(app) as (server, client):
            for word in ["fox", "dog", "fox", "cat", "fox"]:
                await parts["words"].send(key=word, value=word)
            await wait_for(lambda: len(parts["seen"]) == 5)
            for word, expected in [("fox", 3), ("dog", 1), ("cat", 1), ("emu", 0)]:
                async with client.get(f"/count/{word}/") as r:
                    assert r.status == 200
                    assert await r.json() == {word: expected, "worker": server.url}
                    assert "X-Streamlog-Served-By" not in r.headers  # not forwarded
            # the router knows this worker holds every partition
            assert str(app.router.key_store("counts", "fox")) == server.url
            async with client.get("/router/") as r:
                changelog = app.tables["counts"].changelog_topic.name
                assert await r.json() == {server.url: {changelog: [0, 1, 2, 3]}}
            async with client.get("/router/counts/fox/") as r:
                assert await r.json() == server.url
            async with client.get("/router/nope/fox/") as r:
                assert r.status == 404

    run(body())


def test_built_in_routes(app_id):
    app, parts = declare(app_id)

    async def body() -> None:
        async with serving(app) as (server, client):
            await parts["words"].send(key="a", value="a")
            await wait_for(lambda: len(parts["seen"]) == 1)
            async with client.get("/health") as r:
                assert (r.status, r.headers["Content-Type"], await r.text()) == (
                    200,
                    "text/plain",
                    "ok\n",
                )
            async with client.get("/stats") as r:
                assert r.headers["Content-Type"] == "application/json"
                stats = await r.json()
                assert stats["app"] == app_id and stats["state"] == "running"
                assert stats["records_fetched"] == 1
            async with client.get("/metrics") as r:
                assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
                text = await r.text()
                assert f'streamlog_records_fetched_total{{app="{app_id}"}} 1.0\n' in text
            async with client.get("/") as r:
                page = await r.text()
                assert r.headers["Content-Type"] == "text/html; charset=utf-8"
                assert f"<title>{app_id} · streamlog worker</title>" in page
                assert f'<a href="{server.url}/">{server.url}</a> (this worker)' in page
                assert '<li><a href="/counter/">/counter/</a></li>' in page
                assert "<li>/hello/{name}/</li>" in page  # a path with parameters: no link
            async with client.post("/health") as r:
                assert r.status == 405
        # stopped: nothing listens any more
        async with aiohttp.ClientSession() as client:
            with pytest.raises(aiohttp.ClientConnectionError):
                async with client.get(f"{server.url}/health"):
                    pass

    run(body())


def test_health_is_503_until_the_app_has_started(app_id):
    app, _ = declare(app_id)

    async def body() -> None:
        server = WebServer(app, "127.0.0.1", 0)
        await server.start()
        try:
            async with aiohttp.ClientSession(server.url) as client:
                async with client.get("/health") as r:
                    assert (r.status, await r.text()) == (503, "not running\n")
                async with client.get("/stats") as r:
                    assert (await r.json())["state"] == "starting"
        finally:
            await server.stop()

    run(body())


def test_an_app_page_replaces_a_built_in_route_and_html_is_escaped(app_id):
    app = streamlog.App(app_id, broker="memory://", store="memory://")
    app.topic(f"{app_id}-t")

    @app.page("/stats")
    async def my_stats(web, request):
        return web.json({"mine": True})

    @app.agent(f"{app_id}-t", name="<script>alert(1)</script>")
    async def agent(stream):
        async for _ in stream:
            pass

    async def body() -> None:
        async with serving(app) as (server, client):
            async with client.get("/stats") as r:
                assert await r.json() == {"mine": True}
            async with client.get("/") as r:
                page = await r.text()
                assert "<script>alert(1)</script>" not in page
                assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page

    run(body())


def test_declaration_errors():
    app = streamlog.App("decl", broker="memory://")
    table = app.Table("t")
    with pytest.raises(TypeError, match="must subclass streamlog's View"):

        @app.page("/x/")
        class NotAView:
            pass

    with pytest.raises(TypeError, match="needs one of query_param"):
        app.table_route(table=table)
    with pytest.raises(TypeError, match="not both"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            app.table_route(table=table, shard_param="a", query_param="b")
    with pytest.warns(DeprecationWarning, match="shard_param"):
        app.table_route(table=table, shard_param="user")
    with pytest.raises(FeatureUnavailableError, match="cors_options"):

        @app.page("/cors/", cors_options={"*": object()})
        async def cors(web, request):
            return web.text("")

    @app.page("/twice/")
    async def once(web, request):
        return web.text("")

    with pytest.raises(ImproperlyConfigured, match="two routes for GET /twice/"):

        @app.page("/twice/")
        async def twice(web, request):
            return web.text("")


def test_shard_param_reads_the_query_and_a_missing_one_is_a_400(app_id):
    app = streamlog.App(app_id, broker="memory://", store="memory://", topic_partitions=2)
    table = app.Table("users", default=int, key_type=str, value_type=int)
    source = app.topic(f"{app_id}-in", key_type=str, value_type=str)
    filled: list[str] = []

    @app.agent(source)
    async def fill(stream):
        async for value in stream:
            table[value] += 10
            filled.append(value)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)

        @app.page("/user/")
        @app.table_route(table=table, shard_param="user")
        async def user(web, request):
            name = request.query["user"]
            return web.json({"user": name, "score": table[name]})

    async def body() -> None:
        async with serving(app) as (server, client):
            await source.send(key="ann", value="ann")
            await wait_for(lambda: filled == ["ann"])
            async with client.get("/user/", params={"user": "ann"}) as r:
                assert (r.status, await r.json()) == (200, {"user": "ann", "score": 10})
            async with client.get("/user/") as r:
                assert (r.status, await r.json()) == (
                    400,
                    {"error": "missing query parameter 'user'"},
                )

    run(body())


def test_web_json_encodes_records_and_builtins_through_the_apps_codec():
    app = streamlog.App("codec", broker="memory://")
    response = app.web.json({"order": Order(item="tea", quantity=1), "n": 2})
    # a nested Record carries Faust's tag, as Faust's json writes it
    tag = {"ns": f"{__name__}.Order"}
    assert json.loads(response.body) == {
        "order": {"item": "tea", "quantity": 1, "__faust": tag},
        "n": 2,
    }
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert app.web.html("<b>x</b>").headers["Content-Type"] == "text/html; charset=utf-8"
    assert app.web.bytes(b"\x00", content_type="image/png").body == b"\x00"
    assert app.web.text("t", status=201).status == 201


def test_a_server_started_after_the_app_advertises_itself_by_rejoining(app_id):
    """The worker binds before it joins; a server started later (an app run by hand)
    still gets into the directory: the conductor rejoins with the new user data."""
    app, parts = declare(app_id)
    everywhere = app.GlobalTable("everywhere", default=int, key_type=str, value_type=int)

    @app.page("/global/{key}/")
    @app.table_route(table=everywhere, match_info="key")
    async def global_value(web, request, key):
        return web.json({key: everywhere[key]})

    async def body() -> None:
        async with app:
            assert len(app.router.directory()) == 0
            server = WebServer(app, "127.0.0.1", 0)
            await server.start()
            try:
                await wait_for(lambda: len(app.router.directory()) == 1)
                [me] = app.router.directory().workers
                assert (me.url, me.id) == (server.url, server.worker_id)
                async with aiohttp.ClientSession(server.url) as client:
                    async with client.get("/count/fox/") as r:
                        assert await r.json() == {"fox": 0, "worker": server.url}
                    async with client.get("/global/k/") as r:  # a global table: always here
                        assert (r.status, await r.json()) == (200, {"k": 0})
            finally:
                await server.stop()

    run(body())


def test_canonical_url_is_what_the_worker_advertises(app_id):
    app, _ = declare(app_id, canonical_url="http://worker-7.example:6066/")

    async def body() -> None:
        server = WebServer(app, "127.0.0.1", 0)
        await server.start()
        try:
            assert server.url == "http://worker-7.example:6066"
            assert app.web.url == server.url
            async with app:
                await wait_for(lambda: len(app.router.directory()) == 1)
                assert app.router.directory().workers[0].url == "http://worker-7.example:6066"
        finally:
            await server.stop()

    run(body())
