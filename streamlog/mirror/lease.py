"""One mirror of a name writes at a time: a lease held through a consumer group.

Two mirrors of one ``--name`` (a service started twice, a ``--once`` run beside a
continuous one) would both copy every new record. So each session first joins the group
``streamlog-mirror.<name>`` on the target, subscribed to the mirror's one-partition
checkpoints topic: the member the group gives that partition mirrors; any other waits, a
standby that takes over when the holder stops or dies (after its session timeout, 6 s). The
sticky assignor keeps the partition where it is when a standby joins.

Giving the lease up (a rebalance moving it) waits for the holder's records in flight, so
the next holder finds them on the target and matches them. A holder that stops answering
the group (frozen, cut off) is not fenced: records it still had in flight may land after
the next holder started, which that holder then reports as ``TargetDivergedError`` rather
than copying anything twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from streamlog.mirror.errors import LeaseLostError, MirrorRunningError
from streamlog.mirror.state import CHECKPOINTS_TOPIC
from streamlog.transport.base import Admin, Consumer, Transport
from streamlog.transport.types import TopicPartition

__all__ = ["MirrorLease", "LEASE_GROUP_PREFIX", "leased_by_another"]

log = logging.getLogger(__name__)

LEASE_GROUP_PREFIX = "streamlog-mirror."
# How soon a dead holder's lease passes to a standby: Kafka's smallest session timeout
# (group.min.session.timeout.ms), as a dead holder stops nothing but the copying.
LEASE_SESSION_TIMEOUT_MS = 6_000
_LEASE = TopicPartition(CHECKPOINTS_TOPIC, 0)


async def leased_by_another(admin: Admin, name: str) -> int:
    """How many members the lease group of mirror ``name`` has on the target (0: none, so
    a ``once`` run may go ahead without joining, and without the broker's initial
    rebalance delay)."""
    return len((await admin.describe_group(f"{LEASE_GROUP_PREFIX}{name}")).members)


class MirrorLease:
    """The lease of mirror ``name`` on ``target``. ``acquire`` waits for it, ``check``
    raises once it is gone, ``release`` gives it up."""

    def __init__(
        self,
        target: Transport,
        name: str,
        *,
        before_giving_up: Callable[[], Awaitable[None]],
    ) -> None:
        self._target = target
        self.group = f"{LEASE_GROUP_PREFIX}{name}"
        self._before_giving_up = before_giving_up
        self._consumer: Consumer | None = None
        self._held = False

    async def acquire(self, timeout_s: float | None = None) -> None:
        """Wait for the lease; with ``timeout_s``, at most that long, then raise
        ``MirrorRunningError`` (a ``once`` run waits out a killed mirror's membership,
        not a live mirror)."""
        consumer = self._target.consumer(
            group_id=self.group,
            client_id=self.group,
            partition_assignment_strategy=("cooperative-sticky",),
            session_timeout_ms=LEASE_SESSION_TIMEOUT_MS,
        )
        self._consumer = consumer
        await consumer.subscribe([CHECKPOINTS_TOPIC], listener=self)
        said = False
        started = time.monotonic()
        while not self._held:
            await consumer.getmany(timeout_ms=500)
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                await self.release()
                raise MirrorRunningError(
                    f"a mirror named {self.group[len(LEASE_GROUP_PREFIX) :]!r} is running "
                    f"on the target (it holds the group {self.group}): copying beside it "
                    "would write records twice; stop it, or run this one under another --name"
                )
            if not self._held and not said and time.monotonic() - started > 2.0:
                said = True
                name = self.group[len(LEASE_GROUP_PREFIX) :]
                log.warning(
                    "mirror: another mirror named %r is running on the target: waiting "
                    "as its standby",
                    name,
                )

    async def check(self) -> None:
        """Let the group protocol run (rebalances are answered in polls), then raise
        ``LeaseLostError`` when the lease is gone."""
        consumer = self._consumer
        if consumer is None:
            raise LeaseLostError("the mirror's lease was not acquired")
        await consumer.getmany(timeout_ms=0)
        if not self._held or consumer.membership_lost():
            self._held = False
            raise LeaseLostError(f"the mirror's lease ({self.group}) moved to another mirror")

    async def release(self) -> None:
        consumer, self._consumer = self._consumer, None
        self._held = False
        if consumer is not None:
            await consumer.close()

    # the group's listener -------------------------------------------------------------

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if _LEASE in assigned:
            self._held = True
            if self._consumer is not None:
                self._consumer.pause(_LEASE)  # its records are read by load_state

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if _LEASE in revoked and self._held:
            self._held = False
            await self._before_giving_up()

    async def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        if _LEASE in lost:
            self._held = False
