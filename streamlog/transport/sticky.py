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

*Standby* tasks (Kafka Streams' standby replicas, Faust's ``table_standby_replicas``):
each task may also be given to N other members, which keep its table partitions warm by
following their changelogs. Members that held a task (as standby or active) in the last
generation are *warm* for it: a task whose owner left goes to a warm member when the
balance allows, so a failover replays only the changelog's tail; standbys stay where they
were, so a store is not rebuilt elsewhere at every rebalance.

Pure functions over plain values: the Kafka group leader (``kafka/assignors.py``) and the
embedded groups (``embedded/groups.py``) use the same rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from streamlog.transport.types import TopicPartition

__all__ = ["Claim", "cooperative_assign", "standby_assign", "tasks_of"]

Task = frozenset[TopicPartition]


@dataclass(frozen=True, slots=True)
class Claim:
    """What a member reads, what it owns now (its ``owned_partitions``) and what it keeps
    warm (the standby partitions of the last generation)."""

    topics: frozenset[str]
    owned: frozenset[TopicPartition] = frozenset()
    warm: frozenset[TopicPartition] = frozenset()


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
    extra_total = extra
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
    # 2. the rest to a warm member with room, else whoever eligible has fewest, lowest
    #    id first; "room" keeps the balance: below the base share, or at it while shares
    #    of base + 1 remain
    for task in tasks:
        if task in taken:
            continue
        candidates = [m for m in members if eligible(m, task)]
        if not candidates:
            continue
        above = sum(1 for m in members if len(result[m]) > base)
        roomy = [
            m
            for m in candidates
            if len(result[m]) < base or (len(result[m]) == base and above < extra_total)
        ]
        chosen = min(
            roomy or candidates,
            key=lambda m: (not task <= claims[m].warm, len(result[m]), m),
        )
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


def standby_assign(
    counts: Mapping[str, int],
    claims: Mapping[str, Claim],
    active: Mapping[str, set[TopicPartition]],
    replicas: int,
) -> dict[str, set[TopicPartition]]:
    """Every member's standby partitions: up to ``replicas`` members per task, never the
    member ``active`` gives the task to.

    Preferred, in order: a member below its share of standbys (at most the ceiling of
    copies / members each), one with fewer active tasks (a departed member's tasks go
    where there is room), one with fewer copies of the same member's tasks (they are
    spread when it leaves), warm for the task (its standby last generation), one that
    owned it (it is being moved away: its store is current), then whoever holds fewest
    standbys, lowest id first. A task nobody is active for this round (withheld while it
    moves) gets standbys too, so its stores stay current meanwhile.
    """
    members = sorted(claims)
    result: dict[str, set[TopicPartition]] = {m: set() for m in members}
    if replicas <= 0 or len(members) < 2:
        return result
    tasks = sorted(tasks_of(counts, claims), key=_order)
    counts_held = {m: 0 for m in members}
    # no member keeps more than its share of copies while another could take one; a
    # member with more active tasks may keep fewer (it gets no departed member's tasks)
    share = -(-len(tasks) * min(replicas, len(members) - 1) // len(members))

    def full(member: str) -> bool:
        return counts_held[member] >= share

    # fewer active tasks first: where a departed member's tasks will go when it leaves
    load = {m: len(tasks_in(active.get(m, set()), tasks)) for m in members}
    # copies of one member's tasks spread over the others: when it leaves, its tasks
    # are spread over the survivors too
    covering: dict[tuple[str, str | None], int] = {}
    for task in tasks:
        owner = next((m for m in members if task & active.get(m, set())), None)
        candidates = [
            m
            for m in members
            if not task & active.get(m, set()) and all(tp.topic in claims[m].topics for tp in task)
        ]
        ranked = sorted(
            candidates,
            key=lambda m: (
                full(m),
                load[m],
                covering.get((m, owner), 0),
                not task <= claims[m].warm,
                not task <= claims[m].owned,
                counts_held[m],
                m,
            ),
        )
        for member in ranked[:replicas]:
            result[member].update(task)
            counts_held[member] += 1
            covering[(member, owner)] = covering.get((member, owner), 0) + 1
    _even_out(tasks, result, counts_held, share, active, claims)
    return result


def tasks_in(partitions: set[TopicPartition], tasks: list[Task]) -> list[Task]:
    """The tasks ``partitions`` hold (any of their partitions)."""
    return [task for task in tasks if task & partitions]


def _even_out(
    tasks: list[Task],
    result: dict[str, set[TopicPartition]],
    held: dict[str, int],
    share: int,
    active: Mapping[str, set[TopicPartition]],
    claims: Mapping[str, Claim],
) -> None:
    """Move standbys from members above their share to members below it, where the one
    below may hold the task (the greedy pass can corner itself on the last tasks)."""
    while True:
        over = [m for m in sorted(result, key=lambda m: (-held[m], m)) if held[m] > share]
        under = [m for m in sorted(result, key=lambda m: (held[m], m)) if held[m] < share]
        move = next(
            (
                (giver, taker, task)
                for giver in over
                for taker in under
                for task in tasks
                if task <= result[giver]
                and not task & result[taker]
                and not task & active.get(taker, set())
                and all(tp.topic in claims[taker].topics for tp in task)
            ),
            None,
        )
        if move is None:
            return
        giver, taker, task = move
        result[giver] -= task
        result[taker] |= task
        held[giver] -= 1
        held[taker] += 1
