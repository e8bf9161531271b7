"""A Faust word count, written the way Faust's examples write it (``examples/word_count.py``):
posts are split into words, sent keyed by the word, and counted in a table; a second table
keeps each word's count as a Record, with no value_type declared.

The migration test (``tests/dsl/tables/test_faust_changelog.py``) runs this very file with
faust-streaming (``python wordcount.py worker``) and then with ``streamlog worker
wordcount.py`` against the same broker. A timer writes both tables to ``WC_DUMP`` as
JSON, so the test can compare what each framework holds.
"""

import json
import os

import faust


class Count(faust.Record):
    word: str
    count: int


app = faust.App(
    os.environ["WC_APP_ID"],
    broker=os.environ["WC_BROKER"],
    store="memory://",
    datadir=os.environ["WC_DATADIR"],
    topic_partitions=2,
    broker_commit_interval=0.5,
    web_enabled=False,
)

posts_topic = app.topic(os.environ["WC_APP_ID"] + "-posts", value_type=str)
words_topic = app.topic(os.environ["WC_APP_ID"] + "-words", value_type=str)
word_counts = app.Table("word_counts", default=int, help="Keep count of words (str to int).")
latest = app.Table("latest", help="Each word's count as a Record (no value_type).")


@app.agent(posts_topic)
async def shuffle_words(posts):
    async for post in posts:
        for word in post.split():
            await words_topic.send(key=word, value=word)


@app.agent(words_topic)
async def count_words(words):
    async for word in words:
        word_counts[word] += 1
        latest[word] = Count(word=word, count=word_counts[word])


@app.timer(0.3)
async def dump():
    counts = {word: count for word, count in word_counts.items()}
    records = {word: [type(value).__name__, value.count] for word, value in latest.items()}
    path = os.environ["WC_DUMP"]
    with open(path + ".tmp", "w") as f:
        json.dump({"word_counts": counts, "latest": records}, f, sort_keys=True)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    app.main()
