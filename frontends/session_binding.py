"""Who may act for a session besides its own WebSocket: watch its MJPEG stream, or replace it.

A user_id is a name, not a secret: scripts pick readable ones and ids travel in URLs and logs. So
each session gets a random key of its own, sent in its first message
(`{"status": "connected", "session_key": ...}`), and the stream and a replacing connection must
present it (`?session_key=` or the `X-Session-Key` header). Clients written before the key
existed (StreamDiffusion's demo pages, older scripts) cannot; with
`server.security.session_address_fallback` (default on) the client address of the session's own
WebSocket stands in for the key. A stream request that may not see a session is answered exactly
like one for an id nobody uses, so live ids cannot be probed.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from aiohttp import web

SESSION_KEY_PARAM = "session_key"
SESSION_KEY_HEADER = "X-Session-Key"
_KEY_BYTES = 24
_NO_KEY = secrets.token_urlsafe(_KEY_BYTES)
"""Compared against when there is no session, so an unknown id costs what a wrong key costs."""


def new_session_key() -> str:
    """32 characters of [A-Za-z0-9_-]: 192 random bits, safe in a URL as it is."""
    return secrets.token_urlsafe(_KEY_BYTES)


@dataclass(frozen=True, slots=True)
class Binding:
    """What ties a session to the client that opened it."""

    key: str
    address: str
    """The client address of the session's WebSocket (frontends/security.py client_address)."""


def presented_key(request: web.Request) -> str | None:
    """The session key a request carries, from the query or the header; None when it carries none."""
    return request.query.get(SESSION_KEY_PARAM) or request.headers.get(SESSION_KEY_HEADER) or None


def may_act_for(binding: Binding | None, key: str | None, address: str, address_fallback: bool) -> bool:
    """Whether a request with `key` from `address` may watch or replace the bound session.

    A key that is given must be right: a wrong key is refused even from the session's own
    address, so a stale page cannot take over a newer session by accident of sharing a NAT.
    """
    expected = binding.key if binding is not None else _NO_KEY
    if key is not None:
        return hmac.compare_digest(key.encode(), expected.encode()) and binding is not None
    return binding is not None and address_fallback and address == binding.address
