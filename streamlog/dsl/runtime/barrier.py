"""A pause for commits of apps with tables: no event is in processing while stores flush.

Table writes go to the open transaction of a store partition; the commit sequence
(``streamlog.state.checkpoint``) prepares, flushes and replaces those transactions, so a
write must not land in the middle of it. Streams count the events they have handed out
and not yet finished (``enter``/``leave``); a commit closes the gate (new events wait),
waits until the count is zero, commits, and opens the gate again. Apps without tables do
not use a barrier: their commits only flush the producer and need no pause.
"""

from __future__ import annotations

import asyncio

__all__ = ["ProcessingBarrier"]


class ProcessingBarrier:
    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        """An event is handed out (in processing until ``leave``)."""
        self.busy += 1
        self._idle.clear()

    def leave(self) -> None:
        """An event is finished (or abandoned); the last one wakes a waiting commit."""
        self.busy -= 1
        if self.busy <= 0:
            self.busy = 0
            self._idle.set()

    async def hold(self, timeout: float) -> bool:
        """Close the gate and wait (up to ``timeout`` s) until no event is in processing."""
        self.gate.clear()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            self.gate.set()
            return False

    def release(self) -> None:
        """The commit is done: open the gate for new events."""
        self.gate.set()
