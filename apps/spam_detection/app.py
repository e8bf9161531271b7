"""The spam detection app: ``streamlog worker apps/spam_detection/app.py``.

Topology (see docs/apps-spam.md):

* ``users`` (key user id) -> ``accounts``, a table co-partitioned with ``pin_events``;
* ``pin_events`` (key user id) -> burst and duplicate-text signals (sliding windows per
  user and per user and text); ``create`` pins with a domain by a young account are
  re-keyed by domain into ``spam-domain-links``; ``report`` events re-keyed by the
  reported user into ``spam-reports``;
* ``spam-domain-links`` (key domain) -> the domain-ring signal (sliding windows of the
  distinct young accounts per domain);
* ``spam-reports`` (key reported user) -> the report signal (sliding windows of the
  distinct reporters);
* every signal sends to ``spam_flags`` (key user id); ``spam_flags`` -> ``flagged``, a
  global table every worker serves on its page ``/spam/``.

Each record's timestamp is the event time (the value's ``ts``), and the signals' windowed
tables run on it, so replaying a day of events gives the flags it gave live. Each signal
also keeps a session-windowed table of its firings: a signal flags once per episode.
"""

from __future__ import annotations

import os
from typing import Any

from streamlog import App

from . import records
from .page import PAGE
from .settings import Thresholds
from .signals import burst, domain_ring, duplicate, reports
from .signals.burst import Burst
from .signals.domain_ring import DomainRing
from .signals.duplicate import Duplicate
from .signals.reports import Reports

LIMITS = Thresholds.from_environ()

app = App(
    os.environ.get("SPAM_APP_ID", "spam-detection"),
    topic_partitions=int(os.environ.get("SPAM_PARTITIONS", "4")),
    broker_commit_interval=0.2,
    shutdown_timeout=5.0,
)

users_topic = app.topic("users", key_type=str, value_serializer="json")
pin_events = app.topic("pin_events", key_type=str, value_serializer="json")
spam_flags = app.topic("spam_flags", key_type=str, value_serializer="json")
domain_links = app.topic("spam-domain-links", key_type=str, value_serializer="json")
report_events = app.topic("spam-reports", key_type=str, value_serializer="json")

accounts = app.Table("accounts", default=dict, key_type=str)
bursts = Burst.declare(app, LIMITS)
duplicates = Duplicate.declare(app, LIMITS)
rings = DomainRing.declare(app, LIMITS)
reported = Reports.declare(app, LIMITS)
flagged = app.GlobalTable("flagged", default=dict, key_type=str)
# links by accounts whose ``users`` record has not been read yet (the two topics are read
# independently, so a pin may come first); released when the account arrives
waiting_links = app.Table("waiting-links", default=list, key_type=str)
WAITING_MAX = 100  # links kept per unknown account; older ones are dropped


async def send_flag(user_id: str, score: float, reason: str, ts: float) -> None:
    """One ``spam_flags`` record: the start of one signal episode for one user."""
    value = {"user_id": user_id, "score": score, "reasons": [reason], "ts": ts}
    await spam_flags.send(key=user_id, value=value, timestamp=ts)


@app.agent(users_topic)
async def register(stream: Any) -> None:
    """Keeps each account's creation time, for the domain ring's age test."""
    async for user in stream:
        parsed = records.account(user)
        if parsed is None:
            continue
        user_id, created = parsed
        accounts[user_id] = {"created_ts": created, "verified": user.get("verified") is True}
        waiting = list(waiting_links[user_id])
        if waiting:
            del waiting_links[user_id]
            for link in waiting:
                await link_domain(user_id, created, link["domain"], float(link["ts"]))


async def link_domain(user_id: str, created: float | None, domain: str, ts: float) -> None:
    """Passes a young account's link on to the domain's partition (``spam-domain-links``)."""
    if domain_ring.is_young(created, ts, LIMITS.ring_account_age_s):
        await domain_links.send(
            key=domain, value={"domain": domain, "user_id": user_id, "ts": ts}, timestamp=ts
        )


@app.agent(pin_events)
async def watch_pins(stream: Any) -> None:
    """Per-user signals, and the re-keying the other two signals need."""
    async for event in stream:
        parsed = records.pin_event(event)
        if parsed is None:
            continue
        user_id, action, ts = parsed
        if action == "report":
            target = records.text_field(event, "target_user_id")
            if target:
                await report_events.send(
                    key=target, value={"target": target, "reporter": user_id, "ts": ts},
                    timestamp=ts,
                )  # fmt: skip
            continue
        if action != "create":
            continue
        fired = bursts.observe(user_id)
        if fired is not None:
            await send_flag(user_id, fired, burst.NAME, ts)
        fired = duplicates.observe(user_id, records.text_field(event, "text"))
        if fired is not None:
            await send_flag(user_id, fired, duplicate.NAME, ts)
        domain = records.text_field(event, "domain")
        if not domain:
            continue
        account = accounts[user_id]
        if account:
            await link_domain(user_id, account["created_ts"], domain, ts)
        else:
            waiting = [*waiting_links[user_id], {"domain": domain, "ts": ts}]
            waiting_links[user_id] = waiting[-WAITING_MAX:]


@app.agent(domain_links)
async def watch_domains(stream: Any) -> None:
    """The domain ring: distinct young accounts per domain in the window."""
    async for link in stream:
        for user_id, value in rings.observe(link["domain"], link["user_id"]):
            await send_flag(user_id, value, domain_ring.NAME, float(link["ts"]))


@app.agent(report_events)
async def watch_reports(stream: Any) -> None:
    """Distinct reporters per reported user in the window."""
    async for report in stream:
        fired = reported.observe(report["target"], report["reporter"])
        if fired is not None:
            await send_flag(report["target"], fired, reports.NAME, float(report["ts"]))


@app.agent(spam_flags)
async def keep_flagged(stream: Any) -> None:
    """The flagged users: the highest score and every reason seen, for the page."""
    async for flag in stream:
        user_id = flag["user_id"]
        row = dict(flagged[user_id])
        reasons = sorted({*row.get("reasons", []), *flag["reasons"]})
        flagged[user_id] = {
            "user_id": user_id,
            "score": max(float(flag["score"]), float(row.get("score", 0.0))),
            "reasons": reasons,
            "flags": int(row.get("flags", 0)) + 1,
            "first_ts": row.get("first_ts", flag["ts"]),
            "last_ts": flag["ts"],
        }


@app.page("/spam/")
async def spam_page(web: Any, request: Any) -> Any:
    """The live page: the flagged users, searchable, refreshed every two seconds."""
    return web.html(PAGE)


@app.page("/spam/flagged.json")
async def spam_flagged(web: Any, request: Any) -> Any:
    """Every flagged user (the table is global: each worker has all of them)."""
    rows = sorted((dict(v) for _, v in flagged.items()), key=lambda r: (-r["score"], r["user_id"]))
    return web.json({"flagged": rows, "count": len(rows)})
