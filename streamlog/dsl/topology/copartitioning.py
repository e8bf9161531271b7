"""Tables must be co-partitioned with the topics their agents update them from.

Table partition N holds the keys of input partition N only when both have the same count
(and keys are hashed the same way): otherwise the worker owning an input partition
writes keys whose table partition another worker owns. Checked when the app starts,
naming the table, its changelog, the agent and the topic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamlog.dsl.agents.topics import Topic
from streamlog.dsl.errors import ImproperlyConfigured
from streamlog.dsl.tables.kinds import GlobalTable
from streamlog.dsl.tables.table import Table
from streamlog.dsl.topology.probe import referenced_objects

if TYPE_CHECKING:
    from streamlog.dsl.topology.host import TopologyHost
    from streamlog.transport.base import Admin

__all__ = ["check_copartitioning"]


async def check_copartitioning(app: TopologyHost, admin: Admin) -> None:
    """``ImproperlyConfigured`` for the first table whose partition count differs from
    the topic an agent updates it from.

    Which tables an agent updates is read from the names its code refers to (as
    ``app.topology()`` does); agents reading through ``group_by``/``through`` are checked
    against the topic they end up reading. Global tables hold every partition anywhere.
    """
    by_id = {id(t): t for t in app.tables.values() if not isinstance(t, GlobalTable)}
    if not by_id:
        return
    counts: dict[str, int] = {}
    for agent in app.agents.values():
        tables: list[Table] = []
        for obj in referenced_objects(agent.fun):
            # not ``a or b``: an empty table is falsy (it has a __len__)
            table = by_id.get(id(obj))
            if table is None:
                table = by_id.get(id(getattr(obj, "table", None)))
            if table is not None:
                tables.append(table)
        if not tables:
            continue
        source = agent.reading()
        if not isinstance(source, Topic):
            continue
        if source.name not in counts:
            info = await admin.describe_topic(source.name)
            counts[source.name] = len(info.partitions)
        for table in tables:
            if counts[source.name] != table.partitions:
                raise ImproperlyConfigured(
                    f"table {table.name!r} ({table.partitions} partitions, changelog "
                    f"{table.changelog_topic.name}) is updated by agent {agent.name} from "
                    f"topic {source.name!r}, which has {counts[source.name]} partitions: "
                    "they must be co-partitioned; give the table partitions="
                    f"{counts[source.name]} or re-key the stream with group_by(..., "
                    f"partitions={table.partitions})"
                )
