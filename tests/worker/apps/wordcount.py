"""Word count: each line of ``words`` yields ``WORD=N`` (N: the word's count so far) to
``counts``. Counts live in memory, so a restarted worker counts from zero again: a
re-processed line shows up as an extra ``WORD=N`` line."""

import collections

from streamlog import App

app = App(
    "wordcount",
    topic_partitions=4,
    broker_commit_interval=0.2,
    shutdown_timeout=5.0,
    broker_session_timeout=6.0,
)
words = app.topic("words", value_type=str, value_serializer="raw")
counts = app.topic("counts", value_type=str, value_serializer="raw")
seen: collections.Counter[str] = collections.Counter()


@app.agent(words, sink=[counts])
async def count(stream):
    """Counts the words of each line."""
    async for line in stream:
        for word in line.split():
            seen[word] += 1
            yield f"{word}={seen[word]}"
