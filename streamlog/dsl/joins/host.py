"""What joins need from the app (``App`` fits): agents to read their inputs, tables to
keep their state, and the partition hooks that tell them when state moves."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from streamlog.dsl.tables.host import TableHost

if TYPE_CHECKING:
    from streamlog.dsl.agents.agent import Agent, AgentFun
    from streamlog.dsl.agents.topics import Channel, Topic
    from streamlog.dsl.tables.kinds import GlobalTable
    from streamlog.dsl.tables.table import Table
    from streamlog.transport.types import TopicPartition

__all__ = ["JoinHost"]


class JoinHost(TableHost, Protocol):
    """A table's host that also declares tables and agents, and says when partitions move."""

    partitions_assigned_hooks: list[Callable[[set[TopicPartition]], Any]]
    partitions_revoked_hooks: list[Callable[[set[TopicPartition]], Any]]

    def Table(  # noqa: N802 - Faust's spelling
        self,
        name: str,
        *,
        default: Callable[[], Any] | None = None,
        key_type: Any = None,
        value_type: Any = None,
        partitions: int | None = None,
        store: str | None = None,
        help: str | None = None,
        **options: Any,
    ) -> Table:
        """Declare a table (a join's state)."""
        ...

    def GlobalTable(self, name: str, **options: Any) -> GlobalTable:  # noqa: N802 - Faust's
        """Declare a global table."""
        ...

    def agent(
        self,
        channel: Topic | Channel | str | None = None,
        *,
        name: str | None = None,
        concurrency: int = 1,
        sink: Any = None,
        on_error: str | None = None,
        supervisor_strategy: Any = None,
        isolated_partitions: bool = False,
        use_reply_headers: bool = True,
        **channel_options: Any,
    ) -> Callable[[AgentFun], Agent]:
        """Declare an agent (a join's reader of one input)."""
        ...
