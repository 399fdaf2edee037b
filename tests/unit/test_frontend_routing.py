"""Rendezvous hashing: stable per user, spread over servers, and only the lost server's users move."""

from __future__ import annotations

from collections import Counter

import pytest

from frontends.routing import rendezvous

SERVERS = ["10.0.0.1:8001", "10.0.0.2:8001", "10.0.0.3:8001"]
USERS = [f"user-{i}" for i in range(3000)]


def test_same_user_same_server() -> None:
    assert all(rendezvous(u, SERVERS) == rendezvous(u, list(reversed(SERVERS))) for u in USERS[:200])


def test_users_spread_evenly() -> None:
    counts = Counter(rendezvous(u, SERVERS) for u in USERS)
    assert set(counts) == set(SERVERS)
    assert min(counts.values()) > 0.8 * len(USERS) / len(SERVERS)


def test_only_the_lost_servers_users_move() -> None:
    before = {u: rendezvous(u, SERVERS) for u in USERS}
    after = {u: rendezvous(u, SERVERS[:2]) for u in USERS}
    moved = {u for u in USERS if before[u] != after[u]}
    assert moved == {u for u in USERS if before[u] == SERVERS[2]}


def test_no_candidates_is_an_error() -> None:
    with pytest.raises(ValueError):
        rendezvous("u", [])
