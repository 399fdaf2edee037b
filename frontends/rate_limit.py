"""Per-session message rate limit (server.max_messages_per_second).

A token bucket holding one second's worth of messages lets a client burst briefly; a message with
no token left is refused with an error. A client that keeps sending at twice the allowed rate
(more refused messages within one second than the rate allows in one second) is flooding and gets
closed, since answering each refusal would only feed the flood.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

FLOOD_WINDOW_S = 1.0


class RateLimiter:
    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.capacity = max(1.0, per_second)
        self._clock = clock
        self._tokens = self.capacity
        self._last = clock()
        self._refused: deque[float] = deque()

    def allow(self) -> bool:
        """Take a token for one message; False (and remember it) when none is left."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.per_second)
        self._last = now
        if self._tokens >= 1.0 - 1e-9:  # clock arithmetic is not exact
            self._tokens -= 1.0
            return True
        self._refused.append(now)
        return False

    def flooding(self) -> bool:
        """More messages refused within the last second than the limit allows in one."""
        horizon = self._clock() - FLOOD_WINDOW_S
        while self._refused and self._refused[0] < horizon:
            self._refused.popleft()
        return len(self._refused) > self.capacity
