"""What a request handler is given: the broker's shared state and the connection's session."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamlog.broker.config import BrokerConfig
from streamlog.broker.waiters import PartitionWaiters, Waiters
from streamlog.log.clock import Clock
from streamlog.log.manager import LogManager

if TYPE_CHECKING:
    from streamlog.broker.coordinator import GroupCoordinator
    from streamlog.broker.sasl import SaslServer
    from streamlog.broker.transactions import TransactionService

__all__ = ["BrokerContext", "Session"]


@dataclass(slots=True)
class BrokerContext:
    """State shared by every connection of one broker; lives on the broker's event loop."""

    config: BrokerConfig
    log: LogManager
    clock: Clock
    cluster_id: str
    port: int
    waiters: Waiters = field(default_factory=PartitionWaiters)
    coordinator: GroupCoordinator | None = None
    transactions: TransactionService | None = None
    users: Any = None  # the loaded users file when authentication is on

    @property
    def node_id(self) -> int:
        return self.config.node_id

    @property
    def advertised(self) -> tuple[str, int]:
        """(host, port) clients are told to connect to (``BrokerConfig.advertised_address``)."""
        return self.config.advertised_address(self.port)


@dataclass(slots=True)
class Session:
    """One client connection: who it is and how far it got with authentication."""

    peer: str
    client_id: str | None = None
    authenticated: bool = False
    principal: str | None = None
    sasl: SaslServer | None = None
    requests: int = 0
    warned: bool = False
