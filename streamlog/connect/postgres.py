"""PostgreSQL connectors (psycopg 3, the ``postgres`` extra), as the registry finds them
(``type = "postgres"``): the sink that keeps a topic as a table (``postgres_sink.py``)
and the source that polls a table by a monotonic column (``postgres_source.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamlog.connect.config_keys import ConfigKeys
from streamlog.connect.postgres_sink import PostgresSink
from streamlog.connect.postgres_source import PostgresSource

__all__ = ["PostgresSink", "PostgresSource", "sink_from_config", "source_from_config"]


def sink_from_config(name: str, config: Mapping[str, Any]) -> PostgresSink:
    """``[[sink]] type = "postgres"``: dsn, table, schema, key_column, columns, create."""
    keys = ConfigKeys(name, config)
    sink = PostgresSink(
        keys.take("dsn", str),
        keys.take("table", str),
        name=name,
        key_column=keys.take("key_column", str, "key"),
        columns=keys.take("columns", (list, dict), None),
        create=keys.take("create", bool, True),
        schema=keys.take("schema", str, None),
    )
    keys.done()
    return sink


def source_from_config(name: str, config: Mapping[str, Any]) -> PostgresSource:
    """``[[source]] type = "postgres"``: dsn, table, column, schema, key, columns, batch,
    poll_interval, delay."""
    keys = ConfigKeys(name, config)
    source = PostgresSource(
        keys.take("dsn", str),
        keys.take("table", str),
        keys.take("column", str),
        name=name,
        key=keys.take("key", str, None),
        columns=keys.take("columns", list, None),
        schema=keys.take("schema", str, None),
        batch=keys.take("batch", int, 1000),
        poll_interval=float(keys.take("poll_interval", (int, float), 1.0)),
        delay=float(keys.take("delay", (int, float), 0.0)),
    )
    keys.done()
    return source
