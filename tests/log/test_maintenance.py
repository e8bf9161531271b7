"""Maintenance passes: one failing partition never stops the others' retention or cleaning.

The probe's case: a partition whose maintenance raised ended every pass, so topics after it
kept all their records past ``retention.ms``. Here one partition is made to fail for real
(segment files removed underneath the log) and the clock the log takes is moved by hand: no sleeps.
"""

from __future__ import annotations

import logging
import os

from streamlog.log.clock import ManualClock
from streamlog.log.maintenance import FIRST_RETRY_MS
from streamlog.log.manager import LogManager

from .logutil import make_batch, read_all_records

RETENTION = {"retention.ms": "2000", "segment.bytes": "2000"}
MAINTENANCE_LOG = "streamlog.log.maintenance"


def fill(m: LogManager, topic: str, clock: ManualClock, batches: int = 30) -> None:
    for i in range(batches):
        m.append(topic, 0, make_batch(2, start=i * 2, ts=clock.time_ms()))


def maintenance_messages(caplog, level: int) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == MAINTENANCE_LOG and r.levelno == level
    ]


def test_a_partition_whose_retention_fails_does_not_stop_the_others(tmp_path, caplog) -> None:
    clock = ManualClock()
    with LogManager.open(str(tmp_path), clock=clock) as m:
        m.create_topic("a-broken", 1, RETENTION)
        m.create_topic("z-healthy", 1, RETENTION)
        order = [topic for topic, _, _ in m.all_logs()]
        assert order.index("a-broken") < order.index("z-healthy")  # the failure comes first
        fill(m, "a-broken", clock)
        fill(m, "z-healthy", clock)
        broken = m.partition("a-broken", 0)
        healthy = m.partition("z-healthy", 0)
        assert len(broken.segments) > 2
        victim = broken.segments[0].files.log
        os.unlink(victim)  # removed underneath the log: retention cannot rename it

        clock.advance(3_000)  # every record is now past retention.ms
        with caplog.at_level(logging.INFO, logger=MAINTENANCE_LOG):
            report = m.run_maintenance()
        assert report.failed == ("a-broken-0 retention",)
        assert healthy.log_start_offset == healthy.log_end_offset == 60
        assert broken.log_start_offset == 0  # the failed segment is still whole in the log
        assert len(read_all_records(broken)) == 60
        errors = maintenance_messages(caplog, logging.ERROR)
        assert len(errors) == 1
        assert errors[0].startswith("a-broken-0: retention failed (FileNotFoundError")
        assert caplog.records[0].exc_info is not None  # the traceback, once

        # Within the backoff the broken partition is left alone; the others are not.
        caplog.clear()
        fill(m, "z-healthy", clock, batches=5)
        clock.advance(FIRST_RETRY_MS // 2)
        with caplog.at_level(logging.INFO, logger=MAINTENANCE_LOG):
            assert m.run_maintenance().failed == ()
        assert caplog.records == []

        # After it, one more attempt: a warning without a traceback, and a longer wait.
        clock.advance(FIRST_RETRY_MS)
        fill(m, "z-healthy", clock, batches=5)
        clock.advance(2_500)
        with caplog.at_level(logging.INFO, logger=MAINTENANCE_LOG):
            report = m.run_maintenance()
        assert report.failed == ("a-broken-0 retention",)
        assert healthy.log_start_offset == healthy.log_end_offset == 80
        warnings = maintenance_messages(caplog, logging.WARNING)
        assert len(warnings) == 1 and "failed again (2 attempts" in warnings[0]
        assert "retrying in 2000 ms" in warnings[0]

        # Once the file is back, retention catches up and says so.
        caplog.clear()
        open(victim, "wb").close()
        clock.advance(2 * FIRST_RETRY_MS)
        with caplog.at_level(logging.INFO, logger=MAINTENANCE_LOG):
            report = m.run_maintenance()
        assert report.failed == ()
        assert broken.log_start_offset == broken.log_end_offset == 60
        infos = maintenance_messages(caplog, logging.INFO)
        assert infos == ["a-broken-0: retention works again after 2 failed attempts"]


def test_a_compacted_partition_that_cannot_be_cleaned_does_not_stop_the_others(
    tmp_path, caplog
) -> None:
    clock = ManualClock()
    compacted = {"cleanup.policy": "compact", "segment.bytes": "2000"}
    compacted["min.cleanable.dirty.ratio"] = "0.1"
    data = str(tmp_path)
    with LogManager.open(data, clock=clock) as m:
        m.create_topic("a-table", 1, compacted)
        m.create_topic("m-table", 1, compacted)
        m.create_topic("z-events", 1, RETENTION)
        for _ in range(20):
            m.append("a-table", 0, make_batch(2, keys=[b"a", b"b"], ts=clock.time_ms()))
            m.append("m-table", 0, make_batch(2, keys=[b"a", b"b"], ts=clock.time_ms()))
        fill(m, "z-events", clock)
        # removed underneath the log: the cleaner cannot swap the cleaned segment in
        os.unlink(m.partition("a-table", 0).segments[0].files.log)
        clock.advance(3_000)
        with caplog.at_level(logging.ERROR, logger=MAINTENANCE_LOG):
            report = m.run_maintenance()
        assert report.failed == ("a-table-0 compaction",)
        assert report.logs_cleaned == 1  # m-table
        events = m.partition("z-events", 0)
        assert events.log_start_offset == events.log_end_offset == 60
        table = m.partition("m-table", 0)
        kept = [r for r in read_all_records(table) if r.offset < table.active_segment.base_offset]
        assert len(kept) <= 2
        errors = maintenance_messages(caplog, logging.ERROR)
        assert len(errors) == 1 and errors[0].startswith("a-table-0: compaction failed")
        assert "FileNotFoundError" in errors[0]
        # The partition that cannot be cleaned still takes appends and serves reads.
        broken = m.partition("a-table", 0)
        end = broken.log_end_offset
        assert m.append("a-table", 0, make_batch(1, keys=[b"c"])).base_offset == end


def test_failures_of_a_deleted_topic_are_forgotten(tmp_path, caplog) -> None:
    clock = ManualClock()
    with LogManager.open(str(tmp_path), clock=clock) as m:
        m.create_topic("gone", 1, RETENTION)
        fill(m, "gone", clock)
        os.unlink(m.partition("gone", 0).segments[0].files.log)
        clock.advance(3_000)
        assert m.run_maintenance().failed == ("gone-0 retention",)
        m.delete_topic("gone")
        m.create_topic("gone", 1, RETENTION)  # same name, new log: no inherited backoff
        fill(m, "gone", clock)
        clock.advance(3_000)
        with caplog.at_level(logging.INFO, logger=MAINTENANCE_LOG):
            report = m.run_maintenance()
        assert report.failed == () and report.segments_deleted > 0
        # the old log's failure is dropped, not reported as the new log "working again"
        assert maintenance_messages(caplog, logging.INFO) == []
