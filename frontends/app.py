"""The app factory: routes of the served modes, shared services, and their lifetimes.

Route map (mode is realtime or canvas, for each mode this process serves):
    WS   /api/{mode}/ws/{user_id}       the protocol (frontends/protocol.py)
    GET  /api/{mode}/stream/{user_id}   MJPEG of that user's results
    GET  /api/{mode}/settings           model facts + the mode's performance settings
    WS   /api/ws/{user_id}, GET /api/stream/{user_id}, GET /api/settings
                                        deprecated aliases of the realtime routes
    POST /api/video/jobs, GET /api/video/jobs/{job_id}[/preview|/result], GET /api/video/settings
                                        restyling uploaded clips (frontends/video_routes.py)
    GET  /healthz  /readyz  /metrics
    GET  /  /realtime  /canvas  /video  /static/...   the pages in frontends/web/

Every answer gets the security headers; with server.security.access_token set, /api/* and /metrics
need the token (frontends/security.py, docs/security.md). Before anything, the Host must be one this
server is known by (frontends/allowed_hosts.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from frontends import health, legacy
from frontends.allowed_hosts import host_middleware
from frontends.app_keys import (
    CLIENTS_KEY,
    CONFIG_FILE_KEY,
    METRICS_KEY,
    REGISTRY_KEY,
    SERVICES_KEY,
    SETTINGS_KEY,
    Services,
)
from frontends.client_limits import ClientLimits
from frontends.demo_frames import DemoFrames
from frontends.facts_cache import FactsCache
from frontends.image_pool import ImagePool
from frontends.metrics import FrontendMetrics
from frontends.mode_routes import queue_handler, settings_handler, stream_handler
from frontends.pages import add_pages
from frontends.registry import SessionRegistry
from frontends.security import RedactingAccessLogger, security_headers, token_middleware
from frontends.timeouts import check_sequence_idle
from frontends.triton_client import TritonError, TritonPool
from frontends.video_routes import add_video_routes
from frontends.ws_route import ws_handler
from sdconfig import MODES, Mode, Settings, config_path

log = logging.getLogger(__name__)

USER = "{user_id:[^/]*}"
"""Matches any segment, empty included, so a bad user_id gets the protocol's 400, not a 404."""
SHUTDOWN_CLOSE_WAIT_S = 5.0


def create_app(
    settings: Settings, modes: Sequence[Mode] | None = None, config_file: Path | None = None
) -> web.Application:
    """An app serving `modes` (default: settings.server.modes) against settings.triton.urls.

    `config_file` (default: config_path()) anchors relative paths such as video.jobs_dir.
    """
    served: tuple[Mode, ...] = tuple(modes or settings.server.modes)
    server = settings.server
    security = server.security
    middlewares = [host_middleware(security)]
    if security.access_token:
        middlewares.append(token_middleware(security.access_token))
    app = web.Application(client_max_size=server.max_http_body_bytes, middlewares=middlewares)
    app[SETTINGS_KEY] = settings
    app[METRICS_KEY] = FrontendMetrics({mode: settings.performance(mode).target_latency_ms / 1000 for mode in MODES})
    app[REGISTRY_KEY] = SessionRegistry(
        server.max_sessions_per_mode, server.duplicate_user, security.session_address_fallback
    )
    app[CLIENTS_KEY] = ClientLimits(security.max_sessions_per_client, security.max_messages_per_second_per_client)
    app[CONFIG_FILE_KEY] = (config_file or config_path()).resolve()
    app.cleanup_ctx.append(_triton_context(served))
    app.on_shutdown.append(_close_sessions)
    app.on_response_prepare.append(legacy.mark_deprecated)
    app.on_response_prepare.append(security_headers(security))
    _add_routes(app, served)
    add_video_routes(app, served)
    return app


def runner_options(settings: Settings) -> dict[str, Any]:
    """What web.run_app and web.AppRunner need besides the app.

    aiohttp arms its keep-alive timer when a connection opens and after each answer, and closes the
    connection when it fires while no complete request head has arrived (more bytes do not push it
    back): with server.header_timeout_s as that timer, slowly sent headers cannot hold a connection.
    """
    return {"keepalive_timeout": settings.server.header_timeout_s, "access_log_class": RedactingAccessLogger}


def _add_routes(app: web.Application, modes: tuple[Mode, ...]) -> None:
    router = app.router
    for mode in modes:
        router.add_get(f"/api/{mode}/ws/{USER}", ws_handler(mode))
        router.add_get(f"/api/{mode}/stream/{USER}", stream_handler(mode))
        router.add_get(f"/api/{mode}/settings", settings_handler(mode))
        router.add_get(f"/api/{mode}/queue", queue_handler(mode))
    if "realtime" in modes:  # the single-mode service's routes; its clients speak the demo protocol
        router.add_get(
            f"/api/ws/{USER}", legacy.deprecated(ws_handler("realtime", DemoFrames), "/api/realtime/ws/{user_id}")
        )
        router.add_get(
            f"/api/stream/{USER}", legacy.deprecated(stream_handler("realtime"), "/api/realtime/stream/{user_id}")
        )
        router.add_get("/api/settings", legacy.deprecated(settings_handler("realtime"), "/api/realtime/settings"))
        router.add_get("/api/queue", legacy.deprecated(queue_handler("realtime"), "/api/realtime/queue"))
    router.add_get("/healthz", health.healthz)
    router.add_get("/readyz", health.readyz)
    router.add_get("/metrics", health.metrics)
    add_pages(app, modes)


def _triton_context(modes: tuple[Mode, ...]) -> Callable[[web.Application], AsyncIterator[None]]:
    """One gRPC client per endpoint for the app's lifetime; created inside the running loop."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS_KEY]
        pool = TritonPool(settings.triton.urls, settings.server.infer_timeout_s)
        facts = FactsCache(pool, {mode: settings.model_name(mode) for mode in modes})
        images = ImagePool(settings.server.image_workers)
        app[SERVICES_KEY] = Services(settings, modes, pool, facts, app[METRICS_KEY], app[REGISTRY_KEY], images)
        models = [settings.model_name(mode) for mode in modes]
        tasks = [
            asyncio.create_task(_prefetch_facts(facts, modes)),
            *([asyncio.create_task(check_sequence_idle(pool, settings))] if "realtime" in modes else []),
            asyncio.create_task(_watch_health(pool, models, settings.triton.health_interval_s)),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await pool.close()
            images.close()

    return context


async def _watch_health(pool: TritonPool, models: list[str], interval_s: float) -> None:
    """Keep the pool's healthy set current, so new sessions go to servers that can serve them."""
    while True:
        try:
            await pool.refresh_health(models)
        except Exception:  # a probe must never end the watch
            log.exception("health probe failed")
        await asyncio.sleep(interval_s)


async def _prefetch_facts(facts: FactsCache, modes: tuple[Mode, ...]) -> None:
    """Warm the cache so the first frame does not wait for it; a failure is retried on demand."""
    for mode in modes:
        try:
            await facts.get(mode)
        except TritonError as exc:
            log.warning("model facts for %s not available yet: %s", mode, exc)


async def _close_sessions(app: web.Application) -> None:
    """Let each session's policy finish what it owes (server.shutdown_drain_s), then close it with 1001."""
    closing = [session.shut_down_soon() for session in app[REGISTRY_KEY]]
    if closing:
        await asyncio.wait(closing, timeout=app[SETTINGS_KEY].server.shutdown_drain_s + SHUTDOWN_CLOSE_WAIT_S)
