"""Shop: what ``streamlog migrate`` must find in an app without running it.

Orders (key: a customer, value: ``item``) are counted per customer in ``totals``
(RocksDB) and, re-keyed by item through a ``group_by`` repartition topic, per item in
``items`` (a memory table); a receipt per order goes to ``shop-receipts``; orders that
fail go to the agent's dead-letter topic. The in-memory channel ``shop-notes`` is no topic.
"""

from streamlog import App

app = App("shop", topic_partitions=2)
orders = app.topic("shop-orders", key_type=str, value_type=str, value_serializer="raw")
receipts = app.topic("shop-receipts", value_type=str, value_serializer="raw")
notes = app.channel(name="shop-notes")
totals = app.Table("totals", default=int, key_type=str, value_type=int)
items = app.Table("items", default=int, key_type=str, value_type=int, store="memory://")


@app.agent(orders, sink=[receipts], on_error="dlq")
async def bill(stream):
    """Counts each order under its customer and writes a receipt."""
    async for customer, item in stream.items():
        totals[customer] += 1
        yield f"{customer}:{item}"


@app.agent(orders)
async def stock(stream):
    """Counts each order under its item, on the item's partition."""
    async for item in stream.group_by(lambda value: value, name="item"):
        items[item] += 1
