"""Topic auto-creation shared by Metadata and Produce."""

from __future__ import annotations

import logging

from streamlog.broker.context import BrokerContext
from streamlog.log.errors import TopicExistsError

__all__ = ["ensure_topic"]

log = logging.getLogger(__name__)


def ensure_topic(ctx: BrokerContext, name: str) -> None:
    """Create ``name`` with the broker's default partitions and configs if it is missing."""
    if ctx.log.topic_exists(name):
        return
    try:
        ctx.log.create_topic(name, ctx.config.default_partitions, ctx.config.default_topic_configs)
        log.info("auto-created topic %r with %d partitions", name, ctx.config.default_partitions)
    except TopicExistsError:
        pass
