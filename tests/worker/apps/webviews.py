"""Web views written the way Faust's docs and examples write them (``word_count.py``,
``tabletest.py``, the user guide's "Web Views"), ported with ``import streamlog as
faust``: a table of word counts exposed with ``@app.table_route``, a page with a path
parameter, a class-based View with GET and POST, a ``@app.topic_route`` page and a plain
route added through ``app.router``.

Each answer names the worker that computed it (``web.web.url``), so a test can tell a
forwarded answer from a local one. ``WEBVIEWS_SESSION_TIMEOUT`` (seconds, default 10) is
the group session timeout: a test that kills a worker raises it so that the group keeps
the dead worker's partitions (and its URL) while the test asks for them.
"""

import os

from aiohttp import web as aioweb

import streamlog as faust
from streamlog.web import Request, Response, View

app = faust.App(
    "webviews",
    topic_partitions=4,
    broker_commit_interval=0.2,
    broker_session_timeout=float(os.environ.get("WEBVIEWS_SESSION_TIMEOUT", "10")),
    shutdown_timeout=5.0,
)

posts_topic = app.topic("posts", key_type=str, value_type=str)
word_counts = app.Table("word_counts", default=int, key_type=str, value_type=int)


@app.agent(posts_topic)
async def count_words(words):
    """Counts each word (the record's key is the word)."""
    async for word in words:
        word_counts[word] += 1


@app.page("/count/{word}/")
@app.table_route(table=word_counts, match_info="word")
async def get_count(web, request, word):
    return web.json({"word": word, "count": word_counts[word], "worker": web.web.url})


@app.page("/partition/{word}/")
@app.topic_route(topic=posts_topic, match_info="word")
async def get_partition(web, request, word):
    return web.json({"word": word, "worker": web.web.url})


@app.page("/greet/{name}/")
async def greet(self, request, name):
    return self.text(f"hello, {name}")


@app.page("/counter/")
class counter(View):  # noqa: N801 - as the user guide names it
    count: int = 0

    async def get(self, request: Request) -> Response:
        return self.json({"count": self.count, "worker": self.web.url})

    async def post(self, request: Request) -> Response:
        n = int(request.query.get("n", "1"))
        self.count += n
        return self.json({"count": self.count, "worker": self.web.url})


async def version(request):
    return aioweb.json_response({"app": app.conf.id, "pid": os.getpid()})


app.router.add_get("/version", version)
