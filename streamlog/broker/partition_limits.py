"""How many partitions one request may create, and how many the broker may hold.

Every partition is a directory of files and some memory, and creating one costs a few
file-system operations on the event loop: one CreateTopics asking for 10,000 partitions
used to stall every client and run the process out of descriptors. Both limits are
checked before anything is created, so a refused request changes nothing:

* ``max_partitions_per_request`` bounds the new partitions of one CreateTopics or
  CreatePartitions request, summed over its topics; over it, every topic of the request
  is refused (Kafka refuses an "excessively large batch operation" the same way).
* ``max_partitions`` bounds the partitions of the whole broker, internal topics
  included; a topic that would pass it is refused, and so is auto-creating one.
"""

from __future__ import annotations

from streamlog.broker.context import BrokerContext
from streamlog.broker.errors import PartitionLimitError

__all__ = ["check_broker_limit", "check_request_limit", "total_partitions"]


def total_partitions(ctx: BrokerContext) -> int:
    """Partitions of every topic of the broker, internal ones included."""
    log = ctx.log
    return sum(log.partition_count(name) for name in log.list_topics(include_internal=True))


def check_request_limit(ctx: BrokerContext, new_partitions: int) -> None:
    """:raises PartitionLimitError: one request asks for more new partitions than allowed."""
    limit = ctx.config.max_partitions_per_request
    if new_partitions > limit:
        raise PartitionLimitError(
            f"the request would create {new_partitions} partitions; at most {limit} may be "
            "created by one request (--max-partitions-per-request)"
        )


def check_broker_limit(ctx: BrokerContext, new_partitions: int) -> None:
    """:raises PartitionLimitError: the broker would hold more partitions than allowed."""
    limit = ctx.config.max_partitions
    current = total_partitions(ctx)
    if current + new_partitions > limit:
        raise PartitionLimitError(
            f"the broker holds {current} partitions; {new_partitions} more would pass its "
            f"limit of {limit} (--max-partitions)"
        )
