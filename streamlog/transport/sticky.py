"""Sticky, balanced, co-partitioned assignment for incremental (cooperative) rebalances.

Kafka's eager protocol makes every member give up everything at each rebalance, so a
worker joining the group stops every other worker while partitions that do not move are
revoked, committed, recovered and assigned again. The cooperative protocol (KIP-429)
keeps what stays put: members say what they own, the assignment keeps owned partitions
where the balance allows, and a partition that must move is *withheld* for one round: its
owner, not given it any more, revokes it and rejoins, and the next round, finding it
free, gives it to its new member. No partition is ever owned by two members at once.

The unit of assignment is a *task*, as in Kafka Streams: partition number N of every
subscribed topic, so co-partitioned topics (and the table partition N an app keeps for
them) always move together. When members subscribe to different topics (a group that
mixes consumers), tasks are single partitions and a member gets only topics it reads.

Pure functions over plain values: the Kafka group leader (``kafka/assignors.py``) and the
embedded groups (``embedded/groups.py``) use the same rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from streamlog.transport.types import TopicPartition

__all__ = ["Claim", "cooperative_assign", "tasks_of"]

Task = frozenset[TopicPartition]


@dataclass(frozen=True, slots=True)
class Claim:
    """What a member reads and what it owns now (its ``owned_partitions``)."""

    topics: frozenset[str]
    owned: frozenset[TopicPartition] = frozenset()


def tasks_of(counts: Mapping[str, int], claims: Mapping[str, Claim]) -> list[Task]:
    """The units to assign: partition N of every topic when every member reads the same
    topics, else each partition alone; in a stable order."""
    subscribed = {t for claim in claims.values() for t in claim.topics if counts.get(t)}
    same = len({claim.topics & subscribed for claim in claims.values()}) <= 1
    if same:
        widest = max((counts[t] for t in subscribed), default=0)
        return [
            frozenset(TopicPartition(t, n) for t in sorted(subscribed) if n < counts[t])
            for n in range(widest)
        ]
    return [frozenset({TopicPartition(t, n)}) for t in sorted(subscribed) for n in range(counts[t])]


def _order(task: Task) -> tuple[int, str]:
    first = min(task, key=lambda tp: (tp.partition, tp.topic))
    return first.partition, first.topic


def cooperative_assign(
    counts: Mapping[str, int], claims: Mapping[str, Claim], *, withhold: bool = True
) -> dict[str, set[TopicPartition]]:
    """Every member's partitions for this round (see the module docstring).

    Balanced: members differ by at most one task when all read the same topics. Sticky: a
    member keeps owned tasks up to its share. Safe: a task owned by another member now is
    not given to a new member this round (``withhold=False`` gives the target anyway, for
    a group whose members wait until their target is free, as the embedded groups do).
    """
    members = sorted(claims)
    tasks = sorted(tasks_of(counts, claims), key=_order)
    if not members:
        return {}

    def eligible(member: str, task: Task) -> bool:
        return all(tp.topic in claims[member].topics for tp in task)

    # who owns each task now: one member owning all of it (two claims: nobody, as after
    # a lost member's stale view; the revocation below still stops the stale owner)
    owner: dict[Task, str] = {}
    contested: set[Task] = set()
    for member in members:
        for task in tasks:
            if task <= claims[member].owned:
                if task in owner:
                    contested.add(task)
                owner[task] = member
    for task in contested:
        del owner[task]

    base, extra = divmod(len(tasks), len(members))
    result: dict[str, list[Task]] = {m: [] for m in members}
    # 1. keep owned tasks, up to the share; members owning most take the larger shares
    by_owned = sorted(members, key=lambda m: (-sum(1 for t in tasks if owner.get(t) == m), m))
    taken: set[Task] = set()
    for member in by_owned:
        cap = base + (1 if extra > 0 else 0)
        mine = [t for t in tasks if owner.get(t) == member and eligible(member, t)]
        keep = mine[:cap]
        if len(keep) > base:
            extra -= 1
        result[member].extend(keep)
        taken.update(keep)
    # 2. the rest to whoever eligible has fewest, lowest id first
    for task in tasks:
        if task in taken:
            continue
        candidates = [m for m in members if eligible(m, task)]
        if not candidates:
            continue
        chosen = min(candidates, key=lambda m: (len(result[m]), m))
        result[chosen].append(task)
    # 3. withhold a task another member owns now: it revokes it first (next round)
    out: dict[str, set[TopicPartition]] = {}
    for member, assigned in result.items():
        out[member] = set()
        for task in assigned:
            current = owner.get(task)
            held_elsewhere = any(
                other != member and task & claims[other].owned for other in members
            )
            if withhold and ((current is not None and current != member) or held_elsewhere):
                continue
            out[member].update(task)
    return out
