#!/usr/bin/env python
"""Counts the words of posts: Faust's examples/word_count.py, kept to what the tests check,
written for Faust (``import faust``) and run unchanged by streamlog."""

import faust
from faust import StreamT
from faust.cli import option
from faust.types import ChannelT

POSTS = ["the quick brown fox", "the lazy dog", "the fox"]

app = faust.App("word-counts", topic_partitions=4)

posts_topic = app.topic("posts", value_type=str)
words_topic = app.topic("words", key_type=str, value_type=str)
totals_topic = app.topic("word-totals", value_type=str)
word_counts = app.Table("word_counts", default=int, help="Keep count of words (str to int).")


@app.agent(posts_topic)
async def shuffle_words(posts: StreamT[str]) -> None:
    async for post in posts:
        for word in post.split():
            await words_topic.send(key=word, value=word)


async def report(channel: ChannelT, word: str, count: int) -> None:
    await channel.send(value=f"{word}={count}")


@app.agent(words_topic)
async def count_words(words: StreamT[str]) -> None:
    """Count words from blog post article body."""
    async for word in words:
        word_counts[word] += 1
        await report(totals_topic, word, word_counts[word])


@app.command(option("--times", type=int, default=1, help="Send each post this many times."))
async def post(self, times: int) -> None:
    """Send the example posts."""
    for _ in range(times):
        for text in POSTS:
            await posts_topic.send(value=text)
    self.say(f"sent {times * len(POSTS)} posts")


if __name__ == "__main__":
    app.main()
