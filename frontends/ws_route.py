"""`WS /api/{mode}/ws/{user_id}`: refuse before the upgrade what can be refused, admit, run.

A bad user_id or a request that is no WebSocket upgrade gets a JSON 400 without upgrading. The
per-mode session limit and the duplicate-user rule are applied after the upgrade, because the
protocol answers them with an error message and a close code the browser can read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from frontends import protocol
from frontends.http_errors import bad_user_id, json_error
from frontends.protocol import CloseCode
from frontends.services import SERVICES_KEY
from frontends.session import Session
from sdconfig import Mode

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLOSE_TIMEOUT_S = 5.0
"""How long a close waits for the client's close frame."""


def ws_handler(mode: Mode) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        user_id = request.match_info["user_id"]
        refusal = bad_user_id(user_id)
        if refusal is not None:
            return refusal
        services = request.app[SERVICES_KEY]
        ws = web.WebSocketResponse(
            max_msg_size=services.settings.server.max_message_bytes,
            timeout=CLOSE_TIMEOUT_S,
            compress=False,  # frames are JPEG/PNG already: deflating them only burns CPU on both ends
        )
        if not ws.can_prepare(request).ok:
            return json_error(400, f"{request.path} speaks WebSocket: connect with a WebSocket client")
        await ws.prepare(request)
        session = Session(ws, mode, user_id, services)
        admission = services.registry.admit(session)
        if admission.outcome == "full":
            limit = services.settings.server.max_sessions_per_mode
            await _refuse(session, "session_full", f"server full: {limit} {mode} sessions are open; try again later")
            await ws.close(code=CloseCode.TRY_AGAIN_LATER, message=b"server full")
            return ws
        if admission.outcome == "duplicate":
            await _refuse(session, "duplicate_user", f"user_id {user_id!r} is already connected to {mode}")
            await ws.close(code=CloseCode.DUPLICATE_USER, message=b"user_id already connected")
            return ws
        if admission.replaced is not None:
            admission.replaced.close_soon(CloseCode.REPLACED, "replaced by a newer connection")
        await session.run()
        return ws

    return handle


async def _refuse(session: Session, kind: str, text: str) -> None:
    session.services.metrics.error(session.mode, kind)
    await session.send(protocol.error(text))
