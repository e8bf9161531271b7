"""Two table variants from Faust: ``GlobalTable`` (all partitions everywhere) and
``SetTable`` (values are sets).

``GlobalTable``: every worker holds every partition, whatever its assignment, and keeps
following the changelog, so a value another worker writes shows up here shortly after
that worker commits (every ``follow_interval`` seconds). Reads never fail with
``PartitionNotOwnedError``. Local writes go through the commit sequence as for any table;
the follower re-applies changelog records in offset order, so all workers converge on the
changelog's latest value per key.

``SetTable``: ``table[key]`` is a set view; ``add``/``discard``/``update`` write the whole
set back (JSON list, sorted when the members sort) in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from streamlog.dsl.runtime.clock import running_clock
from streamlog.dsl.tables.table import Table
from streamlog.state.recovery import recover_partition
from streamlog.transport.types import TopicPartition

__all__ = ["GlobalTable", "SetTable", "SetView"]

log = logging.getLogger(__name__)


class GlobalTable(Table):
    """See the module docstring."""

    _reads_everywhere = True  # Faust-style keys are in the partition of the event that wrote them

    def __init__(self, *args: Any, follow_interval: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.follow_interval = follow_interval
        self._follower: asyncio.Task[None] | None = None

    async def assign(self, partitions: set[int]) -> None:
        """Recover every partition, whatever was assigned, and keep following the changelog."""
        await super().assign(set(range(self.partitions)))
        if self._follower is None or self._follower.done():
            self._follower = asyncio.create_task(self._follow(), name=f"global-table:{self.name}")

    def revoke(self, partitions: set[int]) -> None:
        """A global table keeps every partition whatever the group does."""

    def close(self) -> None:
        """Stop following the changelog and close the stores."""
        if self._follower is not None:
            self._follower.cancel()
            self._follower = None
        super().close()

    async def _follow(self) -> None:
        clock = running_clock(self.app.clock)
        consumer = self.app.transport.consumer(
            client_id=f"{self.app.conf.client_id}-global",
            isolation_level=self.app.conf.isolation_level,
        )
        try:
            while True:
                await clock.sleep(self.follow_interval)
                for number, partition in list(self._active.items()):
                    if partition.closed:
                        continue
                    result = await recover_partition(
                        consumer,
                        partition,
                        TopicPartition(self.changelog_topic.name, number),
                        progress_interval_ms=60_000,
                        following=True,
                    )
                    self.recovered_records += result.records
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - logged; the next assignment restarts it
            log.error("global table %s: following the changelog failed: %r", self.name, exc)
        finally:
            await consumer.close()


class SetView:
    """The set stored under one key of a ``SetTable``; changes are written back at once."""

    __slots__ = ("_table", "_key")

    def __init__(self, table: SetTable, key: Any) -> None:
        self._table = table
        self._key = key

    def _members(self) -> set[Any]:
        return set(_freeze(v) for v in (Table.get(self._table, self._key) or ()))

    def _store(self, members: set[Any]) -> None:
        if members:
            Table.__setitem__(self._table, self._key, _ordered(members))
        elif Table.__contains__(self._table, self._key):
            Table.__delitem__(self._table, self._key)

    def add(self, member: Any) -> None:
        """Add ``member`` (written back at once)."""
        members = self._members()
        if member not in members:
            members.add(member)
            self._store(members)

    def discard(self, member: Any) -> None:
        """Remove ``member`` if present."""
        members = self._members()
        if member in members:
            members.discard(member)
            self._store(members)

    def update(self, members: Iterable[Any]) -> None:
        """Add every one of ``members``."""
        current = self._members()
        new = current | set(members)
        if new != current:
            self._store(new)

    def difference_update(self, members: Iterable[Any]) -> None:
        """Remove every one of ``members``."""
        current = self._members()
        new = current - set(members)
        if new != current:
            self._store(new)

    def clear(self) -> None:
        """Remove every member."""
        self._store(set())

    def __contains__(self, member: Any) -> bool:
        return member in self._members()

    def __iter__(self) -> Iterator[Any]:
        return iter(_ordered(self._members()))

    def __len__(self) -> int:
        return len(self._members())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SetView):
            return self._members() == other._members()
        if isinstance(other, set | frozenset):
            return self._members() == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"SetView({_ordered(self._members())!r})"


class SetTable(Table):
    """See the module docstring. ``table[key]`` never raises: a missing key is an empty set.

    ``value_type`` is the members' type, as in Faust (``SetTable(value_type=Order)`` holds
    sets of Orders): the stored value is the list of members."""

    def __init__(self, *args: Any, value_type: Any = None, **kwargs: Any) -> None:
        self.member_type = value_type
        stored = None if value_type is None else list[value_type]  # type: ignore[valid-type]
        super().__init__(*args, value_type=stored, **kwargs)

    def __getitem__(self, key: Any) -> SetView:
        return SetView(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        SetView(self, key)._store(set(value))

    def items(self) -> Iterator[tuple[Any, Any]]:
        """(key, set of members) of every owned partition."""
        for key, members in super().items():
            yield key, set(_freeze(m) for m in members)


def _freeze(value: Any) -> Any:
    """JSON gives lists back for tuples: members must be hashable again."""
    return tuple(_freeze(v) for v in value) if isinstance(value, list) else value


def _ordered(members: set[Any]) -> list[Any]:
    try:
        return sorted(members)
    except TypeError:
        return sorted(members, key=repr)
