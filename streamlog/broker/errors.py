"""Exceptions of the broker layer (the log engine's own are in ``streamlog.log.errors``)."""

from __future__ import annotations

__all__ = ["BrokerError", "PartitionLimitError"]


class BrokerError(Exception):
    """Base class of every error the broker raises on purpose."""


class PartitionLimitError(BrokerError):
    """Creating these partitions would pass a limit of the request or of the broker.

    Answered with POLICY_VIOLATION, as Kafka answers a batch operation that is too large.
    """
