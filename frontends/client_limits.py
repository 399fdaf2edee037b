"""Per-client-address limits: concurrent WebSocket sessions, MJPEG streams, and messages a second.

The per-session limits (server.max_messages_per_second) do not stop one address from opening many
sessions; these do (server.security.max_sessions_per_client and
max_messages_per_second_per_client). An address's entry lives only while it has a session or a
stream open, so the table never outgrows the connections themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from frontends.rate_limit import RateLimiter

Kind = Literal["sessions", "streams"]


@dataclass
class _Client:
    limiter: RateLimiter
    open: dict[str, int] = field(default_factory=lambda: {"sessions": 0, "streams": 0})


class ClientLimits:
    def __init__(self, max_open: int, messages_per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_open = max_open
        self.messages_per_second = messages_per_second
        self._clock = clock
        self._clients: dict[str, _Client] = {}

    def acquire(self, address: str, kind: Kind) -> RateLimiter | None:
        """Count one more session (or stream) of `address`; None when it already has `max_open`.

        Returns the address's shared message limiter, which lives as long as anything is open.
        """
        client = self._clients.get(address)
        if client is None:
            client = self._clients[address] = _Client(RateLimiter(self.messages_per_second, self._clock))
        if client.open[kind] >= self.max_open:
            self._forget_if_idle(address, client)
            return None
        client.open[kind] += 1
        return client.limiter

    def release(self, address: str, kind: Kind) -> None:
        client = self._clients.get(address)
        if client is None:
            return
        client.open[kind] = max(0, client.open[kind] - 1)
        self._forget_if_idle(address, client)

    def count(self, address: str, kind: Kind) -> int:
        client = self._clients.get(address)
        return client.open[kind] if client is not None else 0

    def __len__(self) -> int:
        return len(self._clients)

    def _forget_if_idle(self, address: str, client: _Client) -> None:
        if not any(client.open.values()):
            del self._clients[address]


def over_limit(kind: Kind, limit: int) -> str:
    return f"too many {kind} from your address: at most {limit} (server.security.max_sessions_per_client)"


@contextmanager
def held(clients: ClientLimits, address: str, kind: Kind) -> Iterator[RateLimiter | None]:
    """The address's shared limiter while one more `kind` is counted; None, counting nothing, when over."""
    limiter = clients.acquire(address, kind)
    try:
        yield limiter
    finally:
        if limiter is not None:
            clients.release(address, kind)
