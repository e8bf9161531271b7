"""Topic auto-creation shared by Metadata and Produce."""

from __future__ import annotations

import logging

from streamlog.broker.context import BrokerContext
from streamlog.broker.errors import PartitionLimitError
from streamlog.broker.partition_limits import check_broker_limit
from streamlog.log.errors import TopicExistsError, UnknownTopicError

__all__ = ["ensure_topic"]

log = logging.getLogger(__name__)


def ensure_topic(ctx: BrokerContext, name: str) -> None:
    """Create ``name`` with the broker's default partitions and configs if it is missing.

    :raises UnknownTopicError: the topic is missing and creating it would pass the
        broker's partition limit (clients see UNKNOWN_TOPIC_OR_PARTITION, as for any
        topic that cannot be auto-created).
    """
    if ctx.log.topic_exists(name):
        return
    try:
        check_broker_limit(ctx, ctx.config.default_partitions)
    except PartitionLimitError as exc:
        raise UnknownTopicError(
            f"topic {name!r} does not exist and was not created: {exc}"
        ) from None
    try:
        ctx.log.create_topic(name, ctx.config.default_partitions, ctx.config.default_topic_configs)
        log.info("auto-created topic %r with %d partitions", name, ctx.config.default_partitions)
    except TopicExistsError:
        pass
