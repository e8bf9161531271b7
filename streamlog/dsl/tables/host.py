"""What tables need from the app (``App`` fits): their changelog topic, the open state
transactions of the app's checkpoint, and a way to become windowed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from streamlog.dsl.agents.host import AgentHost

if TYPE_CHECKING:
    from streamlog.dsl.tables.table import Table
    from streamlog.dsl.tables.views import WindowedView
    from streamlog.state.stores import StorePartition
    from streamlog.state.transaction import PartitionTransaction
    from streamlog.state.windows import (
        HoppingWindow,
        SessionWindow,
        SlidingWindow,
        TumblingWindow,
    )
    from streamlog.transport.types import TopicPartition

__all__ = ["TableHost"]


class TableHost(AgentHost, Protocol):
    """Topics (a table's changelog is one), state transactions, windowing."""

    def state_transaction(
        self, store: StorePartition, changelog: TopicPartition
    ) -> PartitionTransaction:
        """The open transaction of a table partition in the app's checkpoint."""
        ...

    def state_reader(self, store: StorePartition) -> PartitionTransaction | StorePartition:
        """What reads of a table partition see, even while a commit runs."""
        ...

    def window_table(
        self,
        table: Table,
        window: TumblingWindow | HoppingWindow | SlidingWindow | SessionWindow,
        **options: Any,
    ) -> WindowedView:
        """Make ``table`` windowed by ``window``."""
        ...
