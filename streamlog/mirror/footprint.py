"""What an app owns on a log and on disk, found without starting it: its topics, its
consumer group and its tables (``streamlog migrate`` moves exactly these)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from streamlog.dsl.topology.graph import TOPIC_KINDS, build_topology

if TYPE_CHECKING:
    from streamlog.dsl import App

__all__ = ["AppFootprint", "TableFootprint", "app_footprint"]


@dataclass(frozen=True, slots=True)
class TableFootprint:
    """A table as the migration sees it: its changelog and where it keeps its store."""

    name: str
    changelog: str
    store_kind: str  # "rocksdb" (stores on disk, moved) or "memory" (rebuilt at start)


@dataclass(frozen=True, slots=True)
class AppFootprint:
    """What an app owns on a log and on disk: its topics (sorted), its consumer group
    (its id), its tables, and the name of its table directory under its data directory."""

    app_id: str
    group_id: str
    topics: tuple[str, ...]
    tables: tuple[TableFootprint, ...]
    tabledir: str

    @property
    def mirror_name(self) -> str:
        """The mirror's name: keys its checkpoints on the target, so a second run of the
        same migration resumes the first instead of copying again."""
        return f"migrate-{self.app_id}"


def app_footprint(app: App) -> AppFootprint:
    """The topics, group and tables of ``app``, found without starting it (see the module
    docstring): the topology's topic nodes, the declared topics, and the leader topic."""
    topology = build_topology(app)
    topics = {node.name for node in topology.topics() if node.kind in TOPIC_KINDS}
    topics.update(app.topics)
    if not app.conf.topic_disable_leader:
        topics.add(app.leader_topic_name)
    tables = tuple(
        TableFootprint(table.name, table.changelog_topic.name, table.store_kind)
        for _, table in sorted(app.tables.items())
    )
    topics.update(t.changelog for t in tables)
    return AppFootprint(app.conf.id, app.conf.id, tuple(sorted(topics)), tables, app.conf.tabledir)
