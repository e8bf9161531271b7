"""Groups coordinated in the broker's own process, outside its ``GroupCoordinator``.

A ``streamlog worker`` on ``file://`` coordinates its consumers in process (the embedded
transport's groups: no JoinGroup ever reaches a socket) and also serves its log through a
``Broker`` that shares the log manager. Kafka tools ask that broker about the app's
groups, so the coordinator consults this view first: a group with live members here is
described and listed as they are (state, members, subscriptions, assignment), not as an
Empty group known only by its committed offsets. Such a group belongs to the process that
owns it: a Kafka client trying to join it through the listener is refused (it would
consume the same partitions as the in-process members, under a second coordinator), and
so is an offset commit to it (it would move the members' offsets under them).
"""

from __future__ import annotations

from typing import Protocol

from streamlog.broker.group_metadata import GroupDescription, GroupOverview

__all__ = ["LocalGroups"]


class LocalGroups(Protocol):
    """What the broker reads of groups coordinated elsewhere in its process.

    Both methods are called on the broker's event loop, which is the owner's loop, so
    they read the owner's live state without locks.
    """

    def describe(self, group_id: str) -> GroupDescription | None:
        """The group with its members and assignments, or None when it has no live
        member here (the broker then answers from its own groups and offsets)."""
        ...

    def overviews(self) -> list[GroupOverview]:
        """Every group with live members here."""
        ...
