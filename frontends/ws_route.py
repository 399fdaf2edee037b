"""`WS /api/{mode}/ws/{user_id}`: refuse before the upgrade what can be refused, admit, run.

A bad user_id or a request that is no WebSocket upgrade gets a JSON 400 without upgrading. The
per-mode session limit and the duplicate-user rule are applied after the upgrade, because the
protocol answers them with an error message and a close code the browser can read.
An Origin other than the server's own host or server.security.allowed_origins gets a JSON 403
before the upgrade (frontends/security.py); the per-address session limit is applied after it,
like the per-mode one. A connection may replace a live session of its user_id only with that
session's key or from its address (frontends/session_binding.py); otherwise it is refused like a
duplicate under `reject`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from frontends import protocol
from frontends.app_keys import CLIENTS_KEY, SERVICES_KEY
from frontends.client_limits import held, over_limit
from frontends.demo_frames import DemoFrames
from frontends.http_errors import json_error, user_id_of
from frontends.protocol import CloseCode
from frontends.security import client_address, origin_refusal, websocket_protocols
from frontends.session import Session
from frontends.session_binding import SESSION_KEY_PARAM, Binding, new_session_key, presented_key
from sdconfig import Mode

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLOSE_TIMEOUT_S = 5.0
"""How long a close waits for the client's close frame."""


def ws_handler(mode: Mode, demo_frames: Callable[[], DemoFrames] | None = None) -> Handler:
    """`demo_frames`: the legacy route's reader of StreamDiffusion's demo protocol, one per session."""

    async def handle(request: web.Request) -> web.StreamResponse:
        user_id = user_id_of(request)
        services = request.app[SERVICES_KEY]
        security = services.settings.server.security
        refused_origin = origin_refusal(request, security)
        if refused_origin is not None:
            services.metrics.error(mode, "origin_refused")
            return json_error(403, refused_origin)
        ws = web.WebSocketResponse(
            max_msg_size=services.settings.server.max_message_bytes,  # refused from the frame header on
            timeout=CLOSE_TIMEOUT_S,
            compress=False,  # frames are JPEG/PNG already: deflating them only burns CPU on both ends
            autoping=False,  # the session answers pings itself, inside its message rate limits
            protocols=websocket_protocols(request),
        )
        if not ws.can_prepare(request).ok:
            return json_error(400, f"{request.path} speaks WebSocket: connect with a WebSocket client")
        await ws.prepare(request)
        address = client_address(request, security.trusted_proxies)
        with held(request.app[CLIENTS_KEY], address, "sessions") as client_rate:
            demo = demo_frames() if demo_frames is not None else None
            binding = Binding(new_session_key(), address)
            session = Session(ws, mode, user_id, services, binding, client_rate=client_rate, demo=demo)
            if client_rate is None:
                await _refuse(session, "client_limit", over_limit("sessions", security.max_sessions_per_client))
                await ws.close(code=CloseCode.TRY_AGAIN_LATER, message=b"too many sessions from this address")
            else:
                await _admit_and_run(session, presented_key(request))
        return ws

    return handle


async def _admit_and_run(session: Session, key: str | None) -> None:
    services, mode, user_id, ws = session.services, session.mode, session.user_id, session.ws
    admission = services.registry.admit(session, key)
    if admission.outcome == "full":
        limit = services.settings.server.max_sessions_per_mode
        await _refuse(session, "session_full", f"server full: {limit} {mode} sessions are open; try again later")
        await ws.close(code=CloseCode.TRY_AGAIN_LATER, message=b"server full")
        return
    if admission.outcome == "duplicate":
        await _refuse(session, "duplicate_user", f"user_id {user_id!r} is already connected to {mode}")
        await ws.close(code=CloseCode.DUPLICATE_USER, message=b"user_id already connected")
        return
    if admission.outcome == "not_yours":
        await _refuse(
            session,
            "not_yours",
            f"user_id {user_id!r} is in use by another client: to replace that session, reconnect with its "
            f"session_key (?{SESSION_KEY_PARAM}=), or pick another user_id",
        )
        await ws.close(code=CloseCode.DUPLICATE_USER, message=b"user_id in use by another client")
        return
    if admission.replaced is not None:
        admission.replaced.close_soon(CloseCode.REPLACED, "replaced by a newer connection")
    await session.run()


async def _refuse(session: Session, kind: str, text: str) -> None:
    session.services.metrics.error(session.mode, kind)
    await session.send(protocol.error(text))
