"""Which connections the broker admits, and which waiting one it closes to make room.

Kafka's connection limits, and room kept for authenticated clients (Kafka's names in
brackets):

* ``max_connections`` [max.connections]: connections open at once;
* ``max_connections_per_ip`` [max.connections.per.ip]: connections from one address;
* ``max_unauthenticated``: with SASL required, connections that have not authenticated
  yet. The rest of ``max_connections`` is room only authenticated connections use.

A new connection from address A, in this order:

1. A already holds ``max_connections_per_ip``: the oldest of A's connections that has not
   authenticated is closed to make room; if all of A's are authenticated, the new one is
   refused.
2. The unauthenticated connections are at their limit, or the broker at
   ``max_connections``: the oldest unauthenticated connection (of any address) is closed
   to make room; if every connection is authenticated, the new one is refused.

An authenticated connection is never closed to make room. So sockets that connect and
never authenticate, a thousand of them from one address or from many, cannot lock out a
client with credentials: its new connection takes the place of the oldest waiting one
and, once authenticated, keeps its slot; the deadline to authenticate (connection.py)
ends the waiting ones anyway. Rule 1 matters on a shared address (loopback, NAT): a
client is not refused because someone on its address holds idle sockets. Without SASL
every connection is authenticated from the start, so the limits only refuse.

Sans-IO: ``ConnectionSlots`` keeps the books; the server closes what it is told to. Not
thread-safe (it lives on the broker's event loop).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Hashable
from typing import Generic, NamedTuple, TypeVar

__all__ = ["ConnectionSlots", "Verdict"]

K = TypeVar("K", bound=Hashable)


class Verdict(NamedTuple, Generic[K]):
    """What to do with a new connection: admit it or not, and whom to close first."""

    admitted: bool
    evicted: tuple[K, ...]
    reason: str  # why the new one was refused, or why the evicted ones were closed


class ConnectionSlots(Generic[K]):
    """The books of open connections; see the module docstring for the rules."""

    def __init__(self, max_connections: int, max_per_address: int, max_unauthenticated: int):
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.max_unauthenticated = max_unauthenticated
        self._address: dict[K, str] = {}
        self._per_address: Counter[str] = Counter()
        self._waiting: OrderedDict[K, None] = OrderedDict()  # unauthenticated, oldest first

    def __len__(self) -> int:
        return len(self._address)

    @property
    def unauthenticated(self) -> int:
        return len(self._waiting)

    def count_from(self, address: str) -> int:
        return self._per_address[address]

    def admit(self, conn: K, address: str, *, authenticated: bool) -> Verdict[K]:
        """Decide on ``conn``; if admitted it is on the books, the evicted ones are not."""
        evicted: list[K] = []
        reason = ""
        if self._per_address[address] >= self.max_per_address:
            victim = self._oldest_waiting(address)
            reason = (
                f"{address} has {self._per_address[address]} connections "
                f"(max.connections.per.ip={self.max_per_address})"
            )
            if victim is None:
                return Verdict(False, (), reason)
            self._drop(victim)
            evicted.append(victim)
        over_waiting = not authenticated and len(self._waiting) >= self.max_unauthenticated
        if over_waiting or len(self._address) >= self.max_connections:
            victim = self._oldest_waiting(None)
            reason = (
                f"{len(self._waiting)} connections are waiting to authenticate "
                f"(max {self.max_unauthenticated})"
                if over_waiting
                else f"{len(self._address)} connections are open "
                f"(max.connections={self.max_connections})"
            )
            if victim is None:
                return Verdict(False, tuple(evicted), reason)
            self._drop(victim)
            evicted.append(victim)
        self._address[conn] = address
        self._per_address[address] += 1
        if not authenticated:
            self._waiting[conn] = None
        return Verdict(True, tuple(evicted), reason)

    def authenticated(self, conn: K) -> None:
        """``conn`` has authenticated: from now on it is never closed to make room."""
        self._waiting.pop(conn, None)

    def release(self, conn: K) -> None:
        """``conn`` is closed (idempotent: an evicted one is already off the books)."""
        if conn in self._address:
            self._drop(conn)

    def _oldest_waiting(self, address: str | None) -> K | None:
        for conn in self._waiting:
            if address is None or self._address[conn] == address:
                return conn
        return None

    def _drop(self, conn: K) -> None:
        address = self._address.pop(conn)
        self._per_address[address] -= 1
        if not self._per_address[address]:
            del self._per_address[address]
        self._waiting.pop(conn, None)
