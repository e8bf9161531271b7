"""Tables must be co-partitioned with the topics their agents update them from.

Table partition N holds the keys of input partition N only when both have the same count
(and keys are hashed the same way): otherwise the worker owning an input partition
writes keys whose table partition another worker owns.

Two steps when the app starts, once the agents run (so topics they re-key through exist)
and before the changelogs are created:

1. ``align_table_partitions``: a table whose changelog already exists takes its count; a
   table whose changelog is new takes the partition count of the topic its agents read, as
   Kafka Streams derives a changelog's partitions from its source (an input topic a
   producer created first with one partition gives a one-partition table, not the app's
   ``topic_partitions``). A count given with ``partitions=`` is kept.
2. ``check_copartitioning``: what still disagrees (an existing changelog, or a count given
   explicitly, against its source) refuses to start, naming the table, its changelog, the
   agent and the topic.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from streamlog.dsl.agents.topics import Topic
from streamlog.dsl.errors import ImproperlyConfigured
from streamlog.dsl.tables.kinds import GlobalTable
from streamlog.dsl.tables.table import Table
from streamlog.dsl.topology.references import referenced_objects, static_attribute

if TYPE_CHECKING:
    from streamlog.dsl.agents.agent import Agent
    from streamlog.dsl.topology.host import TopologyHost
    from streamlog.transport.base import Admin

__all__ = ["align_table_partitions", "check_copartitioning", "sources_of"]

log = logging.getLogger(__name__)


def _updates(app: TopologyHost) -> list[tuple[Agent, Topic, list[Table]]]:
    """(agent, the topic it reads, the partitioned tables its code refers to).

    Which tables an agent updates is read from the names its code refers to (as
    ``app.topology()`` does); agents reading through ``group_by``/``through`` count with
    the topic they end up reading. Global tables hold every partition anywhere.
    """
    by_id = {id(t): t for t in app.tables.values() if not isinstance(t, GlobalTable)}
    found: list[tuple[Agent, Topic, list[Table]]] = []
    if not by_id:
        return found
    for agent in app.agents.values():
        tables: list[Table] = []
        for obj in referenced_objects(agent.fun):
            # not ``a or b``: an empty table is falsy (it has a __len__)
            table = by_id.get(id(obj))
            if table is None:
                table = by_id.get(id(static_attribute(obj, "table")))
            if table is not None and table not in tables:
                tables.append(table)
        source = agent.reading()
        if tables and isinstance(source, Topic):
            found.append((agent, source, tables))
    return found


def sources_of(app: TopologyHost, table: Table) -> list[Topic]:
    """The topics whose agents update ``table``: with Faust's key placement a key lives in
    the partition its events are read from, i.e. the one those topics' own key bytes hash
    to (what the web router needs to find the worker holding a key)."""
    found: list[Topic] = []
    for _, source, tables in _updates(app):
        if table in tables and source not in found:
            found.append(source)
    return found


async def align_table_partitions(app: TopologyHost, admin: Admin) -> None:
    """Give each table the partition count its changelog has, or else its source's (see
    the module docstring). Call before the changelog topics are created."""
    existing = set(await admin.list_topics(include_internal=True))
    counts: dict[str, int] = {}

    async def count_of(name: str) -> int:
        if name not in counts:
            counts[name] = len((await admin.describe_topic(name)).partitions)
        return counts[name]

    settled: set[int] = set()
    for table in app.tables.values():
        changelog = table.changelog_topic.name
        if changelog in existing:
            settled.add(id(table))
            have = await count_of(changelog)
            if not table.partitions_given and table.partitions != have:
                log.info(
                    "table %s: %d partitions, as its changelog %s", table.name, have, changelog
                )
                table.set_partitions(have)
    for agent, source, tables in _updates(app):
        if source.name not in existing:
            continue
        source_n = await count_of(source.name)
        for table in tables:
            if id(table) in settled or table.partitions_given:
                continue
            settled.add(id(table))
            if table.partitions != source_n:
                log.info(
                    "table %s: %d partitions, as topic %s that agent %s reads (a new changelog)",
                    table.name,
                    source_n,
                    source.name,
                    agent.name,
                )
                table.set_partitions(source_n)


async def check_copartitioning(app: TopologyHost, admin: Admin) -> None:
    """``ImproperlyConfigured`` for the first table whose partition count differs from
    the topic an agent updates it from."""
    counts: dict[str, int] = {}
    for agent, source, tables in _updates(app):
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
