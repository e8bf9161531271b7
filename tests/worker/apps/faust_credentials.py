"""A Faust program that logs in the Faust way: ``broker_credentials=faust.SASLCredentials``
with an ``ssl_context`` (so SASL over TLS on a ``kafka://`` URL, as Faust does). Each
line of ``faust-words`` yields ``WORD=N`` to ``faust-counts``.

From the environment: ``CREDS_BROKER`` (kafka://HOST:PORT), ``CREDS_CAFILE`` (the CA the
broker's certificate is signed by), ``CREDS_USER``, ``CREDS_PASSWORD``,
``CREDS_MECHANISM``.
"""

import collections
import os
import ssl

import faust

context = ssl.create_default_context(cafile=os.environ["CREDS_CAFILE"])
app = faust.App(
    "faust-credentials",
    broker=os.environ["CREDS_BROKER"],
    broker_credentials=faust.SASLCredentials(
        username=os.environ["CREDS_USER"],
        password=os.environ["CREDS_PASSWORD"],
        mechanism=os.environ["CREDS_MECHANISM"],
        ssl_context=context,
    ),
    topic_partitions=2,
    broker_commit_interval=0.2,
    shutdown_timeout=5.0,
    broker_session_timeout=6.0,
)
words = app.topic("faust-words", value_type=str, value_serializer="raw")
counts = app.topic("faust-counts", value_type=str, value_serializer="raw")
seen: collections.Counter[str] = collections.Counter()


@app.agent(words, sink=[counts])
async def count(stream):
    """Counts the words of each line."""
    async for line in stream:
        for word in line.split():
            seen[word] += 1
            yield f"{word}={seen[word]}"
