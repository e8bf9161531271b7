"""Joins with Kafka Streams' semantics: stream-table, stream-stream (windowed), table-table.

One constructor-level API for all three, which declares what a join needs (agents,
tables, repartition and output topics) on the app before ``app.start()``, through the
app's public methods (``app.agent``, ``app.Table``, ``app.topic``)::

    join(app, left, right, *, kind="inner", window=None, grace=0, key=None,
         joiner=None, to=None, name=None, **options) -> StreamTableJoin
                                                        | StreamStreamJoin
                                                        | TableTableJoin

Which join it is follows from the arguments, as in Kafka Streams' DSL:

* ``window`` given: a **stream-stream** join of two topics (``StreamStreamJoin``);
* ``left`` a topic and ``right`` a table object (``app.Table``, ``app.GlobalTable``, any
  object with ``get``): a **stream-table** join (``StreamTableJoin``);
* ``right`` a topic, or ``left`` a Table: a **table-table** join of two tables' update
  streams (``TableTableJoin``; a Table is read through its changelog topic).

``joiner(left, right)`` makes each result (default: the pair); results go to ``to`` (a
topic, topic name, channel, agent or callable, or a list of them) with the record key.
Each join counts what it did in ``join.stats`` (records, results, unmatched results,
null keys, null values, late records).

Inside an agent, ``join_stream_table(stream, table, kind=...)`` enriches a stream
without declaring anything. The semantics of each kind are in its module's docstring:
``joins_stream_table``, ``joins_stream_stream``/``joins_window_state``,
``joins_table_table``; docs/joins.md has them for people.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamlog.dsl.agents.topics import Topic
from streamlog.dsl.errors import ImproperlyConfigured
from streamlog.dsl.joins.common import (
    JOIN_KINDS,
    AppJoin,
    CoPartitioningError,
    Joiner,
    JoinError,
    JoinKind,
    JoinStats,
    Outputs,
    default_joiner,
)
from streamlog.dsl.joins.stream_stream import Seconds, StreamStreamJoin, WindowArg, join_window
from streamlog.dsl.joins.stream_table import StreamTableJoin, join_stream_table
from streamlog.dsl.joins.table_table import TableTableJoin
from streamlog.dsl.joins.window_state import JoinWindow
from streamlog.dsl.tables.table import Table

if TYPE_CHECKING:
    from streamlog.dsl.joins.host import JoinHost

__all__ = [
    "JOIN_KINDS",
    "AppJoin",
    "CoPartitioningError",
    "JoinError",
    "JoinKind",
    "JoinStats",
    "JoinWindow",
    "Joiner",
    "StreamStreamJoin",
    "StreamTableJoin",
    "TableTableJoin",
    "default_joiner",
    "join",
    "join_stream_table",
    "join_window",
]


def join(
    app: JoinHost,
    left: Topic | str | Table,
    right: Topic | str | Any,
    *,
    kind: str = "inner",
    window: WindowArg | None = None,
    grace: Seconds = 0,
    key: Any = None,
    joiner: Joiner | None = None,
    to: Outputs = None,
    name: str | None = None,
    **options: Any,
) -> StreamTableJoin | StreamStreamJoin | TableTableJoin:
    """Declare a join on ``app`` (module docstring); returns the join object.

    ``options`` go to the join class: ``on_late`` and ``store`` (stream-stream),
    ``repartition`` (stream-table), ``value_type``, ``value_serializer`` and ``store``
    (table-table).
    """
    if window is not None:
        if key is not None:
            raise ImproperlyConfigured(
                "stream-stream join: key= is not supported; re-key the streams first "
                "(group_by) so both are keyed and partitioned by the join key"
            )
        if isinstance(left, Table) or isinstance(right, Table):
            raise ImproperlyConfigured("a windowed join joins two streams (topics), not tables")
        return StreamStreamJoin(
            app,
            left,
            right,
            window=window,
            kind=kind,
            grace=grace,
            joiner=joiner,
            to=to,
            name=name,
            **options,
        )
    if grace:
        raise ImproperlyConfigured("grace= needs window= (a stream-stream join)")
    if not isinstance(right, Topic | str) and not isinstance(left, Table):
        return StreamTableJoin(
            app, left, right, kind=kind, key=key, joiner=joiner, to=to, name=name, **options
        )
    if key is not None:
        raise ImproperlyConfigured("table-table join: key= is not supported (primary-key join)")
    return TableTableJoin(app, left, right, kind=kind, joiner=joiner, to=to, name=name, **options)
