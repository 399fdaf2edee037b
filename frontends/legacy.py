"""The shared routes of the single-mode service, kept as deprecated routes of realtime.

`/api/stream/{user_id}`, `/api/settings` and `/api/queue` behave like their `/api/realtime/...`
successors; `/api/ws/{user_id}` speaks StreamDiffusion's demo protocol besides (demo_frames.py).
Each use is logged, and every HTTP answer (the WebSocket upgrade included) carries
`Deprecation: true` and a `Link` to the successor.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from frontends.app_keys import DEPRECATED_KEY

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def deprecated(handler: Handler, successor: str) -> Handler:
    """Wrap `handler`; `successor` may contain {user_id}."""

    async def handle(request: web.Request) -> web.StreamResponse:
        new_path = successor.format(**request.match_info)
        request[DEPRECATED_KEY] = new_path
        log.warning("deprecated route %s used by %s; use %s", request.path, request.remote, new_path)
        return await handler(request)

    return handle


async def mark_deprecated(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: runs before headers go out, so streams are marked too."""
    successor = request.get(DEPRECATED_KEY)
    if successor is not None:
        response.headers["Deprecation"] = "true"
        response.headers["Link"] = f'<{successor}>; rel="successor-version"'
