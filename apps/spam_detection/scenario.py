"""Generated traffic: normal users and seeded spammers of each kind, with the ground truth.

Pure and deterministic (one ``random.Random(seed)``), so a test can build the same events
the generator sends and check the app's flags against the truth.

Normal users post, save and click at a human pace on a wide range of domains with varied
text; a few come close to a threshold without crossing it ("near misses": a busy poster,
a user repeating a phrase a few times, a handful of new accounts sharing a domain, a
user with two reports), so precision means something. Each spammer kind crosses exactly
one signal's threshold:

* ``burst``: 40 creates within 40 s (or the duration) by an established account;
* ``duplicate_text``: 14 pins of one text with case and punctuation changes, minutes apart;
* ``domain_ring``: 6 accounts created minutes before, each linking one domain twice;
* ``reports``: a user whose pins 4 distinct users report within half an hour.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

KINDS = ("burst", "duplicate_text", "domain_ring", "reports")
ACTIONS = ("create", "create", "save", "click", "click")
WORDS = (
    "garden recipe travel wood craft summer paint kitchen cozy vintage lamp chair pasta "
    "lemon hike coast city night rain autumn knit quilt tea bread cake bike map sketch "
    "poster frame plant fern moss stone clay glaze vase light shadow blue green gold"
).split()
RING_SIZE = 6
DAY = 86400.0


@dataclass
class Scenario:
    """The records to send and who really is a spammer."""

    users: list[dict[str, Any]] = field(default_factory=list)
    pins: list[dict[str, Any]] = field(default_factory=list)
    spammers: dict[str, str] = field(default_factory=dict)  # user id -> kind

    def truth(self) -> dict[str, Any]:
        """The ground truth as written aside by the generator."""
        return {
            "spammers": dict(sorted(self.spammers.items())),
            "users": len(self.users),
            "pin_events": len(self.pins),
        }


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9)))


def _pin(uid: str, n: int, action: str, ts: float, text: str, domain: str) -> dict[str, Any]:
    return {
        "user_id": uid, "pin_id": f"{uid}-p{n}", "action": action,
        "domain": domain, "text": text, "ts": round(ts, 3),
    }  # fmt: skip


def build(
    seed: int, rate: float, duration: float, start: float, spammers_per_kind: int = 3
) -> Scenario:
    """``rate`` normal events a second for ``duration`` s of event time from ``start``,
    plus ``spammers_per_kind`` spammers of each kind and the near misses."""
    rng = random.Random(seed)
    out = Scenario()
    n_normal = max(100, int(rate * duration / 6))
    normal = [f"u{i:05d}" for i in range(n_normal)]
    for uid in normal:
        # 2% of normal accounts are new; the rest are weeks to years old
        young = rng.random() < 0.02
        age = rng.uniform(60, 3600) if young else rng.uniform(2 * DAY, 900 * DAY)
        out.users.append(
            {"user_id": uid, "created_ts": round(start - age, 3), "verified": rng.random() < 0.3}
        )
    domains = [f"site{i}.example" for i in range(max(200, n_normal // 2))]
    counters: dict[str, int] = {}

    def pin(uid: str, action: str, ts: float, text: str = "", domain: str = "") -> None:
        counters[uid] = counters.get(uid, 0) + 1
        out.pins.append(_pin(uid, counters[uid], action, ts, text or _text(rng), domain))

    reported_once: set[str] = set()
    for i in range(int(rate * duration)):
        ts = start + i / rate
        uid = rng.choice(normal)
        action = rng.choice(ACTIONS)
        if rng.random() < 0.01:
            target = rng.choice(normal)
            if target != uid and target not in reported_once:
                reported_once.add(target)  # an unlucky normal user gets at most one report
                out.pins.append({**_pin(uid, 0, "report", ts, "", ""), "target_user_id": target})
                continue
        pin(uid, action, ts, domain=rng.choice(domains) if action == "create" else "")

    def when(span: float) -> float:
        return start + rng.uniform(0, max(0.0, duration - span))

    # near misses: one under each threshold
    for k in range(spammers_per_kind):
        busy = f"near-busy{k}"
        out.users.append({"user_id": busy, "created_ts": start - 30 * DAY, "verified": True})
        step = min(2.0, duration / 25)
        t0 = when(24 * step)
        for j in range(25):  # 25 creates in under a minute: busy, not a bot
            pin(busy, "create", t0 + j * step, domain=rng.choice(domains))
        rep = f"near-repeat{k}"
        out.users.append({"user_id": rep, "created_ts": start - 40 * DAY, "verified": False})
        step = min(30.0, duration / 8)
        phrase, t0 = _text(rng), when(7 * step)
        for j in range(8):
            pin(rep, "create", t0 + j * step, text=phrase if j % 2 else phrase.upper() + "!")
        step = min(60.0, duration / 4)
        t0, shared = when(3 * step), f"near-shared{k}.example"
        for j in range(4):  # four new accounts, one domain: under the ring's five
            uid = f"near-new{k}-{j}"
            out.users.append({"user_id": uid, "created_ts": t0 - 600, "verified": False})
            pin(uid, "create", t0 + j * step, domain=shared)
        disliked = rng.choice(normal)
        if disliked not in reported_once:
            reported_once.add(disliked)
            step = min(60.0, duration / 2)
            t0 = when(step)
            for j, reporter in enumerate(rng.sample(normal, 2)):  # two reporters: under three
                if reporter != disliked:
                    report = {**_pin(reporter, 0, "report", t0 + j * step, "", "")}
                    out.pins.append({**report, "target_user_id": disliked})

    for k in range(spammers_per_kind):
        uid = f"spam-burst{k}"
        out.spammers[uid] = "burst"
        out.users.append({"user_id": uid, "created_ts": start - 10 * DAY, "verified": False})
        step = min(1.0, duration / 40)
        t0 = when(39 * step)
        for j in range(40):  # 40 creates in under a minute
            pin(uid, "create", t0 + j * step, domain=rng.choice(domains))

        uid = f"spam-dup{k}"
        out.spammers[uid] = "duplicate_text"
        out.users.append({"user_id": uid, "created_ts": start - 5 * DAY, "verified": False})
        step = min(30.0, duration / 14)
        phrase, t0 = f"Buy cheap {rng.choice(WORDS)} now", when(13 * step)
        for j in range(14):
            variant = phrase.upper() if j % 3 == 0 else phrase + "!!" if j % 3 == 1 else phrase
            pin(uid, "create", t0 + j * step, text=variant)

        step = min(100.0, duration / (2 * RING_SIZE))
        t0, domain = when((2 * RING_SIZE - 1) * step), f"ring{k}.example"
        for j in range(RING_SIZE):
            uid = f"spam-ring{k}-{j}"
            out.spammers[uid] = "domain_ring"
            out.users.append({"user_id": uid, "created_ts": t0 - 300, "verified": False})
            for r in range(2):
                pin(uid, "create", t0 + (2 * j + r) * step, domain=domain)

        uid = f"spam-reported{k}"
        out.spammers[uid] = "reports"
        out.users.append({"user_id": uid, "created_ts": start - 20 * DAY, "verified": False})
        step = min(400.0, duration / 5)
        t0 = when(1 + 3 * step)
        pin(uid, "create", t0, domain=rng.choice(domains))
        for j, reporter in enumerate(rng.sample(normal, 4)):
            report = _pin(reporter, 0, "report", t0 + 1 + j * step, "", "")
            out.pins.append({**report, "target_user_id": uid})

    out.pins.sort(key=lambda p: p["ts"])
    for n, event in enumerate(out.pins):
        if event["action"] == "report":
            event["pin_id"] = f"report-{n}"
    return out
