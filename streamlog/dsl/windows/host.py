"""What windowed tables need from the app (``App`` fits): a table's host, plus the
background task and timer that close and expire windows."""

from __future__ import annotations

from typing import Protocol

from streamlog.dsl.agents.host import TimerHost
from streamlog.dsl.tables.host import TableHost

__all__ = ["WindowsHost"]


class WindowsHost(TableHost, TimerHost, Protocol):
    """A table's host with the app's tasks and timers."""
