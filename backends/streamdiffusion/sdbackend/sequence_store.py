"""Per-sequence state of the realtime model, keyed by Triton correlation id.

Triton frees a sequence slot after `max_sequence_idle_microseconds` without telling the model,
so the store expires idle entries itself (the launcher sets both times from one config key).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sdbackend.errors import RequestError

State = TypeVar("State")


@dataclass
class _Entry(Generic[State]):
    state: State
    last_used: float


class SequenceStore(Generic[State]):
    """A bounded, thread-safe map of correlation id -> state that forgets idle sequences."""

    def __init__(self, idle_timeout_s: float, max_sequences: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._idle = idle_timeout_s
        self._max = max_sequences
        self._clock = clock
        self._entries: dict[int, _Entry[State]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, sequence_id: int) -> State | None:
        with self._lock:
            entry = self._entries.get(sequence_id)
            if entry is None:
                return None
            entry.last_used = self._clock()
            return entry.state

    def start(self, sequence_id: int, state: State) -> None:
        """Hold a new (or restarted) sequence; refuse when the instance already holds max_sequences."""
        with self._lock:
            if sequence_id not in self._entries and len(self._entries) >= self._max:
                raise RequestError(
                    f"this model instance already holds {self._max} sequences (realtime.pipeline.max_sequences); "
                    "end a sequence or try again later"
                )
            self._entries[sequence_id] = _Entry(state, self._clock())

    def end(self, sequence_id: int) -> bool:
        with self._lock:
            return self._entries.pop(sequence_id, None) is not None

    def expire(self) -> list[int]:
        """Forget every sequence idle for longer than the timeout; return their ids."""
        cutoff = self._clock() - self._idle
        with self._lock:
            stale = [sid for sid, entry in self._entries.items() if entry.last_used < cutoff]
            for sid in stale:
                del self._entries[sid]
        return stale
