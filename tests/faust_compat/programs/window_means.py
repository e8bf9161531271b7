"""Mean reading per 10 s window, written as Faust programs keep windowed lists: a table
whose values are lists of Records (``default=list``), read back and extended per event,
and a two-argument ``on_window_close`` that sends a summary with ``send_soon``."""

from datetime import datetime, timedelta

import faust


class Reading(faust.Record):
    date: datetime
    value: float


class Summary(faust.Record):
    start: float
    count: int
    mean: float


app = faust.App("window-means", topic_partitions=1)
readings_topic = app.topic("readings", value_type=Reading)
summaries_topic = app.topic("summaries", value_type=Summary)


def summarise(key, readings):
    start = key[1][0]  # Faust's window: (start, end) in float seconds
    values = [reading.value for reading in readings]
    summaries_topic.send_soon(
        value=Summary(start=start, count=len(values), mean=sum(values) / len(values))
    )


windows = (
    app.Table("readings_by_window", default=list, on_window_close=summarise)
    .tumbling(10, expires=timedelta(seconds=1))
    .relative_to_field(Reading.date)
)


@app.agent(readings_topic)
async def collect(readings):
    async for reading in readings:
        kept = windows["all"].value()
        kept.append(reading)
        windows["all"] = kept
