"""``/metrics``: the app's counters as Prometheus metric families, on ``prometheus_client``.

Each web server has its own ``CollectorRegistry`` holding one ``AppCollector`` (nothing
goes to the client library's global default registry): the collector reads the app's own
counters when scraped, so the hot path keeps plain integers and nothing is counted twice.
Every sample carries ``app`` (the app id). The families:

========================================== ========= ==========================================
``streamlog_records_fetched_total``        counter   records the app's consumer handed out
``streamlog_commits_total``                counter   commits that moved offsets
``streamlog_events_in_total``              counter   events an agent took, by ``topic``, ``agent``
``streamlog_events_out_total``             counter   records sent through ``Topic.send``, by
                                                     ``topic`` and sending ``agent`` ("" outside
                                                     agents)
``streamlog_processing_latency_seconds``   histogram per ``agent``: from a batch being handed to
                                                     the agent until it asks past the batch's
                                                     last event (one observation per batch)
``streamlog_commit_latency_seconds``       histogram one commit sequence (flush, changelogs,
                                                     offsets)
``streamlog_consumer_lag``                 gauge     records not processed yet, per ``topic``,
                                                     ``partition`` (when measured)
``streamlog_consumer_lag_sum``             gauge     their sum
``streamlog_recovery_replayed_records``    gauge     changelog offsets replayed by the latest
                                                     recovery of a ``table`` ``partition``
``streamlog_recovery_target_records``      gauge     offsets that recovery replays (progress
                                                     = replayed / target; 0 of 0: up to date)
``streamlog_recovered_records_total``      counter   changelog records applied, per ``table``
``streamlog_table_partitions``             gauge     table partitions held, per ``table``
``streamlog_standby_lag``                  gauge     changelog records a standby copy of a
                                                     ``table`` ``partition`` is behind (measured
                                                     about every second)
``streamlog_standby_records_total``        counter   changelog records standbys applied
``streamlog_late_events_total``            counter   events too late for their window, per
                                                     windowed ``table``
``streamlog_agent_errors_total``           counter   events an agent failed on, per ``agent``
``streamlog_agent_dead_lettered_total``    counter   events dead-lettered, per ``agent``
``streamlog_rebalances_total``             counter   partition assignments received
``streamlog_transactions_total``           counter   exactly-once transactions, by ``outcome``
                                                     (``committed``, ``aborted``); absent under
                                                     at-least-once
``streamlog_assigned_partitions``          gauge     topic partitions held, per ``topic``
========================================== ========= ==========================================
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

    from streamlog.dsl.app.app import App
    from streamlog.dsl.app.lag import ConsumerLag
    from streamlog.dsl.runtime.meters import Histogram

__all__ = ["AppCollector", "make_registry", "exposition", "CONTENT_TYPE"]

# Prometheus' text format 0.0.4 (what every Prometheus server reads)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class AppCollector:
    """A custom collector (``prometheus_client``'s protocol: ``collect()`` yields metric
    families) over one app's counters. ``lag`` is the consumer lag the server measured for
    the scrape under way (measuring it awaits the broker, which ``collect`` cannot)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.lag: ConsumerLag | None = None

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        app = self.app
        app_id = app.conf.id
        conductor = app.conductor

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return CounterMetricFamily(name, doc, labels=("app", *labels))

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return GaugeMetricFamily(name, doc, labels=("app", *labels))

        fetched = counter("streamlog_records_fetched", "Records the app's consumer handed out.")
        fetched.add_metric([app_id], conductor.records_fetched)
        yield fetched
        commits = counter("streamlog_commits", "Commits that moved offsets.")
        commits.add_metric([app_id], conductor.commits)
        yield commits
        rebalances = counter("streamlog_rebalances", "Partition assignments received.")
        rebalances.add_metric([app_id], conductor.rebalances)
        yield rebalances
        outcomes = app.transaction_counts
        if outcomes is not None:
            transactions = counter(
                "streamlog_transactions", "Exactly-once transactions ended.", ("outcome",)
            )
            for outcome, count in outcomes.items():
                transactions.add_metric([app_id, outcome], count)
            yield transactions

        held = gauge("streamlog_assigned_partitions", "Topic partitions held.", ("topic",))
        per_topic: dict[str, int] = {}
        for tp in conductor.assignment():
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + 1
        for topic, count in sorted(per_topic.items()):
            held.add_metric([app_id, topic], count)
        yield held

        events_in = counter(
            "streamlog_events_in", "Events an agent took from a topic.", ("topic", "agent")
        )
        errors = counter("streamlog_agent_errors", "Events an agent failed on.", ("agent",))
        dead = counter("streamlog_agent_dead_lettered", "Events dead-lettered.", ("agent",))
        latency = HistogramMetricFamily(
            "streamlog_processing_latency_seconds",
            "Seconds from a batch being handed to an agent until it asked past the batch's "
            "last event (one observation per batch).",
            labels=("app", "agent"),
        )
        for name, agent in sorted(app.agents.items()):
            for topic, count in sorted(agent.meter.events_in.items()):
                events_in.add_metric([app_id, topic, name], count)
            errors.add_metric([app_id, name], agent.processed_errors)
            dead.add_metric([app_id, name], agent.dead_lettered)
            _add_histogram(latency, [app_id, name], agent.meter.latency)
        yield events_in
        yield errors
        yield dead
        yield latency

        events_out = counter(
            "streamlog_events_out",
            "Records sent to a topic (through Topic.send), by the agent sending them.",
            ("topic", "agent"),
        )
        for topic, senders in sorted(app.records_sent.items()):
            for sender, count in sorted(senders.items()):
                events_out.add_metric([app_id, topic, sender], count)
        yield events_out

        commit_latency = HistogramMetricFamily(
            "streamlog_commit_latency_seconds",
            "Seconds per commit sequence (flush, changelog writes, offsets).",
            labels=("app",),
        )
        _add_histogram(commit_latency, [app_id], conductor.commit_latency)
        yield commit_latency

        yield from self._tables(app_id)
        yield from self._connectors(app_id)
        yield from self._lag(app_id)

    def _connectors(self, app_id: str) -> Iterator[Metric]:
        """Per connector (``app.source``/``app.sink``): the records and errors its status
        counts, and for sinks the records taken and not flushed yet."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        connectors = self.app.connectors
        if not connectors.sources and not connectors.sinks:
            return
        labels = ("app", "connector", "kind")
        records = CounterMetricFamily(
            "streamlog_connector_records", "Records a connector read or wrote.", labels=labels
        )
        errors = CounterMetricFamily(
            "streamlog_connector_errors", "Errors a connector counted.", labels=labels
        )
        pending = GaugeMetricFamily(
            "streamlog_connector_unflushed",
            "Records a sink took and has not flushed yet.",
            labels=("app", "connector"),
        )
        status = connectors.status()
        for kind, produced in (("source", "produced"), ("sink", "taken")):
            for name, one in sorted(status[f"{kind}s"].items()):
                count = one.get("records", one.get(produced, 0))
                failures = one.get("errors", 0) + one.get("runner_errors", 0)
                records.add_metric([app_id, name, kind], _number(count))
                errors.add_metric([app_id, name, kind], _number(failures))
                if kind == "sink":
                    pending.add_metric([app_id, name], _number(one.get("unflushed", 0)))
        yield records
        yield errors
        yield pending

    def _tables(self, app_id: str) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        replayed = GaugeMetricFamily(
            "streamlog_recovery_replayed_records",
            "Changelog offsets replayed so far by a table partition's recovery.",
            labels=("app", "table", "partition"),
        )
        to_replay = GaugeMetricFamily(
            "streamlog_recovery_target_records",
            "Changelog offsets a table partition's recovery replays.",
            labels=("app", "table", "partition"),
        )
        recovered = CounterMetricFamily(
            "streamlog_recovered_records",
            "Changelog records applied by recoveries.",
            labels=("app", "table"),
        )
        partitions = GaugeMetricFamily(
            "streamlog_table_partitions", "Table partitions held.", labels=("app", "table")
        )
        late = CounterMetricFamily(
            "streamlog_late_events",
            "Events too late for their window (dropped).",
            labels=("app", "table"),
        )
        for name, table in sorted(self.app.tables.items()):
            for number, (done, total) in sorted(table.recovery.items()):
                replayed.add_metric([app_id, name, str(number)], done)
                to_replay.add_metric([app_id, name, str(number)], total)
            recovered.add_metric([app_id, name], table.recovered_records)
            partitions.add_metric([app_id, name], len(table.active_partitions))
            windowed = table.windowed
            if windowed is not None:
                late.add_metric([app_id, name], getattr(windowed, "late_events", 0))
        standby_lag = GaugeMetricFamily(
            "streamlog_standby_lag",
            "Changelog records a standby copy of a table partition is behind.",
            labels=("app", "table", "partition"),
        )
        for (name, number), behind in sorted(self.app.standbys.lag.items()):
            standby_lag.add_metric([app_id, name, str(number)], behind)
        standby_applied = CounterMetricFamily(
            "streamlog_standby_records",
            "Changelog records applied by standby replicas.",
            labels=("app",),
        )
        standby_applied.add_metric([app_id], self.app.standbys.records_applied)
        yield from (replayed, to_replay, recovered, partitions, late, standby_lag, standby_applied)

    def _lag(self, app_id: str) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        lag = self.lag
        if lag is None:
            return
        per_partition = GaugeMetricFamily(
            "streamlog_consumer_lag",
            "Records of an assigned partition not processed yet "
            "(log end offset - first unacknowledged offset).",
            labels=("app", "topic", "partition"),
        )
        for p in lag.partitions:
            per_partition.add_metric([app_id, p.topic, str(p.partition)], p.lag)
        yield per_partition
        total = GaugeMetricFamily(
            "streamlog_consumer_lag_sum",
            "Records not processed yet, all partitions.",
            labels=("app",),
        )
        total.add_metric([app_id], lag.total)
        yield total


def _add_histogram(family: Any, labels: list[str], histogram: Histogram) -> None:
    family.add_metric(labels, histogram.cumulative(), histogram.sum)


def make_registry(app: App) -> tuple[CollectorRegistry, AppCollector]:
    """A registry of the app's own (never the client library's global one)."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    collector = AppCollector(app)
    registry.register(collector)  # type: ignore[arg-type]
    return registry, collector


def exposition(
    registry: CollectorRegistry, collector: AppCollector, lag: ConsumerLag | None
) -> bytes:
    """The registry in Prometheus' text format 0.0.4, with ``lag`` for this scrape."""
    from prometheus_client import generate_latest

    collector.lag = lag
    try:
        return generate_latest(registry)
    finally:
        collector.lag = None


def _number(value: Any) -> float:
    """A connector's counter as a number (0 when its status gives something else)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
