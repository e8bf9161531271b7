"""The cooperative sticky assignment (streamlog/transport/sticky.py), round by round as a
group runs it: members revoke what they are not given and rejoin; checked for safety (no
partition owned twice), convergence, balance, co-partitioning and stickiness."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streamlog.transport.sticky import Claim, cooperative_assign, standby_assign, tasks_of
from streamlog.transport.types import TopicPartition as TP

TOPICS = frozenset({"orders", "payments"})


def run_rounds(counts, owned: dict[str, set], topics=TOPICS, rounds=4):
    """Rounds until nothing changes: (every round's assignment, final ownership)."""
    history = []
    for _ in range(rounds):
        claims = {m: Claim(frozenset(topics), frozenset(o)) for m, o in owned.items()}
        result = cooperative_assign(counts, claims)
        history.append(result)
        # safety within the round: a partition goes to one member, never to a member
        # while another owns it
        seen: dict[TP, str] = {}
        for member, parts in result.items():
            for tp in parts:
                assert tp not in seen, (tp, member, seen[tp])
                seen[tp] = member
                assert all(tp not in owned[o] for o in owned if o != member)
        if {m: set(p) for m, p in result.items()} == owned:
            break
        owned = {m: set(p) for m, p in result.items()}  # revoke the rest, take the new
    return history, owned


def test_a_stable_group_keeps_everything_and_a_joiner_takes_a_share_in_two_rounds():
    counts = {"orders": 6, "payments": 6}
    history, owned = run_rounds(counts, {"a": set(), "b": set()})
    assert len(history) == 2  # the first assignment, then the same again: stable
    assert sorted(len(p) for p in owned.values()) == [6, 6]
    before = {m: set(p) for m, p in owned.items()}
    history, owned = run_rounds(counts, {**before, "c": set()})
    # round 1: c gets nothing yet (what it will take is still owned); a and b give it up
    assert history[0]["c"] == set()
    assert all(history[0][m] <= before[m] for m in "ab")
    # then c takes it: 4 partitions each (2 tasks of 2 co-partitioned topics)
    assert sorted(len(p) for p in owned.values()) == [4, 4, 4]
    moved = sum(len(before[m] - owned[m]) for m in "ab")
    assert moved == 4  # only c's share moved
    for parts in owned.values():  # orders N and payments N always together
        assert {tp.partition for tp in parts if tp.topic == "orders"} == {
            tp.partition for tp in parts if tp.topic == "payments"
        }


def test_a_leaver_s_tasks_go_to_the_others_at_once():
    counts = {"orders": 4, "payments": 4}
    _, owned = run_rounds(counts, {"a": set(), "b": set(), "c": set()})
    gone = owned.pop("b")
    history, owned = run_rounds(counts, owned)
    assert len(history) == 2
    assert owned["a"] | owned["c"] == {TP(t, n) for t in TOPICS for n in range(4)}
    assert gone <= owned["a"] | owned["c"]


def test_two_members_claiming_one_task_both_give_it_up_first():
    counts = {"orders": 2}
    claims = {
        "a": Claim(frozenset({"orders"}), frozenset({TP("orders", 0)})),
        "b": Claim(frozenset({"orders"}), frozenset({TP("orders", 0), TP("orders", 1)})),
    }
    result = cooperative_assign(counts, claims)
    assert TP("orders", 0) not in result["a"] | result["b"]
    assert result["b"] == {TP("orders", 1)}


def test_members_reading_different_topics_get_only_their_topics():
    counts = {"orders": 2, "clicks": 3}
    claims = {"a": Claim(frozenset({"orders"})), "b": Claim(frozenset({"orders", "clicks"}))}
    tasks = tasks_of(counts, claims)
    assert all(len(t) == 1 for t in tasks) and len(tasks) == 5
    result = cooperative_assign(counts, claims)
    assert all(tp.topic == "orders" for tp in result["a"])
    assert result["a"] | result["b"] == {TP("orders", 0), TP("orders", 1)} | {
        TP("clicks", n) for n in range(3)
    }


@settings(max_examples=150, deadline=None)
@given(
    partitions=st.integers(1, 12),
    before=st.integers(1, 5),
    after=st.integers(1, 5),
    seed=st.randoms(use_true_random=False),
)
def test_any_membership_change_converges_balanced_without_double_ownership(
    partitions, before, after, seed
):
    counts = {"orders": partitions, "payments": partitions}
    names = [f"m{i}" for i in range(max(before, after) + 1)]
    _, owned = run_rounds(counts, {n: set() for n in names[:before]})
    # some leave, some join (the survivors keep what they own)
    keep = set(seed.sample(names[:before], min(before, after)))
    members = {n: owned[n] for n in keep}
    for n in names:
        if len(members) >= after:
            break
        members.setdefault(n, set())
    history, final = run_rounds(counts, members, rounds=5)
    assert len(history) <= 3  # assigned within two rounds, the third confirms it
    everything = {TP(t, n) for t in counts for n in range(partitions)}
    assert set().union(*final.values()) == everything
    sizes = [len(p) // 2 for p in final.values()]  # tasks
    assert max(sizes) - min(sizes) <= 1
    # sticky: a survivor keeps what it owned as far as its new share allows
    share = -(-partitions // len(final))
    for m in keep:
        kept = len(members[m] & final[m]) // 2
        assert kept >= min(len(members[m]) // 2, partitions // len(final)), (m, kept, share)


def test_standbys_go_to_other_members_spread_and_stay_put():
    counts = {"orders": 6, "payments": 6}
    _, owned = run_rounds(counts, {"a": set(), "b": set(), "c": set()})
    claims = {m: Claim(TOPICS, frozenset(o)) for m, o in owned.items()}
    standby = standby_assign(counts, claims, owned, replicas=1)
    everything = {TP(t, n) for t in TOPICS for n in range(6)}
    # every task has exactly one standby, never on its active member, co-partitioned
    assert set().union(*standby.values()) == everything
    assert sum(len(p) for p in standby.values()) == len(everything)
    for member, parts in standby.items():
        assert not parts & owned[member]
        assert {tp.partition for tp in parts if tp.topic == "orders"} == {
            tp.partition for tp in parts if tp.topic == "payments"
        }
    assert sorted(len(p) // 2 for p in standby.values()) == [2, 2, 2]
    # the next generation (nothing changed) keeps them where they are
    warm = {m: Claim(TOPICS, frozenset(owned[m]), frozenset(standby[m])) for m in owned}
    assert standby_assign(counts, warm, owned, replicas=1) == standby
    # two replicas: every member that is not active for a task keeps it warm
    two = standby_assign(counts, claims, owned, replicas=2)
    for member, parts in two.items():
        assert parts == everything - owned[member]
    # one member: nowhere to put a standby
    assert standby_assign(counts, {"a": claims["a"]}, {"a": everything}, replicas=1) == {"a": set()}


def test_a_dead_members_tasks_go_to_their_standbys():
    """The failover the standbys are for: each orphaned task is given, where the balance
    allows, to the member that kept it warm."""
    counts = {"orders": 6}
    topics = frozenset({"orders"})
    _, owned = run_rounds(counts, {"a": set(), "b": set(), "c": set()}, topics=topics)
    claims = {m: Claim(topics, frozenset(o)) for m, o in owned.items()}
    standby = standby_assign(counts, claims, owned, replicas=1)
    dead = "b"
    survivors = {
        m: Claim(topics, frozenset(owned[m]), frozenset(standby[m])) for m in owned if m != dead
    }
    result = cooperative_assign(counts, survivors)
    assert sorted(len(p) for p in result.values()) == [3, 3]
    for tp in owned[dead]:
        warm_member = next(m for m in survivors if tp in standby[m])
        assert tp in result[warm_member], (tp, warm_member, result)
    # and without standbys the same orphans go by load and id only
    cold = {m: Claim(topics, frozenset(owned[m])) for m in owned if m != dead}
    assert sorted(len(p) for p in cooperative_assign(counts, cold).values()) == [3, 3]


@settings(max_examples=150, deadline=None)
@given(
    partitions=st.integers(1, 12),
    members=st.integers(1, 5),
    replicas=st.integers(0, 3),
    dead=st.integers(0, 4),
)
def test_failover_with_standbys_stays_balanced_and_safe(partitions, members, replicas, dead):
    counts = {"orders": partitions, "payments": partitions}
    names = [f"m{i}" for i in range(members)]
    _, owned = run_rounds(counts, {n: set() for n in names})
    claims = {m: Claim(TOPICS, frozenset(o)) for m, o in owned.items()}
    standby = standby_assign(counts, claims, owned, replicas)
    for member, parts in standby.items():
        assert not parts & owned[member]
    per_task = {}
    for member, parts in standby.items():
        for tp in parts:
            per_task.setdefault(tp, []).append(member)
    assert all(len(v) == min(replicas, members - 1) for v in per_task.values())
    held = [len(p) // 2 for p in standby.values()]  # standby tasks per member
    share = -(-partitions * min(replicas, members - 1) // members)
    assert max(held) <= share, standby
    if members == 1:
        return
    gone = names[dead % members]
    rest = {
        m: Claim(TOPICS, frozenset(owned[m]), frozenset(standby[m])) for m in owned if m != gone
    }
    result = cooperative_assign(counts, rest)
    everything = {TP(t, n) for t in counts for n in range(partitions)}
    assert set().union(*result.values()) == everything
    sizes = [len(p) // 2 for p in result.values()]
    assert max(sizes) - min(sizes) <= 1
    for m in rest:  # survivors keep what they had (orphans only add)
        assert owned[m] <= result[m] or len(owned[m]) // 2 > -(-partitions // len(rest))
    # the survivors' standbys, placed with the last generation's warm copies: still
    # balanced and never on the active member
    again = standby_assign(counts, rest, result, replicas)
    held_again = [len(p) // 2 for p in again.values()]
    assert max(held_again) <= -(-partitions * min(replicas, len(rest) - 1) // len(rest)), again
    for member, parts in again.items():
        assert not parts & result[member]
