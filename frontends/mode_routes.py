"""The HTTP side of a mode: `/api/{mode}/settings`, `/api/{mode}/queue` and `/api/{mode}/stream/{user_id}`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from frontends.app_keys import CLIENTS_KEY, SERVICES_KEY
from frontends.client_limits import held, over_limit
from frontends.http_errors import json_error, user_id_of
from frontends.mjpeg import Part, serve_stream
from frontends.security import client_address
from frontends.session_binding import SESSION_KEY_PARAM, presented_key
from frontends.triton_client import TritonError
from sdconfig import Mode

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def settings_handler(mode: Mode) -> Handler:
    """Model facts from Triton plus this mode's effective performance settings."""

    async def handle(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES_KEY]
        try:
            facts = await services.facts.get(mode)
        except TritonError as exc:
            return json_error(503, f"model facts unavailable: {exc}")
        return web.json_response(
            {
                "info": facts.info,
                "input_params": facts.input_params,
                "performance": services.settings.performance(mode).model_dump(mode="json"),
                "max_queue_size": services.settings.server.max_sessions_per_mode,
                "page_content": facts.info["properties"]["page_content"]["default"],
            }
        )

    return handle


def queue_handler(mode: Mode) -> Handler:
    """How many sessions of the mode are open (the demo pages show it against max_queue_size)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return web.json_response({"queue_size": request.app[SERVICES_KEY].registry.count(mode)})

    return handle


def stream_handler(mode: Mode) -> Handler:
    """The MJPEG stream of one connected user's results, for the holder of its session key.

    404 alike for an id with no session and for one this request may not watch (session_binding.py).
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        user_id = user_id_of(request)
        services = request.app[SERVICES_KEY]
        security = services.settings.server.security
        address = client_address(request, security.trusted_proxies)
        hub = services.registry.hub(mode, user_id, presented_key(request), address)
        if hub is None:
            return json_error(
                404,
                f"no {mode} session of user_id {user_id!r} for this client: connect WS /api/{mode}/ws/{user_id} "
                f"first and pass the session_key of its connected message (?{SESSION_KEY_PARAM}=)",
            )
        metrics = services.metrics

        def observe(part: Part) -> None:
            now = time.monotonic()
            metrics.shown(mode, now - part.received_at)
            if not hub.first_shown and part.session_started_at is not None:
                hub.first_shown = True
                metrics.first_frame.labels(mode=mode).observe(now - part.session_started_at)

        with held(request.app[CLIENTS_KEY], address, "streams") as slot:
            if slot is None:
                services.metrics.error(mode, "client_limit")
                return json_error(429, over_limit("streams", security.max_sessions_per_client))
            return await serve_stream(request, hub, observe)

    return handle
