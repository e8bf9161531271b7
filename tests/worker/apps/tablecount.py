"""Table count: each record of ``events`` (key: a name, value: the record's id) adds one to
the key's count in the table ``counts`` and in its 10-second tumbling window of the table
``windows`` (by the record's timestamp), and writes its id to ``processed``. So
``processed`` holds an id once per processing of its record: an id there twice is a record
processed again after a crash.

``TABLECOUNT_STORE`` (default ``rocksdb://``) is the tables' store. ``TABLECOUNT_PAUSE``
(seconds, default 0) pauses the agent after every 100 records, so that a test can stop or
kill the worker part-way through a long input. ``TABLECOUNT_HOLD`` (an id) makes the
agent keep that event in hand for a second after counting it (so a commit starts while it
is in processing), then stall for good on the next event (so no commit completes after
that one): the worker's log says ``stalled at ID``. ``TABLECOUNT_ID`` (default
``tablecount``) names the app (its group and changelogs) and prefixes its two topics
(``ID-events``, ``ID-processed``), so that two runs can share a broker.
``TABLECOUNT_SESSION_TIMEOUT`` (seconds, default 10) is the group session timeout.

The windows neither close nor expire during a test: the grace and the lifetime (an hour)
dwarf the input's span of event time, and stream time moves only with events
(``idle_advance=False``), so a record re-delivered after a crash is never late.
"""

import asyncio
import os

from streamlog import App

STORE = os.environ.get("TABLECOUNT_STORE", "rocksdb://")
PAUSE = float(os.environ.get("TABLECOUNT_PAUSE", "0"))
HOLD = os.environ.get("TABLECOUNT_HOLD")
EVERY = 100
APP_ID = os.environ.get("TABLECOUNT_ID", "tablecount")
PREFIX = "" if APP_ID == "tablecount" else f"{APP_ID}-"

app = App(
    APP_ID,
    topic_partitions=4,
    store=STORE,
    broker_commit_interval=0.2,
    broker_max_poll_records=500,
    shutdown_timeout=5.0,
    broker_session_timeout=float(os.environ.get("TABLECOUNT_SESSION_TIMEOUT", "10")),
)
events = app.topic(f"{PREFIX}events", key_type=str, value_type=str, value_serializer="raw")
processed = app.topic(f"{PREFIX}processed", value_type=str, value_serializer="raw")
counts = app.Table("counts", default=int, key_type=str, value_type=int)
windows = app.Table("windows", default=int, key_type=str, value_type=int).tumbling(
    10, expires=3600, grace=3600, idle_advance=False
)


@app.agent(events, sink=[processed])
async def count(stream):
    """Counts each event under its key, overall and per window; passes its id on."""
    n = 0
    held = False
    async for key, event_id in stream.items():
        counts[key] += 1
        windows[key] += 1
        yield event_id
        n += 1
        if PAUSE and n % EVERY == 0:
            await asyncio.sleep(PAUSE)
        if held:
            print(f"stalled at {event_id}", flush=True)
            await asyncio.sleep(3600)
        if event_id == HOLD:
            held = True
            await asyncio.sleep(1.0)
