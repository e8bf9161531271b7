"""Scale-out: a keyed stream of per-key sequence numbers (record key: the key, value: the
event's sequence number within its key, as ``loadgen.py`` writes them with ``KEYS``).
Each event is counted under its key in the table ``counts``; the table ``max_seq`` keeps
the highest sequence number seen per key, and the table ``applied`` the sequence numbers
counted, in the order counted (space-separated): what a key's count is made of, so a
test tells an event counted twice from two events. Each processing writes one record to
``scaleout-out``, keyed by the key, value ``KEY SEQ WORKER COUNT``: the worker that
processed it (``SCALEOUT_WORKER``) and the key's count just after. A key's outputs, in
offset order, are thus the history of its processing, whichever workers did it.
``tests/worker/test_scale_out.py`` reads them back.

Settings are those of a test that must see kills and joins quickly: the broker's
shortest session (6 s), commits every 0.2 s, the input's 8 partitions.
"""

import os

from streamlog import App

WORKER = os.environ.get("SCALEOUT_WORKER", "?")

app = App(
    "scaleout",
    topic_partitions=8,
    store=os.environ.get("SCALEOUT_STORE", "rocksdb://"),
    broker_commit_interval=0.2,
    broker_session_timeout=6.0,
    broker_heartbeat_interval=0.5,
    broker_max_poll_records=100,
    shutdown_timeout=10.0,
)
events = app.topic("keyed", key_type=str, value_type=str, value_serializer="raw")
outputs = app.topic("scaleout-out", key_type=str, value_type=str, value_serializer="raw")
counts = app.Table("counts", default=int, key_type=str, value_type=int)
max_seq = app.Table("max_seq", default=int, key_type=str, value_type=int)
# the sequence numbers counted, in the order counted: which events the count holds
applied = app.Table("applied", default=str, key_type=str, value_type=str)


@app.agent(events)
async def count(stream):
    """Counts each event under its key, keeps the key's highest sequence number, and
    writes what it did."""
    async for key, value in stream.items():
        seq = int(value)
        counts[key] += 1
        if key not in max_seq or seq > max_seq[key]:
            max_seq[key] = seq
        applied[key] = f"{applied[key]} {seq}".lstrip()
        await outputs.send(key=key, value=f"{key} {seq} {WORKER} {counts[key]}")
