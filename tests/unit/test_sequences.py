"""Per-sequence state: bounded, and forgotten once idle."""

from __future__ import annotations

import pytest

from sdbackend.errors import RequestError
from sdbackend.sequence_store import SequenceStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_start_get_end() -> None:
    store: SequenceStore[str] = SequenceStore(10, 4, Clock())
    store.start(1, "a")
    assert store.get(1) == "a"
    assert store.end(1)
    assert store.get(1) is None
    assert not store.end(1)


def test_idle_sequences_expire_and_used_ones_stay() -> None:
    clock = Clock()
    store: SequenceStore[str] = SequenceStore(10, 4, clock)
    store.start(1, "a")
    store.start(2, "b")
    clock.now = 8
    store.get(2)
    clock.now = 12
    assert store.expire() == [1]
    assert store.get(2) == "b"
    assert len(store) == 1


def test_limit_refuses_new_but_allows_restart() -> None:
    store: SequenceStore[str] = SequenceStore(10, 2, Clock())
    store.start(1, "a")
    store.start(2, "b")
    store.start(2, "b2")
    with pytest.raises(RequestError, match="max_sequences"):
        store.start(3, "c")
