"""The conductor: one group consumer for the whole app, feeding every agent's inbox.

All agents of an app share one consumer in the group named by the app id (as in Faust), so
partitions are split between worker processes once, and a topic read by two agents is
fetched once. Fetched records go to each subscribed inbox as a ``Batch`` (back-pressure:
a full inbox stops the fetch loop) and are tracked per partition for commits.

A partition is handed to agents only once it is ready: on assignment the consumer is told
to pause it, the app prepares it (its table partitions are recovered from their
changelogs) in a task of its own, so the group's heartbeats and the other partitions go on
meanwhile, and only then is it resumed. Preparation that fails (an outage) is retried; a
partition revoked meanwhile is simply forgotten. Records fetched before a revocation and
not yet handed out are dropped, never acknowledged: the partition's next owner reads them
from the committed offset.

Commits follow the app's commit sequence (``App.checkpoint``): the committable offsets are
read first, then everything produced so far is flushed and acknowledged, then the offsets
are committed. So an offset is committed only after its event and all it produced are
acknowledged by the log (at-least-once: a crash re-delivers, never skips).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from streamlog.dsl.durations import to_ms
from streamlog.dsl.errors import CommitPostponed
from streamlog.dsl.runtime.acks import Batch, PartitionTracker
from streamlog.dsl.runtime.clock import running_clock
from streamlog.dsl.runtime.inbox import Inbox
from streamlog.dsl.runtime.meters import Histogram
from streamlog.state.errors import RecoveryError, TransactionAbortedError
from streamlog.transport.base import Consumer
from streamlog.transport.errors import TransportError
from streamlog.transport.types import GroupPeer, TopicPartition

if TYPE_CHECKING:
    from streamlog.dsl.runtime.barrier import ProcessingBarrier
    from streamlog.dsl.runtime.clock import AsyncClock
    from streamlog.dsl.settings import Settings
    from streamlog.serde import Schema
    from streamlog.transport.base import Transport

__all__ = ["Conductor", "ConductorHost", "SubscribedTopic"]

log = logging.getLogger(__name__)


class SubscribedTopic(Protocol):
    """A topic agents read, as the conductor needs it: its name and how to decode it."""

    @property
    def name(self) -> str:
        """The topic's name."""
        ...

    @property
    def schema(self) -> Schema:
        """How its keys and values decode."""
        ...


class ConductorHost(Protocol):
    """What the conductor needs from the app (``App`` fits): its settings and transport,
    the processing barrier, the commit sequence and what to do as partitions move."""

    conf: Settings
    clock: AsyncClock | None
    barrier: ProcessingBarrier | None

    @property
    def transport(self) -> Transport:
        """The app's transport (the conductor's consumer comes from it)."""
        ...

    def crash(self, reason: BaseException) -> None:
        """Stop the worker with ``reason``."""
        ...

    async def checkpoint(self, offsets: dict[TopicPartition, int]) -> None:
        """The commit sequence for ``offsets``, whose events are all processed."""
        ...

    async def prepare_partitions(self, assigned: set[TopicPartition]) -> None:
        """Make the state of new partitions ready (raises to be retried)."""
        ...

    async def partitions_ready(self, assigned: set[TopicPartition]) -> None:
        """Partitions are ready and about to be processed."""
        ...

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Partitions are given up (after their commit): close their state."""
        ...

    def drop_revoked(self) -> int:
        """Drop queued batches of revoked partitions; how many."""
        ...

    async def discard_uncommitted(self) -> None:
        """Forget the work since the last commit (partitions were lost)."""
        ...

    def rebalance_started(self) -> None:
        """Partitions are moving (a revocation, a loss or an assignment began)."""
        ...

    @property
    def standby_replicas(self) -> int:
        """Standby replicas per task the group's leader is to place (0: none)."""
        ...

    def standbys_assigned(
        self, standby: frozenset[TopicPartition], held: set[TopicPartition]
    ) -> None:
        """The standby partitions the last rebalance gave this worker, and all it holds."""
        ...

    async def rebalance_complete(self) -> None:
        """Every assigned partition is ready again."""
        ...


class Conductor:
    """Subscriptions, the fetch loop, partition trackers and commits (see module docstring)."""

    def __init__(self, app: ConductorHost) -> None:
        self.app = app
        self._subscribers: dict[str, list[tuple[Inbox, SubscribedTopic]]] = {}
        self._extra_topics: set[str] = set()
        self.trackers: dict[TopicPartition, PartitionTracker] = {}
        self.consumer: Consumer | None = None
        self._subscribed: frozenset[str] = frozenset()
        self._user_data: bytes | None = None  # what this worker advertises to the group
        self._fetcher: asyncio.Task[None] | None = None
        self._committer: asyncio.Task[None] | None = None
        self._commit_lock = asyncio.Lock()
        self._since_commit = 0
        self._running = False
        self._resubscribe = asyncio.Event()
        self._commit_due = asyncio.Event()
        # Assigned partitions the app has not prepared yet (paused in the consumer), and
        # the task preparing them.
        self._unready: set[TopicPartition] = set()
        self._preparing: asyncio.Task[None] | None = None
        self.records_fetched = 0
        self.records_dropped = 0  # fetched, then revoked before they were handed out
        self.commits = 0
        self.commit_latency = Histogram()  # seconds per commit sequence that moved offsets
        self.rebalances = 0  # assignments received (the first one included)

    # ------------------------------------------------------------------ subscriptions

    def attach(self, topic: SubscribedTopic, inbox: Inbox) -> None:
        """Deliver ``topic``'s records to ``inbox`` from now on."""
        subscribers = self._subscribers.setdefault(topic.name, [])
        if all(existing is not inbox for existing, _ in subscribers):
            subscribers.append((inbox, topic))
        if self._running and topic.name not in self._subscribed:
            self._resubscribe.set()

    def watch(self, topic_name: str) -> None:
        """Join the group for a topic no agent reads (the leader-election topic)."""
        self._extra_topics.add(topic_name)
        if self._running and topic_name not in self._subscribed:
            self._resubscribe.set()

    @property
    def topics(self) -> frozenset[str]:
        """Every topic the app's consumer subscribes to."""
        return frozenset(self._subscribers) | frozenset(self._extra_topics)

    def assignment(self) -> set[TopicPartition]:
        """The partitions this worker holds now (ready or being prepared)."""
        return set() if self.consumer is None else self.consumer.assignment()

    def advertise(self, user_data: bytes | None) -> None:
        """Tell the other workers of the group ``user_data`` (the web server's address)
        from the next join on; a change while running rejoins the group."""
        if user_data != self._user_data:
            self._user_data = user_data
            if self._running:
                self._resubscribe.set()

    def group_peers(self) -> tuple[GroupPeer, ...]:
        """The workers that advertised something, with their partitions, as of the last
        rebalance (``Consumer.group_peers``)."""
        return () if self.consumer is None else self.consumer.group_peers()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Create the group consumer, subscribe, start fetching and committing; returns once the
        first assignment is ready."""
        if not self.topics:
            log.info("no topics to consume")
            return
        conf = self.app.conf
        self.consumer = consumer = self.app.transport.consumer(
            group_id=conf.id,
            client_id=conf.client_id,
            auto_offset_reset=conf.consumer_auto_offset_reset,
            session_timeout_ms=to_ms(conf.broker_session_timeout, "broker_session_timeout"),
            heartbeat_interval_ms=to_ms(
                conf.broker_heartbeat_interval, "broker_heartbeat_interval"
            ),
            max_poll_records=conf.broker_max_poll_records,
            isolation_level=conf.isolation_level,
            partition_assignment_strategy=conf.consumer_partition_assignment_strategy,
            standby_replicas=self.app.standby_replicas,
        )
        if self.app.standby_replicas and self._user_data is None:
            # only members that advertise are in the leader's peer list, which carries
            # the standbys: advertise, if only nothing
            self._user_data = b""
        await self._subscribe(consumer)
        self._running = True
        self._fetcher = asyncio.create_task(self._fetch_loop(consumer), name="conductor:fetch")
        self._committer = asyncio.create_task(self._commit_loop(), name="conductor:commit")
        await self.wait_prepared()

    async def wait_prepared(self) -> None:
        """Until every assigned partition is ready (its tables recovered): the app's start
        returns with its first assignment usable, as a worker is "ready" only then."""
        while self._unready:
            task = self._preparing
            if task is None or task.done():  # done with partitions unready: it crashed the app
                return
            await asyncio.wait({task})  # a revocation may cancel it and start another

    async def _subscribe(self, consumer: Consumer) -> None:
        topics = self.topics
        self._subscribed = topics
        self._resubscribe.clear()
        log.info("subscribing to %s", ", ".join(sorted(topics)))
        await consumer.subscribe(sorted(topics), listener=self, user_data=self._user_data)

    async def stop_fetching(self) -> None:
        """No more records are handed out (the first step of stopping).

        The fetch task is cancelled; the commit task is told to stop and awaited, never
        cancelled inside a commit (that would leave the checkpoint half done: the app's
        final commit comes next and must find it usable).
        """
        self._running = False
        self._commit_due.set()
        await self._stop_preparing()
        if self._fetcher is not None:
            self._fetcher.cancel()
        if self._committer is not None:
            done, _ = await asyncio.wait({self._committer}, timeout=self.app.conf.shutdown_timeout)
            if not done:
                log.warning("the running commit did not finish in time; cancelling it")
                self._committer.cancel()
        for task in (self._fetcher, self._committer):
            if task is not None:
                try:
                    await task
                except asyncio.CancelledError:
                    _reraise_if_cancelled()  # the task's own cancel is swallowed, ours not
                except Exception as exc:  # noqa: BLE001 - logged, the worker is stopping anyway
                    log.error("conductor task ended with %r", exc)
        self._fetcher = self._committer = None

    async def close(self) -> None:
        """Close the consumer (leaving the group: its partitions are revoked first)."""
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            await consumer.close()

    # ------------------------------------------------------------------ fetching

    async def _fetch_loop(self, consumer: Consumer) -> None:
        conf = self.app.conf
        backoff = 0.1
        while self._running:
            if self._resubscribe.is_set():
                await self._subscribe(consumer)
            try:
                fetched = await consumer.getmany(
                    timeout_ms=200, max_records=conf.broker_max_poll_records
                )
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except TransportError as exc:
                log.warning("fetch failed: %s (retrying in %.1f s)", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if fetched and consumer.membership_lost():
                # Probably another worker's now: not processed here (a worker paused past
                # its session would process them twice); fetched again if they are not.
                for tp, records in fetched.items():
                    consumer.seek(tp, records[0].offset)
                await asyncio.sleep(0.05)
                continue
            # Whose records these are is decided now: a rebalance while an inbox is full
            # (below) revokes the partitions they came from, and the consumer re-reads
            # what a new assignment of the same partition needs from the committed offset.
            owned = [(self.trackers.get(tp), records) for tp, records in fetched.items()]
            for tracker, records in owned:
                if tracker is None or tracker.revoked:
                    self.records_dropped += len(records)
                    continue
                await self._dispatch(tracker, records)
            if self._since_commit >= conf.broker_commit_every:
                self._commit_due.set()  # the commit task runs it: fetching goes on meanwhile

    async def _dispatch(self, tracker: PartitionTracker, records: list[Any]) -> None:
        if tracker.first_offset < 0:
            tracker.first_offset = records[0].offset
        for inbox, topic in self._subscribers.get(tracker.topic, ()):
            if tracker.revoked:  # while a full inbox held the last put: the rest goes too
                self.records_dropped += len(records)
                return
            schema = topic.schema
            batch = Batch(records, tracker, schema.loads_key, schema.loads_value, topic)
            tracker.pending.append(batch)
            await inbox.put(batch)
        tracker.next_offset = records[-1].offset + 1
        self._since_commit += len(records)
        self.records_fetched += len(records)

    # ------------------------------------------------------------------ commits

    async def _commit_loop(self) -> None:
        interval = self.app.conf.broker_commit_interval
        clock = running_clock(self.app.clock)
        while self._running:
            sleeper = asyncio.ensure_future(clock.sleep(interval))
            due = asyncio.ensure_future(self._commit_due.wait())
            try:
                await asyncio.wait({sleeper, due}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                due.cancel()
            self._commit_due.clear()
            if not self._running:
                return
            await self._wait_out_join()
            try:
                await self.commit()
            except asyncio.CancelledError:
                raise
            except TransactionAbortedError as exc:
                await self._rewind(set(self.trackers), exc)
            except CommitPostponed as exc:
                log.debug("commit postponed: %s", exc)
            except Exception as exc:  # noqa: BLE001 - retried at the next interval
                log.warning("commit failed: %r (retrying at the next interval)", exc)

    async def _wait_out_join(self) -> None:
        """A periodic commit waits while this worker's group join is in flight: the
        offset commit would queue behind the JoinGroup (a broker serves a connection's
        requests in order) with processing held by the commit's barrier, pausing every
        partition until the other members rejoined (about a heartbeat: 0.8 s measured on
        a cooperative join), only to be refused as of the old generation."""
        consumer = self.consumer
        while self._running and consumer is not None and consumer.joining():
            await asyncio.sleep(0.02)  # the join's time is the broker's: wall time

    def committable(self, only: set[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Offsets that moved since the last commit: every event before them is processed."""
        offsets = {}
        for tp, tracker in self.trackers.items():
            if tracker.revoked or tracker.next_offset < 0 or (only is not None and tp not in only):
                continue
            offset = tracker.committable()
            if offset > tracker.committed:
                offsets[tp] = offset
        return offsets

    async def commit(self, only: set[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Run the app's commit sequence for the offsets acknowledged so far."""
        if self.app.conf.exactly_once:
            # One transaction holds the outputs and changelogs of every partition: its
            # offsets must cover them all, or a crash would redo committed outputs.
            only = None
        async with self._commit_lock:
            # With tables, hold the processing barrier BEFORE reading the offsets: an event
            # in processing when the offsets are read would otherwise have its table writes
            # in this commit's changelog but its offset left out, and a crash before the
            # next commit would apply it twice.
            barrier = self.app.barrier
            if barrier is not None and not await barrier.hold(self.app.conf.shutdown_timeout):
                raise CommitPostponed("events still in processing; the commit waits a turn")
            try:
                if self.consumer is not None and self.consumer.membership_lost():
                    # Its changelog writes could overwrite a new owner's: the rebalance
                    # that follows drops this work (on_partitions_lost).
                    raise CommitPostponed("the group has dropped this worker; rejoining")
                offsets = self.committable(only)
                self._since_commit = 0
                began = time.monotonic()
                await self.app.checkpoint(offsets)
                if offsets:
                    self.commit_latency.observe(time.monotonic() - began)
            finally:
                if barrier is not None:
                    barrier.release()
            for tp, offset in offsets.items():
                tracker = self.trackers.get(tp)
                if tracker is not None:
                    tracker.committed = offset
            if offsets:
                self.commits += 1
            return offsets

    async def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Step 4 of the commit sequence: the group's offsets (called by the checkpoint)."""
        if offsets and self.consumer is not None:
            await self.consumer.commit(dict(offsets))

    # ------------------------------------------------------------------ rebalances

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Commit what was processed of ``revoked``, then let go of them (called by the
        consumer before it gives them up)."""
        if not revoked:
            return
        log.info("partitions revoked: %s", _format(revoked))
        await self._let_go(revoked, commit=True)

    async def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        """The group dropped this worker: ``lost`` may be another worker's already, so
        nothing of them is committed or written any more; what was processed since the
        last commit is dropped (their next owner processes it again)."""
        if not lost:
            return
        log.warning(
            "partitions lost: %s (the group dropped this worker; work since the last commit "
            "is dropped and done again by their next owner)",
            _format(lost),
        )
        await self._let_go(lost, commit=False)

    async def _let_go(self, partitions: set[TopicPartition], *, commit: bool) -> None:
        self.app.rebalance_started()
        if self._unready & partitions:
            await self._stop_preparing()
            self._unready -= partitions
        aborted: TransactionAbortedError | None = None
        if commit:
            try:
                await self.commit(only=set(partitions))
            except TransactionAbortedError as exc:
                aborted = exc  # the partitions kept are rewound below, these forgotten
            except Exception as exc:  # noqa: BLE001 - the next owner re-reads from the last commit
                log.warning("commit on revoke failed: %r", exc)
            self._forget(partitions)
        else:
            async with self._commit_lock:
                barrier = self.app.barrier
                held = barrier is not None and await barrier.hold(self.app.conf.shutdown_timeout)
                try:
                    await self.app.discard_uncommitted()
                    self._forget(partitions)
                finally:
                    if held and barrier is not None:
                        barrier.release()
        dropped = self.app.drop_revoked()
        if dropped:
            log.info("dropped %d queued batch(es) of revoked partitions", dropped)
        self._log_holding(set(self.trackers))
        await self.app.partitions_revoked(partitions)
        if aborted is not None:
            await self._rewind(set(self.trackers), aborted)
        self._start_preparing()

    async def _rewind(self, held: set[TopicPartition], cause: BaseException) -> None:
        """After an aborted exactly-once transaction: every partition held goes back to its
        committed offset, with its tables as committed (closed and prepared again: their
        stores were not written since), as after a loss and a new assignment of the same
        partitions, so the events since the last commit are processed again, once."""
        log.warning(
            "the commit's transaction was aborted (%s): partitions %s go back to their "
            "committed offsets",
            cause,
            _format(held) if held else "(none)",
        )
        self.app.rebalance_started()
        if self._unready & held:
            await self._stop_preparing()
        async with self._commit_lock:
            barrier = self.app.barrier
            hold = barrier is not None and await barrier.hold(self.app.conf.shutdown_timeout)
            try:
                await self.app.discard_uncommitted()
                self._forget(held)
            finally:
                if hold and barrier is not None:
                    barrier.release()
        self.app.drop_revoked()
        await self.app.partitions_revoked(held)
        consumer = self.consumer
        if consumer is None or not held:
            return
        # Paused before the first await: the fetch loop runs while the committed offsets
        # are looked up, and a partition sought back and given its new tracker must not
        # hand out records before its tables are prepared again (they are closed now: an
        # event of it reached an agent under load, which crashed on the closed table).
        # Unready only once every one has its tracker, so that no prepare task running
        # meanwhile resumes one without.
        consumer.pause(*held)
        for tp in held:
            committed = await consumer.committed(tp)
            if committed is not None:
                consumer.seek(tp, committed)
            elif self.app.conf.consumer_auto_offset_reset == "latest":
                await consumer.seek_to_end(tp)
            else:
                await consumer.seek_to_beginning(tp)
            self.trackers[tp] = PartitionTracker(tp.topic, tp.partition)
        self._unready |= held
        self._start_preparing()

    def _forget(self, partitions: set[TopicPartition]) -> None:
        redo = 0
        for tp in partitions:
            tracker = self.trackers.pop(tp, None)
            if tracker is not None:
                redo += tracker.processed_uncommitted()
                tracker.revoke()
        if redo:
            log.info(
                "%d record(s) processed here after the last commit of these partitions: "
                "their next owner processes them again",
                redo,
            )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Pause what is new and prepare it in the background (see the module docstring);
        returns at once, so the group protocol's heartbeats go on during a recovery."""
        log.info("partitions assigned: %s", _format(assigned) if assigned else "(none)")
        self.rebalances += 1
        self.app.rebalance_started()
        new = {tp for tp in assigned if tp not in self.trackers}
        if self.consumer is not None:
            self.app.standbys_assigned(self.consumer.standby_assignment(), set(self.trackers) | new)
        self._log_holding(set(self.trackers) | new)
        if not new:
            if not self._unready:
                await self.app.rebalance_complete()
            return
        for tp in new:
            self.trackers[tp] = PartitionTracker(tp.topic, tp.partition)
        if self.consumer is not None:  # None only once closing
            self.consumer.pause(*new)
        self._unready |= new
        self._start_preparing()

    @staticmethod
    def _log_holding(partitions: set[TopicPartition]) -> None:
        """The whole assignment after a change: a cooperative rebalance assigns and revokes
        only what moves, so the lines above say what changed, this one what is held."""
        log.info("holding partitions: %s", _format(partitions) if partitions else "(none)")

    def _start_preparing(self) -> None:
        if self._unready and (self._preparing is None or self._preparing.done()):
            self._preparing = asyncio.create_task(self._prepare(), name="conductor:prepare")

    async def _stop_preparing(self) -> None:
        task, self._preparing = self._preparing, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                _reraise_if_cancelled()

    async def _prepare(self) -> None:
        """Prepare unready partitions until none is left, retrying failures with backoff."""
        backoff = 0.1
        while self._unready:
            wanted = set(self._unready)
            try:
                await self.app.prepare_partitions(wanted)
            except asyncio.CancelledError:
                raise
            except (TransportError, RecoveryError) as exc:  # an outage: the partitions wait
                log.warning(
                    "partitions %s are not ready: %s (retrying in %.1f s)",
                    _format(wanted),
                    exc,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except Exception as exc:  # noqa: BLE001 - a store or changelog that cannot be used
                self.app.crash(exc)
                return
            ready = wanted & self._unready
            self._unready -= ready
            if not ready:
                continue
            if self.consumer is not None:
                self.consumer.resume(*ready)
            log.info("partitions ready: %s", _format(ready))
            try:
                await self.app.partitions_ready(ready)
                if not self._unready:
                    await self.app.rebalance_complete()
            except Exception:  # noqa: BLE001 - a hook's failure is the hook's, not the data's
                log.exception("a partitions-assigned hook failed")


def _reraise_if_cancelled() -> None:
    """After awaiting a task we cancelled: its CancelledError is expected, but when the
    task running this code was cancelled meanwhile (a second Ctrl-C while stopping), that
    cancellation must go on; swallowing it left the worker waiting out its whole
    shutdown_timeout."""
    current = asyncio.current_task()
    if current is not None and current.cancelling():
        raise asyncio.CancelledError


def _format(partitions: set[TopicPartition]) -> str:
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return "; ".join(f"{t} {sorted(p)}" for t, p in sorted(by_topic.items()))
