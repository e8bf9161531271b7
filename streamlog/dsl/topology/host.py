"""What the topology DSL and the graph need from the app (``App`` fits): everything it
declared, and the decorators that declare more."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from streamlog.dsl.joins.host import JoinHost
from streamlog.dsl.windows.host import WindowsHost

if TYPE_CHECKING:
    from streamlog.dsl.agents.agent import Agent
    from streamlog.dsl.tables.table import Table

__all__ = ["TopologyHost"]


class TopologyHost(JoinHost, WindowsHost, Protocol):
    """Everything the app declared, and every way to declare more."""

    agents: dict[str, Agent]
    tables: dict[str, Table]

    @property
    def leader_topic_name(self) -> str:
        """The app's leader-election topic (not part of the drawn graph)."""
        ...
