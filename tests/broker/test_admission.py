"""ConnectionSlots: which connections are admitted and which waiting one makes room."""

from __future__ import annotations

import random

from streamlog.broker.admission import ConnectionSlots


def test_without_authentication_the_limits_only_refuse() -> None:
    slots: ConnectionSlots[str] = ConnectionSlots(4, 2, 2)
    assert slots.admit("a1", "A", authenticated=True).admitted
    assert slots.admit("a2", "A", authenticated=True).admitted
    verdict = slots.admit("a3", "A", authenticated=True)
    assert (verdict.admitted, verdict.evicted) == (False, ())
    assert "max.connections.per.ip=2" in verdict.reason
    assert slots.admit("b1", "B", authenticated=True).admitted
    assert slots.admit("c1", "C", authenticated=True).admitted
    verdict = slots.admit("d1", "D", authenticated=True)
    assert (verdict.admitted, verdict.evicted) == (False, ())
    assert "max.connections=4" in verdict.reason
    slots.release("b1")
    assert slots.admit("d1", "D", authenticated=True).admitted
    assert len(slots) == 4


def test_an_address_at_its_limit_gives_up_its_oldest_waiting_connection() -> None:
    slots: ConnectionSlots[str] = ConnectionSlots(100, 3, 50)
    for name in ("x1", "x2", "x3"):
        assert slots.admit(name, "X", authenticated=False).admitted
    slots.authenticated("x1")
    verdict = slots.admit("x4", "X", authenticated=False)
    assert verdict.admitted and verdict.evicted == ("x2",)  # x1 authenticated: kept
    assert slots.count_from("X") == 3
    slots.authenticated("x3")
    slots.authenticated("x4")
    verdict = slots.admit("x5", "X", authenticated=False)
    assert not verdict.admitted and verdict.evicted == ()


def test_waiting_connections_never_take_the_room_kept_for_authenticated_ones() -> None:
    slots: ConnectionSlots[str] = ConnectionSlots(10, 100, 4)
    for i in range(4):
        assert slots.admit(f"w{i}", f"10.0.0.{i}", authenticated=False).admitted
    # A fifth waiting connection replaces the oldest waiting one.
    verdict = slots.admit("w4", "10.0.0.4", authenticated=False)
    assert verdict.admitted and verdict.evicted == ("w0",)
    assert slots.unauthenticated == 4 and len(slots) == 4


def test_a_full_broker_closes_the_oldest_waiting_connection_never_an_authenticated_one() -> None:
    slots: ConnectionSlots[str] = ConnectionSlots(5, 100, 5)
    for i in range(5):
        assert slots.admit(f"c{i}", "A", authenticated=False).admitted
    for name in ("c0", "c2", "c3"):
        slots.authenticated(name)
    assert slots.admit("n1", "B", authenticated=False).evicted == ("c1",)
    assert slots.admit("n2", "B", authenticated=False).evicted == ("c4",)
    assert slots.admit("n3", "B", authenticated=False).evicted == ("n1",)
    slots.authenticated("n2")
    slots.authenticated("n3")
    verdict = slots.admit("n4", "B", authenticated=False)
    assert not verdict.admitted and "max.connections=5" in verdict.reason


def test_a_flood_of_waiting_connections_leaves_authenticated_ones_alone() -> None:
    """Against a brute-force model: whatever the order of events, the counts stay within
    the limits and an authenticated connection is never evicted."""
    rng = random.Random(10)
    slots: ConnectionSlots[int] = ConnectionSlots(40, 15, 20)
    authenticated: set[int] = set()
    open_: dict[int, str] = {}
    for conn in range(5_000):
        action = rng.random()
        if action < 0.7 or not open_:
            address = f"127.0.0.{rng.randrange(1, 6)}"
            verdict = slots.admit(conn, address, authenticated=False)
            for victim in verdict.evicted:
                assert victim not in authenticated
                del open_[victim]
            if verdict.admitted:
                open_[conn] = address
        elif action < 0.85:
            chosen = rng.choice(sorted(open_))
            slots.authenticated(chosen)
            authenticated.add(chosen)
        else:
            chosen = rng.choice(sorted(open_))
            slots.release(chosen)
            del open_[chosen]
            authenticated.discard(chosen)
        assert len(slots) == len(open_) <= 40
        assert slots.unauthenticated == len(set(open_) - authenticated) <= 20
        for address in set(open_.values()):
            count = sum(1 for a in open_.values() if a == address)
            assert slots.count_from(address) == count <= 15
