"""Who is connected: one session per (mode, user_id), the per-mode limit and the duplicate rule.

Admission is synchronous (no await between the check and the insert), so two connections racing
for the last place or for the same user_id cannot both win. Replacing a session and reading its
hub both need the session's binding (frontends/session_binding.py): knowing the user_id is not enough.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from frontends.mjpeg import StreamHub
from frontends.protocol import CloseCode
from frontends.session_binding import Binding, may_act_for


class RegisteredSession(Protocol):
    mode: str
    user_id: str
    hub: StreamHub
    binding: Binding

    def close_soon(self, code: CloseCode, reason: str) -> asyncio.Task[None]: ...

    def shut_down_soon(self) -> asyncio.Task[None]: ...


@dataclass(frozen=True, slots=True)
class Admission:
    outcome: Literal["admitted", "full", "duplicate", "not_yours"]
    replaced: RegisteredSession | None = None
    """With server.duplicate_user "replace": the older session the caller must now close."""


class SessionRegistry:
    def __init__(
        self, max_per_mode: int, duplicate_user: Literal["replace", "reject"], address_fallback: bool = True
    ) -> None:
        self.max_per_mode = max_per_mode
        self.duplicate_user = duplicate_user
        self.address_fallback = address_fallback
        """server.security.session_address_fallback: the session's own address stands in for its key."""
        self._sessions: dict[str, dict[str, RegisteredSession]] = {}

    def admit(self, session: RegisteredSession, key: str | None = None) -> Admission:
        """`key`: the session key the new connection presented, which a replacement needs (or the address)."""
        users = self._sessions.setdefault(session.mode, {})
        existing = users.get(session.user_id)
        if existing is not None and self.duplicate_user == "reject":
            return Admission("duplicate")
        if existing is not None and not may_act_for(
            existing.binding, key, session.binding.address, self.address_fallback
        ):
            return Admission("not_yours")
        if existing is None and len(users) >= self.max_per_mode:
            return Admission("full")
        users[session.user_id] = session
        return Admission("admitted", replaced=existing)

    def release(self, session: RegisteredSession) -> None:
        """Forget `session` unless a newer session of the same user already took its place."""
        users = self._sessions.get(session.mode, {})
        if users.get(session.user_id) is session:
            del users[session.user_id]

    def hub(self, mode: str, user_id: str, key: str | None, address: str) -> StreamHub | None:
        """The session's hub for a viewer with `key` from `address`; None alike for no session and a refused one."""
        session = self._sessions.get(mode, {}).get(user_id)
        allowed = may_act_for(session.binding if session else None, key, address, self.address_fallback)
        return session.hub if session is not None and allowed else None

    def count(self, mode: str) -> int:
        return len(self._sessions.get(mode, {}))

    def __iter__(self) -> Iterator[RegisteredSession]:
        for users in self._sessions.values():
            yield from list(users.values())
